"""Joint paired bootstrap of the leaderboard: how sure is every rank, every Mean, every LMS?

Per model m and benchmark, one stream of replicate weights ``w`` [B, n] over that benchmark's examples
(:func:`harness.stats.resample_weights`, seeded by (seed, m, benchmark)) is shared by *all* variants — they
were scored on the same examples, so the comparison is paired. Models are resampled independently. Where a
variant has several seeds, the seeds are a second level: replicate b draws S seeds with replacement from the
variant's S seed records (seeded by (seed, m, variant), so the same draws serve every benchmark of the
variant) and averages their statistics. Replicate b then recomputes, exactly as the table does,

    value_{m,v,k}(b)  →  proportional rank r_{m,k,v}(b)  →  column mean over models  →  Mean_v(b),

and the interval of every cell is the percentile interval of its B replicates. Each variant also gets

    P(better than base) = (#[Mean_v(b) > Mean_base(b)] + ½ #[Mean_v(b) = Mean_base(b)]) / B,

and counts as *distinguishable* from the base model when that is ≥ 1 − α/2 or ≤ α/2 (α = 0.05). Quality
metrics with a per-example statistic (LMS) get intervals of their averages and of their paired change from
the base model; the others (GLUE, SuperGLUE) show the records' own CIs. Deterministic for a given seed.

``rank_input="bootstrap-mean"`` ranks the mean of each value's replicates instead of its point estimate,
as the aieng-lab/bias-bench fork does (``export/bootstrap_results.py`` reads ``*_ci_mean``,
``export/rank.py`` ranks them); intervals are the same either way.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from harness.errors import HarnessError
from harness.records import STATUS_NOT_APPLICABLE, RunRecord
from harness.stats import percentile_interval, resample_weights
from harness.variants import BASE
from leaderboard.compare import check_paired, examples_of, resampled_metrics, stream_seed

RANK_INPUTS = ("point", "bootstrap-mean")


@dataclass
class Replicates:
    """Replicate values of every resampled (model, variant, column key), each an array [B]."""

    values: dict[tuple[str, str, str], np.ndarray]
    replicates: int
    seed: int

    def means(self) -> dict[tuple[str, str, str], float]:
        return {k: float(v.mean()) for k, v in self.values.items()}


def _seed_draws(n_seeds: int, replicates: int, seed: int, model: str, variant: str) -> np.ndarray:
    """[B, S] indices of the seed records each replicate averages (all zeros for one seed)."""
    if n_seeds == 1:
        return np.zeros((replicates, 1), dtype=np.int64)
    rng = np.random.default_rng(stream_seed(seed, model, variant, "seeds"))
    return rng.integers(0, n_seeds, size=(replicates, n_seeds))


def replicate_values(records: Sequence[RunRecord], models: Sequence[str], keys: Sequence[str], *,
                     replicates: int = 1000, seed: int = 0) -> Replicates:
    """Replicate values of the metrics ``keys`` for every (model, variant) with records of them."""
    declared = resampled_metrics()
    by_benchmark: dict[str, list[str]] = defaultdict(list)
    for key in keys:
        if key not in declared:
            raise HarnessError(f"column '{key}' has no per-example statistic, so it cannot be resampled",
                               "leave it out of the ranked columns or use --no-intervals")
        by_benchmark[declared[key][0]].append(key)
    ok = [r for r in records if r.status != STATUS_NOT_APPLICABLE]
    out: dict[tuple[str, str, str], np.ndarray] = {}
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
            first = next(iter(examples.values()))[0]
            per_seed = {(v, k): [] for v in examples for k in bench_keys}
            for w in resample_weights(first.n, replicates, stream_seed(seed, model, benchmark), first.strata_values):
                for v, seed_examples in examples.items():
                    for k in bench_keys:
                        per_seed[(v, k)].append(np.stack([declared[k][1].statistic(ex.arrays, w)
                                                          for ex in seed_examples]))
            for (v, k), chunks in per_seed.items():
                values = np.concatenate(chunks, axis=1)  # [S, B]
                draws = _seed_draws(values.shape[0], replicates, seed, model, v)
                out[(model, v, k)] = values[draws, np.arange(replicates)[:, None]].mean(1)
    return Replicates(out, replicates, seed)


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
    return float(((mean > base).sum() + 0.5 * (mean == base).sum()) / mean.size)


def attach_intervals(board, reps: Replicates, confidence: float = 0.95) -> None:
    """Fill ``board``'s rows with rank, Mean and quality intervals and P(better than base)."""
    B = reps.replicates
    rank_draws: dict[tuple[str, str], list[np.ndarray]] = defaultdict(list)  # (variant, key) → per-model [B]
    for col in board.bias_columns:
        for model in board.models:
            ranked = [v for v in board.order if v in board.per_model_ranks.get((model, col.key), {})]
            if not ranked:
                continue
            missing = [v for v in ranked if (model, v, col.key) not in reps.values]
            if missing:
                raise HarnessError(f"no replicates of {col.key} for {model}/{missing[0]}",
                                   "re-run its records so they carry per-example scores")
            dist = np.stack([col.distance(reps.values[(model, v, col.key)]) for v in ranked], axis=1)
            for v, ranks in zip(ranked, replicate_ranks(dist).T):
                rank_draws[(v, col.key)].append(ranks)
            for v in ranked:
                board.score_intervals[(model, v, col.key)] = tuple(
                    float(x) for x in percentile_interval(reps.values[(model, v, col.key)], confidence))
    means: dict[str, np.ndarray] = {}
    for row in board.rows:
        cols = [np.mean(rank_draws[(row.variant, c.key)], axis=0) for c in board.bias_columns
                if rank_draws.get((row.variant, c.key))]
        for c in board.bias_columns:
            if rank_draws.get((row.variant, c.key)):
                row.intervals[c.key] = _interval(np.mean(rank_draws[(row.variant, c.key)], axis=0), confidence)
        if cols:
            means[row.variant] = np.mean(cols, axis=0)
            row.intervals["mean"] = _interval(means[row.variant], confidence)
    for row in board.rows:
        if BASE in means and row.variant in means and row.variant != BASE:
            row.p_better = p_better(means[row.variant], means[BASE])
    _quality_intervals(board, reps, confidence)
    board.replicates, board.confidence = B, confidence


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


def build_board(records: Sequence[RunRecord], *, intervals: bool = True, replicates: int = 1000, seed: int = 0,
                rank_input: str = "point", confidence: float = 0.95, **options):
    """:func:`leaderboard.ranking.build` plus, with ``intervals``, the joint bootstrap's intervals."""
    from leaderboard.ranking import build

    if rank_input not in RANK_INPUTS:
        raise HarnessError(f"unknown rank input '{rank_input}'", f"choose one of: {', '.join(RANK_INPUTS)}")
    if rank_input != "point" and not intervals:
        raise HarnessError(f"--rank-input {rank_input} needs the bootstrap", "drop --no-intervals")
    board = build(records, **options)
    if not intervals:
        return board
    chosen = [r for r in records if r.bias_type == board.bias_type and r.model in board.models]
    reps = replicate_values(chosen, board.models, resampled_keys(board), replicates=replicates, seed=seed)
    if rank_input == "bootstrap-mean":
        board = build(records, rank_values=reps.means(), **options)
    board.rank_input = rank_input
    attach_intervals(board, reps, confidence)
    return board
