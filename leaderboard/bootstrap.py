"""Joint paired bootstrap of the leaderboard: how sure is every rank, every Mean, every LMS — and is a variant
distinguishable from the base model whatever the bootstrap seed?

Per model m and benchmark, one stream of replicate weights ``w`` [B, n] over that benchmark's examples
(:func:`harness.stats.resample_weights`, seeded by (seed, m, benchmark)) is shared by *all* variants — they
were scored on the same examples, so the comparison is paired. Models are resampled independently. Where a
variant has several seeds, the seeds are a second level: replicate b draws S seeds with replacement from the
variant's S seed records (seeded by (seed, m, variant), so the same draws serve every benchmark of the
variant) and averages their statistics. Replicate b then recomputes, exactly as the table does,

    value_{m,v,k}(b)  →  proportional rank r_{m,k,v}(b)  →  column mean over models  →  Mean_v(b),

and the interval of every cell is the percentile interval of the first B₀ = ``replicates`` replicates (default
1,000). Quality metrics with a per-example statistic (LMS) get intervals of their averages and of their paired
change from the base model; the others (GLUE, SuperGLUE) show the records' own CIs.

**P(>base) and the verdict.** Each variant gets

    P̂ = (#[Mean_v(b) > Mean_base(b)] + ½ #[Mean_v(b) = Mean_base(b)]) / B,

a Monte-Carlo estimate of the ideal bootstrap probability P (B → ∞) that its Mean beats the base model's.
The variant is distinguishable from the base model when P ≥ 1 − α/2 or P ≤ α/2 (α = 0.05: the thresholds
t = 0.025 and 0.975). P̂ is a mean of B independent draws in {0, ½, 1}, so its Monte-Carlo standard error is at
most sqrt(P(1 − P)/B) — 0.0049 at a threshold for B = 1,000. Cutting P̂ at t directly makes the verdict of any
variant within a few of those errors of t a coin flip between bootstrap seeds (measured: LEACE on the bert-tiny
board, P ≈ 0.974, was "distinguishable" under 41 % of seeds). Hence a guard band and adaptive replicates
(:class:`VerdictRule`):

* With s_t(B) = sqrt(t(1 − t)/B) — the standard error *at* the threshold, which is what a test of P = t uses
  (and is defined when P̂ is 0 or 1) — and the guard band h(B) = z · s_t(B), z = :data:`GUARD_Z` = 6:

      distinguishable     P̂ ≥ 0.975 + h  or  P̂ ≤ 0.025 − h
      indistinguishable   0.025 + h < P̂ < 0.975 − h               (≈)
      borderline          otherwise: |P̂ − t| < h for t = 0.025 or 0.975   (?)

  (z = 0 is the old rule exactly.) s_t is the same for both thresholds: 0.156/√B.
* Looks: B₀, 2B₀, 4B₀, … up to :data:`MAX_REPLICATES` = 128,000 (1,000 → 128,000: eight looks). After each
  look every variant's verdict is evaluated on all replicates drawn so far; while any is borderline and
  B < 128,000, the replicates are doubled. A borderline verdict therefore always means "still within
  h(128,000) = 6 · 0.156/√128,000 = 0.0026 of a threshold after 128,000 replicates"; a board whose variants all
  lie clear of the thresholds stops early (a variant at distance d needs B ≈ (z · 0.156/d)², e.g. ≈ 3,900 for
  d = 0.015; P = 1 needs 2,000, as at 1,000 the band, 0.030, is wider than the 0.025 between 0.975 and 1).
* What can still depend on the seed. Let d = P − t and SE = s_t(128,000) = 0.00044. At the last look a
  variant is called on the correct side with probability ≈ Φ(|d|/SE − z), on the wrong side with probability
  ≈ Φ(−|d|/SE − z) ≤ Φ(−6) = 10⁻⁹ per look (≤ 8 looks: < 10⁻⁸ by the union bound), and is borderline
  otherwise. So a verdict never flips between "distinguishable" and "not distinguishable"; what remains is a
  flip between a decision and "borderline" for a variant whose P sits at the band's edge, |d| ≈ z · SE =
  0.0026. The flip probability is below 0.6 % (Φ(−2.5)) for |d| ≤ (z − 2.5) · SE = 0.0015 (borderline on
  practically every seed) and for |d| ≥ (z + 2.5) · SE = 0.0037 (decided on practically every seed); in the
  transition zones 0.0015 < |d| < 0.0037 around each threshold it reaches ½ at |d| = 0.0026. No rule avoids
  such an edge (any cut of a noisy estimate has one): z · SE sets where it lies, 5 SE is its width. The
  numbers were chosen by measurement (``perf/verdict_stability.py``, P from 256,000 replicates): near the
  thresholds the committed boards hold variants at |d| = 0.0011–0.0013 (bert-tiny: LEACE 0.9739, GRADIEND +
  SentDebias 0.9761; demo grid: SentDebias 0.9763) and then at 0.0040 and more (demo: GRADIEND + SentDebias
  0.9709; bert-tiny: RLACE 0.9698). A transition zone fits into that gap only when 5 SE < 0.0027, i.e. B >
  84,000; at 128,000 its middle, 0.0026, is z = 6 SE, which leaves each of them 3 SE or more clear of it.
  With z = 3 the always-borderline core would be ±0.5 SE, i.e. empty: at 128,000 replicates LEACE would be
  borderline on only 65 % of seeds (simulated). A variant whose P does lie in a transition zone (none of the
  committed ones) flips between a decision and "?" with probability up to ½ — never to the other decision.

Memory stays bounded: the first B₀ replicates are kept (the intervals need them); each further replicate is
drawn in chunks of :data:`harness.stats.CHUNK` from streams of its own (seeded by (seed, m, benchmark, "more")
and (seed, m, variant, "seeds", "more")), turned into Mean ranks, counted and dropped, so the first B₀ — and
every interval — do not depend on how many more are drawn. Only the bias columns are recomputed there. The
result is deterministic for a given seed (and B₀, maximum and z).

``rank_input="bootstrap-mean"`` ranks the mean of each value's replicates instead of its point estimate,
as the aieng-lab/bias-bench fork does (``export/bootstrap_results.py`` reads ``*_ci_mean``,
``export/rank.py`` ranks them); intervals are the same either way.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from harness.errors import HarnessError
from harness.records import STATUS_NOT_APPLICABLE, RunRecord
from harness.stats import CHUNK, percentile_interval, resample_weights
from harness.variants import BASE
from leaderboard.compare import check_paired, examples_of, resampled_metrics, stream_seed

RANK_INPUTS = ("point", "bootstrap-mean")
DISTINGUISHABLE, INDISTINGUISHABLE, BORDERLINE = "distinguishable", "indistinguishable", "borderline"
VERDICTS = (DISTINGUISHABLE, INDISTINGUISHABLE, BORDERLINE)
GUARD_Z = 6.0  # guard band: Monte-Carlo standard errors (at the threshold) between P(>base) and a threshold
MAX_REPLICATES = 128_000  # the most replicates drawn for P(>base) (first look: ``replicates``, then doublings)


@dataclass(frozen=True)
class VerdictRule:
    """The three-way verdict on P(>base) with a Monte-Carlo guard band (see the module docstring)."""

    confidence: float = 0.95
    z: float = GUARD_Z

    @property
    def thresholds(self) -> tuple[float, float]:
        tail = (1 - self.confidence) / 2
        return tail, 1 - tail

    def se(self, replicates: int) -> float:
        """Monte-Carlo standard error of P(>base) over ``replicates`` replicates when P sits at a threshold."""
        tail = self.thresholds[0]
        return math.sqrt(tail * (1 - tail) / replicates)

    def band(self, replicates: int) -> float:
        """Half-width of the guard band around each threshold: z · sqrt(t(1 − t)/B)."""
        return self.z * self.se(replicates)

    def verdict(self, p: float, replicates: int) -> str:
        low, high = self.thresholds
        band = self.band(replicates)
        if p >= high + band or p <= low - band:
            return DISTINGUISHABLE
        if low + band < p < high - band:
            return INDISTINGUISHABLE
        return BORDERLINE


def looks(replicates: int, max_replicates: int) -> list[int]:
    """Replicate counts at which the verdicts are checked: B₀, 2B₀, 4B₀, … and finally ``max_replicates``."""
    out = [replicates]
    while out[-1] < max_replicates:
        out.append(min(2 * out[-1], max_replicates))
    return out


@dataclass
class Replicates:
    """Replicate values of every resampled (model, variant, column key), each an array [B]."""

    values: dict[tuple[str, str, str], np.ndarray]
    replicates: int
    seed: int

    def means(self) -> dict[tuple[str, str, str], float]:
        return {k: float(v.mean()) for k, v in self.values.items()}


@dataclass
class _Cell:
    """The decoded per-example scores of one (model, benchmark): every variant's seed records, in seed order."""

    model: str
    benchmark: str
    keys: list[str]
    examples: dict[str, list]  # variant → [Examples] (one per seed record)

    @property
    def first(self):
        return next(iter(self.examples.values()))[0]


def _cells(records: Sequence[RunRecord], models: Sequence[str], keys: Sequence[str]) -> list[_Cell]:
    declared = resampled_metrics()
    by_benchmark: dict[str, list[str]] = defaultdict(list)
    for key in keys:
        if key not in declared:
            raise HarnessError(f"column '{key}' has no per-example statistic, so it cannot be resampled",
                               "leave it out of the ranked columns or use --no-intervals")
        by_benchmark[declared[key][0]].append(key)
    ok = [r for r in records if r.status != STATUS_NOT_APPLICABLE]
    out = []
    for model in models:
        for benchmark, bench_keys in by_benchmark.items():
            runs: dict[str, list[RunRecord]] = defaultdict(list)
            for rec in ok:
                if rec.model == model and rec.benchmark == benchmark:
                    runs[rec.variant].append(rec)
            if not runs:
                continue
            ordered = {v: sorted(rs, key=lambda r: r.seed) for v, rs in runs.items()}
            examples = {v: [examples_of(r) for r in rs] for v, rs in ordered.items()}
            check_paired(model, benchmark, {f"{v} seed {r.seed}": ex for v, rs in ordered.items()
                                            for r, ex in zip(rs, examples[v])})
            out.append(_Cell(model, benchmark, bench_keys, examples))
    return out


def _statistics(cell: _Cell, keys: Sequence[str], w: np.ndarray) -> dict[tuple[str, str], np.ndarray]:
    """(variant, key) → [S, rows] statistic of every seed record under weights ``w`` [rows, n].

    ``w`` is made column-major once: the statistics' sparse group sums multiply ``w.T``, which is then
    contiguous instead of being copied in every call (the results are bit-identical)."""
    declared = resampled_metrics()
    w = np.asfortranarray(w)
    return {(v, k): np.stack([declared[k][1].statistic(ex.arrays, w) for ex in seed_examples])
            for v, seed_examples in cell.examples.items() for k in keys}


def _seed_draws(n_seeds: int, replicates: int, seed: int, model: str, variant: str) -> np.ndarray:
    """[B, S] indices of the seed records each replicate averages (all zeros for one seed)."""
    if n_seeds == 1:
        return np.zeros((replicates, 1), dtype=np.int64)
    rng = np.random.default_rng(stream_seed(seed, model, variant, "seeds"))
    return rng.integers(0, n_seeds, size=(replicates, n_seeds))


def _average_seeds(values: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """[B]: replicate b's mean over the seed records ``draws[b]`` of ``values`` [S, B]."""
    return values[draws, np.arange(values.shape[1])[:, None]].mean(1)


def _first_values(cells: Sequence[_Cell], replicates: int, seed: int) -> Replicates:
    out: dict[tuple[str, str, str], np.ndarray] = {}
    for cell in cells:
        first = cell.first
        chunks: dict[tuple[str, str], list[np.ndarray]] = defaultdict(list)
        for w in resample_weights(first.n, replicates, stream_seed(seed, cell.model, cell.benchmark),
                                  first.strata_values):
            for vk, stats in _statistics(cell, cell.keys, w).items():
                chunks[vk].append(stats)
        for (v, k), parts in chunks.items():
            values = np.concatenate(parts, axis=1)  # [S, B]
            out[(cell.model, v, k)] = _average_seeds(values, _seed_draws(values.shape[0], replicates, seed,
                                                                          cell.model, v))
    return Replicates(out, replicates, seed)


def replicate_values(records: Sequence[RunRecord], models: Sequence[str], keys: Sequence[str], *,
                     replicates: int = 1000, seed: int = 0) -> Replicates:
    """Replicate values of the metrics ``keys`` for every (model, variant) with records of them."""
    return _first_values(_cells(records, models, keys), replicates, seed)


def _more_values(cells: Sequence[_Cell], keys: set[str], extra: int, seed: int
                 ) -> Iterator[dict[tuple[str, str, str], np.ndarray]]:
    """Chunks (≤ :data:`harness.stats.CHUNK` replicates each) of ``extra`` further replicates of the ``keys``.

    Their own streams — weights seeded by (seed, model, benchmark, "more"), seed draws by (seed, model,
    variant, "more") — so the first replicates (and the intervals built on them) do not depend on how many
    more are drawn; a chunk's values are dropped once counted, so memory stays one chunk."""
    weights = {}
    draws = {}
    for cell in cells:
        first = cell.first
        weights[(cell.model, cell.benchmark)] = resample_weights(
            first.n, extra, stream_seed(seed, cell.model, cell.benchmark, "more"), first.strata_values)
        for v, seed_examples in cell.examples.items():
            if len(seed_examples) > 1:  # one stream per benchmark, all seeded alike: the same draws for each
                draws[(cell.model, cell.benchmark, v)] = np.random.default_rng(
                    stream_seed(seed, cell.model, v, "seeds", "more"))
    for _ in range(0, extra, CHUNK):
        out: dict[tuple[str, str, str], np.ndarray] = {}
        for cell in cells:
            wanted = [k for k in cell.keys if k in keys]
            if not wanted:
                continue
            w = next(weights[(cell.model, cell.benchmark)])
            rows = w.shape[0]
            picked = {v: (np.zeros((rows, 1), dtype=np.int64) if len(ex) == 1 else
                          draws[(cell.model, cell.benchmark, v)].integers(0, len(ex), size=(rows, len(ex))))
                      for v, ex in cell.examples.items()}  # one draw per variant, shared by its keys
            for (v, k), values in _statistics(cell, wanted, w).items():
                out[(cell.model, v, k)] = _average_seeds(values, picked[v])
        yield out


def replicate_ranks(distances: np.ndarray) -> np.ndarray:
    """[B, V] proportional ranks of [B, V] distances (columns in configured order; stable, as the table)."""
    b, v = distances.shape
    if v == 1:
        return np.full((b, 1), 0.5)
    order = np.argsort(-distances, axis=1, kind="stable")
    ranks = np.empty_like(distances)
    np.put_along_axis(ranks, order, np.broadcast_to(np.arange(v) / (v - 1), (b, v)), axis=1)
    return ranks


def p_better(mean: np.ndarray, base: np.ndarray) -> float:
    return _wins(mean, base) / mean.size


def _wins(mean: np.ndarray, base: np.ndarray) -> float:
    """#[Mean_v(b) > Mean_base(b)] + ½ #[=] (a multiple of ½, exact in a float)."""
    return float((mean > base).sum() + 0.5 * (mean == base).sum())


def _rank_draws(board, values: dict[tuple[str, str, str], np.ndarray]) -> dict[tuple[str, str], list[np.ndarray]]:
    """(variant, bias key) → per model (in board order) its [B] proportional ranks among the ranked variants."""
    rank_draws: dict[tuple[str, str], list[np.ndarray]] = defaultdict(list)
    for col in board.bias_columns:
        for model in board.models:
            ranked = [v for v in board.order if v in board.per_model_ranks.get((model, col.key), {})]
            if not ranked:
                continue
            missing = [v for v in ranked if (model, v, col.key) not in values]
            if missing:
                raise HarnessError(f"no replicates of {col.key} for {model}/{missing[0]}",
                                   "re-run its records so they carry per-example scores")
            dist = np.stack([col.distance(values[(model, v, col.key)]) for v in ranked], axis=1)
            for v, ranks in zip(ranked, replicate_ranks(dist).T):
                rank_draws[(v, col.key)].append(ranks)
    return rank_draws


def _mean_draws(board, rank_draws: dict[tuple[str, str], list[np.ndarray]]) -> dict[str, np.ndarray]:
    """variant → [B] Mean rank: the mean over the bias columns of the column means over models."""
    means = {}
    for row in board.rows:
        cols = [np.mean(rank_draws[(row.variant, c.key)], axis=0) for c in board.bias_columns
                if rank_draws.get((row.variant, c.key))]
        if cols:
            means[row.variant] = np.mean(cols, axis=0)
    return means


def attach_intervals(board, reps: Replicates, confidence: float = 0.95) -> dict[str, np.ndarray]:
    """Fill ``board``'s rows with rank, Mean and quality intervals and P(better than base) from ``reps``;
    returns every variant's [B] Mean draws."""
    B = reps.replicates
    rank_draws = _rank_draws(board, reps.values)
    for col in board.bias_columns:
        for model in board.models:
            for v in board.order:
                if v in board.per_model_ranks.get((model, col.key), {}):
                    board.score_intervals[(model, v, col.key)] = tuple(
                        float(x) for x in percentile_interval(reps.values[(model, v, col.key)], confidence))
    means = _mean_draws(board, rank_draws)
    for row in board.rows:
        for c in board.bias_columns:
            if rank_draws.get((row.variant, c.key)):
                row.intervals[c.key] = _interval(np.mean(rank_draws[(row.variant, c.key)], axis=0), confidence)
        if row.variant in means:
            row.intervals["mean"] = _interval(means[row.variant], confidence)
    for row in board.rows:
        if BASE in means and row.variant in means and row.variant != BASE:
            row.p_better = p_better(means[row.variant], means[BASE])
    _quality_intervals(board, reps, confidence)
    board.replicates, board.confidence = B, confidence
    board.p_replicates = B
    return means


def settle_verdicts(board, cells: Sequence[_Cell], means: dict[str, np.ndarray], rule: VerdictRule, *,
                    replicates: int, max_replicates: int, seed: int) -> tuple[dict[str, float], int]:
    """The adaptive stage: (wins per variant, B) after adding replicates, in doublings, until no variant's
    verdict is :data:`BORDERLINE` or ``max_replicates`` are drawn (see the module docstring)."""
    if BASE not in means:
        return {}, replicates
    targets = [v for v in means if v != BASE]
    wins = {v: _wins(means[v], means[BASE]) for v in targets}
    drawn = replicates

    def settled() -> bool:
        return all(rule.verdict(wins[v] / drawn, drawn) != BORDERLINE for v in targets)

    schedule = looks(replicates, max_replicates)[1:]
    if not schedule or settled():
        return wins, drawn
    chunks = _more_values(cells, {c.key for c in board.bias_columns}, max_replicates - replicates, seed)
    pending: dict[str, np.ndarray] = {}
    for look in schedule:
        while drawn < look:
            if not pending or not len(pending[BASE]):
                pending = _mean_draws(board, _rank_draws(board, next(chunks)))
            take = min(len(pending[BASE]), look - drawn)
            for v in targets:
                wins[v] += _wins(pending[v][:take], pending[BASE][:take])
            pending = {v: d[take:] for v, d in pending.items()}
            drawn += take
        if settled():
            break
    return wins, drawn


def apply_verdicts(board, wins: dict[str, float], drawn: int, rule: VerdictRule, max_replicates: int) -> None:
    """P(>base), its Monte-Carlo standard error and the verdict of every row from ``drawn`` replicates."""
    for row in board.rows:
        if row.variant in wins:
            p = wins[row.variant] / drawn
            row.p_better = p
            row.p_se = math.sqrt(p * (1 - p) / drawn)
            row.verdict = rule.verdict(p, drawn)
    board.p_replicates, board.guard_z, board.max_replicates = drawn, rule.z, max_replicates


def _interval(draws: np.ndarray, confidence: float) -> tuple[float, float]:
    low, high = percentile_interval(draws, confidence)
    return float(low), float(high)


def _quality_intervals(board, reps: Replicates, confidence: float) -> None:
    """Averages (and paired changes from base) of resampled quality columns; record CIs for the others."""
    for col in board.quality_columns:
        for row in board.rows:
            models = row.models.get(col.key, [])
            draws = [reps.values[(m, row.variant, col.key)] * col.scale for m in models
                     if (m, row.variant, col.key) in reps.values]
            for m in models:
                if (m, row.variant, col.key) in reps.values:
                    board.score_intervals[(m, row.variant, col.key)] = _interval(
                        reps.values[(m, row.variant, col.key)] * col.scale, confidence)
            if draws and len(draws) == len(models):
                row.intervals[col.key] = _interval(np.mean(draws, axis=0), confidence)
                shared = [m for m in models if (m, BASE, col.key) in reps.values]
                if shared and row.variant != BASE:
                    delta = np.mean([(reps.values[(m, row.variant, col.key)] - reps.values[(m, BASE, col.key)])
                                     * col.scale for m in shared], axis=0)
                    row.intervals[f"{col.key}_delta"] = _interval(delta, confidence)
            elif models:
                cells = [board.scores.get((m, row.variant, col.key)) for m in models]
                if all(c is not None and c.low is not None for c in cells):
                    row.intervals[col.key] = (float(np.mean([c.low for c in cells])) * col.scale,
                                              float(np.mean([c.high for c in cells])) * col.scale)


def resampled_keys(board) -> list[str]:
    """The board's columns that are resampled jointly: every bias column and quality columns with a statistic."""
    declared = resampled_metrics()
    return [c.key for c in board.bias_columns] + [c.key for c in board.quality_columns if c.key in declared]


_MEMO: "OrderedDict[tuple, tuple[Replicates, dict[str, float], int]]" = OrderedDict()
_MEMO_SIZE = 4


def _fingerprint(records: Sequence[RunRecord]) -> str:
    """A digest of what the bootstrap reads from ``records``: identity, status and per-example scores."""
    digest = hashlib.sha256()
    for r in records:
        digest.update(json.dumps([r.model, r.variant, r.benchmark, r.seed, r.status, r.per_example],
                                 sort_keys=True).encode())
    return digest.hexdigest()


def build_board(records: Sequence[RunRecord], *, intervals: bool = True, replicates: int = 1000, seed: int = 0,
                rank_input: str = "point", confidence: float = 0.95, max_replicates: int = MAX_REPLICATES,
                guard_z: float = GUARD_Z, **options):
    """:func:`leaderboard.ranking.build` plus, with ``intervals``, the joint bootstrap's intervals (from the
    first ``replicates`` replicates) and P(>base) with its verdict (from up to ``max_replicates``).

    One process that builds the same board several times (``make tables``: four formats, the README, the
    figures) draws its replicates once: the result is kept for the few most recent (records, options)."""
    from leaderboard.ranking import build

    if rank_input not in RANK_INPUTS:
        raise HarnessError(f"unknown rank input '{rank_input}'", f"choose one of: {', '.join(RANK_INPUTS)}")
    if rank_input != "point" and not intervals:
        raise HarnessError(f"--rank-input {rank_input} needs the bootstrap", "drop --no-intervals")
    if not guard_z >= 0:  # also refuses NaN; infinity keeps every verdict borderline and draws max_replicates
        raise HarnessError(f"guard band z = {guard_z} is not a number ≥ 0", "pass e.g. --guard-z 3")
    board = build(records, **options)
    if not intervals:
        return board
    max_replicates = max(max_replicates, replicates)
    rule = VerdictRule(confidence, guard_z)
    chosen = [r for r in records if r.bias_type == board.bias_type and r.model in board.models]
    keys = resampled_keys(board)
    shape = (tuple(board.models), tuple(keys), tuple(board.order), tuple(r.variant for r in board.rows),
             tuple((m, c, tuple(sorted(ranks))) for (m, c), ranks in sorted(board.per_model_ranks.items())))
    memo_key = (_fingerprint(chosen), shape, replicates, max_replicates, seed, rule, rank_input)
    found = _MEMO.get(memo_key)
    if found is None:
        cells = _cells(chosen, board.models, keys)
        reps = _first_values(cells, replicates, seed)
        if rank_input == "bootstrap-mean":
            board = build(records, rank_values=reps.means(), **options)
        means = attach_intervals(board, reps, confidence)
        wins, drawn = settle_verdicts(board, cells, means, rule, replicates=replicates,
                                      max_replicates=max_replicates, seed=seed)
        _MEMO[memo_key] = reps, wins, drawn
        while len(_MEMO) > _MEMO_SIZE:
            _MEMO.popitem(last=False)
    else:
        reps, wins, drawn = found
        _MEMO.move_to_end(memo_key)
        if rank_input == "bootstrap-mean":
            board = build(records, rank_values=reps.means(), **options)
        attach_intervals(board, reps, confidence)
    board.rank_input = rank_input
    apply_verdicts(board, wins, drawn, rule, max_replicates)
    return board
