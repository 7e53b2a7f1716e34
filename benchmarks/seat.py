"""SEAT, the Sentence Encoder Association Test (May et al. 2019), as in bias-bench (Meade et al. 2022).

Each test has target sentence sets X, Y (e.g. male / female names, |X| = |Y| = n) and attribute sets
A, B (e.g. career / family). Sentences are represented by ``lm.pooled(texts, normalize=True)``: the
L2-normalised attention-masked mean of the final hidden state (hooks active), so cosine similarity is a
dot product and all similarities of a test are one matrix product. With

.. math::

    s(w, A, B) = \\frac{1}{|A|}\\sum_{a \\in A} \\cos(w, a) - \\frac{1}{|B|}\\sum_{b \\in B} \\cos(w, b)

the **effect size** (Caliskan et al. 2017) is

.. math::

    d = \\frac{\\operatorname{mean}_{x \\in X} s(x, A, B) - \\operatorname{mean}_{y \\in Y} s(y, A, B)}
             {\\operatorname{std}_{w \\in X \\cup Y} s(w, A, B)}   \\quad (\\text{sample std, ddof} = 1)

and the **test statistic** :math:`s(X, Y, A, B) = \\sum_{x \\in X} s(x, A, B) - \\sum_{y \\in Y} s(y, A, B)`.
Over equal-size partitions (X', Y') of X ∪ Y the total is constant, so the statistic is monotone in
:math:`S(X') = \\sum_{x \\in X'} s(x, A, B)`. The one-sided **p-value** is

.. math::

    p = \\Pr_{X'}\\big[S(X') \\ge S(X)\\big]

(ties count, the reference's conservative test): exact over all :math:`\\binom{2n}{n}` partitions when
that is at most ``exact_limit``; otherwise ``n_permutations − 1`` seeded random partitions plus the
observed one, :math:`p = (1 + \\#\\{S(X'_i) \\ge S(X)\\}) / n_\\text{permutations}` (the reference's
"bias by one"). Both are vectorised: s(w, A, B) is computed once, partitions are 0/1 membership rows
(exact) or index rows (random) and their sums are matrix products / gathers, chunked to bound memory.

**Instruct models.** bias-bench wraps Llama-3.2-3B-Instruct's SEAT sentences in its Llama-3 chat prompt (empty
system turn, the sentence as the user turn, the assistant header; ``bias_bench/model/__init__.py``,
``InstructTokenizerWrapper``) and averages over every token of it, the two BOS tokens and the prompt's included
(``bias_bench/benchmark/seat/seat.py`` ``_encode``); so does this benchmark for a model that
:func:`harness.models.chat.bias_bench_chat` picks, and records ``chat_template: {used, reason}``. Every other
model encodes the bare sentences as before.

The leaderboard metric is ``effect_size_mean_abs``, the mean |d| over the bias type's tests (lower is
better); each test's d and p are recorded as ``effect_size:<test>`` and ``p_value:<test>``.

**Resampling unit.** The record keeps s(w, A, B) of every target sentence (per test, per set), so the
leaderboard can resample it: a replicate draws each test's X and Y anew from themselves (stratified, so
|X| and |Y| stay fixed) and recomputes every d with the attribute sets held fixed (they define the concept
being measured), then mean |d|. With frequency weights :math:`w`,
:math:`d = (\\bar s_X - \\bar s_Y)/\\sqrt{(\\sum w s^2 - (\\sum w s)^2/N)/(N-1)}`, :math:`N = \\sum w`, which is
Caliskan's d when every w is 1. (The aieng-lab/bias-bench fork, ``bias_bench/benchmark/seat/weat.py``
``run_test``, instead resamples the *embedding dimensions*; stimuli are what a replication would redraw.)
"""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import numpy as np

from harness.api import Benchmark, BenchmarkResult, RunContext, Score
from harness.errors import HarnessError
from harness.examples import Examples, digest
from harness.metrics import Metric
from harness.models.chat import bias_bench_inputs
from harness.models.interface import LanguageModel
from harness.options import Option
from harness.registry import register_benchmark
from harness.stats import bootstrap_score, group_sums

SETS = ("targ1", "targ2", "attr1", "attr2")
TESTS_BY_BIAS = {
    "gender": ("sent-weat6", "sent-weat6b", "sent-weat7", "sent-weat7b", "sent-weat8", "sent-weat8b"),
    "race": ("sent-angry_black_woman_stereotype", "sent-angry_black_woman_stereotype_b", "sent-weat3",
             "sent-weat3b", "sent-weat4", "sent-weat5", "sent-weat5b"),
    "religion": ("sent-religion1", "sent-religion1b", "sent-religion2", "sent-religion2b"),
}
_CHUNK_CELLS = 1 << 21  # partitions × set size per chunk (≈ 16 MiB of float64)


# -- statistics (pure functions) ---------------------------------------------------------------------
def _unit(rows) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float64)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-300)


def association(targets, attr_a, attr_b) -> np.ndarray:
    """s(w, A, B) for every row w of ``targets``: mean cosine to A minus mean cosine to B."""
    a = np.asarray(attr_a).shape[0]
    cos = _unit(targets) @ _unit(np.concatenate([attr_a, attr_b])).T  # one matrix product [W, |A|+|B|]
    return cos[:, :a].mean(1) - cos[:, a:].mean(1)


def effect_size_from_association(s_x, s_y) -> float:
    """(mean s over X − mean s over Y) / std over X ∪ Y (ddof=1); 0 when every s(w) is equal."""
    s_x, s_y = np.asarray(s_x, dtype=np.float64), np.asarray(s_y, dtype=np.float64)
    std = np.concatenate([s_x, s_y]).std(ddof=1)
    return float((s_x.mean() - s_y.mean()) / std) if std > 0 else 0.0


def effect_size(x, y, attr_a, attr_b) -> float:
    """Caliskan et al.'s effect size of target embeddings X, Y with attribute embeddings A, B."""
    s = association(np.concatenate([x, y]), attr_a, attr_b)
    return effect_size_from_association(s[:len(x)], s[len(x):])


def permutation_p_value(s_x, s_y, *, n_permutations: int = 100_000, exact_limit: int = 100_000,
                        seed: int = 0) -> tuple[float, bool]:
    """One-sided p = P[S(X') ≥ S(X)] over equal-size partitions of X ∪ Y; returns (p, exact?)."""
    s = np.concatenate([np.asarray(s_x, dtype=np.float64), np.asarray(s_y, dtype=np.float64)])
    n, m = len(s_x), len(s)
    if n == 0 or m != 2 * n:
        raise ValueError(f"permutation test needs target sets of equal, non-zero size (got {n} and {m - n})")
    observed = s[:n].sum()
    tol = 1e-12 * max(1.0, float(np.abs(s).sum()))  # sums in another order differ only by rounding: a tie
    if math.comb(m, n) <= exact_limit:
        return _exact_count(s, n, observed - tol) / math.comb(m, n), True
    if n_permutations < 1:
        raise ValueError("n_permutations must be at least 1")
    rng = np.random.default_rng(seed)
    hits, draws = 1, n_permutations - 1  # the observed partition counts once (the reference's bias by one)
    step = max(1, _CHUNK_CELLS // m)
    for start in range(0, draws, step):
        keys = rng.random((min(step, draws - start), m))
        members = np.argpartition(keys, n - 1, axis=1)[:, :n]  # the n smallest keys: a uniform n-subset
        hits += int(np.count_nonzero(s[members].sum(1) >= observed - tol))
    return hits / n_permutations, False


def _exact_count(s: np.ndarray, n: int, threshold: float) -> int:
    """#{X' ⊂ X ∪ Y, |X'| = n : S(X') ≥ threshold}, enumerating subsets as bit masks in chunks."""
    m = len(s)
    shifts = np.arange(m, dtype=np.int64)
    step = max(1, _CHUNK_CELLS // m)
    hits = total = 0
    for start in range(0, 1 << m, step):
        masks = np.arange(start, min(start + step, 1 << m), dtype=np.int64)
        bits = ((masks[:, None] >> shifts) & 1).astype(np.float64)  # 0/1 membership rows
        bits = bits[bits.sum(1) == n]
        hits += int(np.count_nonzero(bits @ s >= threshold))
        total += len(bits)
    assert total == math.comb(m, n)
    return hits


def weighted_effect_sizes(a, w: np.ndarray) -> np.ndarray:
    """[B, tests]: d of every test under frequency weights ``w`` [B, n] over the stored target sentences."""
    s, test, side = a["association"], a["test"].astype(np.int64), a["side"].astype(np.int64)
    groups = 2 * test + side  # X then Y of each test, in test order
    count, total, square = (group_sums(w, v, groups) for v in (np.ones_like(s), s, s * s))
    nx, ny, sx, sy = count[:, 0::2], count[:, 1::2], total[:, 0::2], total[:, 1::2]
    n = nx + ny
    var = (square[:, 0::2] + square[:, 1::2] - (sx + sy) ** 2 / n) / (n - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = (sx / nx - sy / ny) / np.sqrt(var)
    return np.where(var > 0, d, 0.0)


def mean_abs_effect_size(a, w: np.ndarray) -> np.ndarray:
    return np.abs(weighted_effect_sizes(a, w)).mean(1)


def stimulus_examples(tests: list[str], associations: dict[str, tuple[np.ndarray, np.ndarray]],
                      sentences: dict[str, tuple[list[str], list[str]]]) -> Examples:
    """s(w, A, B) of every target sentence, with its test and set (0: X, 1: Y); strata = (test, set)."""
    s, test, side, ids = [], [], [], []
    for t, name in enumerate(tests):
        for k, (values, texts) in enumerate(zip(associations[name], sentences[name])):
            s.append(np.asarray(values, dtype=np.float64))
            test += [t] * len(values)
            side += [k] * len(values)
            ids += [f"{name}:{k}:{text}" for text in texts]
    test_a, side_a = np.array(test, dtype=np.uint8), np.array(side, dtype=np.uint8)
    arrays = {"association": np.concatenate(s), "test": test_a, "side": side_a,
              "stratum": (2 * test_a + side_a).astype(np.uint8)}
    return Examples("target sentence", arrays, digest(ids), strata="stratum", labels={"test": list(tests)})


# -- data -------------------------------------------------------------------------------------------
def load_seat_test(path: str | Path) -> dict[str, dict]:
    """Read one SEAT file (one JSON object despite ``.jsonl``); malformed files raise HarnessError.

    Duplicate sentences within a set are kept once (the reference keys encodings by sentence).
    """
    path = Path(path)
    fix = "restore the file from the data mirror or bias-bench (`gradiend-bench data verify seat`)"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise HarnessError(f"SEAT file {path} cannot be read ({exc.strerror or exc})", fix) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HarnessError(f"SEAT file {path} is not valid JSON ({exc})", fix) from None
    if not isinstance(raw, dict):
        raise HarnessError(f"SEAT file {path} is not a JSON object", fix)
    missing = [k for k in SETS if not isinstance(raw.get(k), dict)]
    if missing:
        raise HarnessError(f"SEAT file {path} lacks key(s) {', '.join(missing)} (each an object with "
                           "'category' and 'examples')", fix)
    data = {}
    for key in SETS:
        examples = raw[key].get("examples")
        if not isinstance(examples, list) or not all(isinstance(e, str) for e in examples):
            raise HarnessError(f"SEAT file {path}: '{key}.examples' is not a list of sentences", fix)
        if not examples:
            raise HarnessError(f"SEAT file {path}: '{key}' has an empty example list", fix)
        data[key] = {"category": str(raw[key].get("category", key)), "examples": list(dict.fromkeys(examples))}
    n1, n2 = len(data["targ1"]["examples"]), len(data["targ2"]["examples"])
    if n1 != n2:
        raise HarnessError(f"SEAT file {path}: targ1 has {n1} examples but targ2 has {n2}",
                           "the permutation test needs target sets of equal size")
    return data


def available_tests() -> list[str]:
    from harness.data.catalog import catalog

    return sorted(name[:-len(".jsonl")] for name in catalog().entry("seat").files if name.endswith(".jsonl"))


# -- benchmark --------------------------------------------------------------------------------------
@register_benchmark("seat")
class SEAT(Benchmark):
    datasets = ("seat",)
    options_spec = {"tests": Option(list, None, allow_none=True, items=Option(str, ""), min_items=1, comma_text=True),
                    "n_permutations": Option(int, 100_000, minimum=1), "exact_limit": Option(int, 100_000, minimum=0),
                    "batch_size": Option(int, 64, minimum=1), "resamples": Option(int, 1000, minimum=0)}
    headline = ("effect_size_mean_abs",)
    execution_options = ("batch_size",)
    reads = "representations"
    version = 2  # per-sentence associations in the record; a bootstrap CI of mean |d|
    metrics = (Metric("seat", "effect_size_mean_abs", "SEAT", ideal=0.0, statistic=mean_abs_effect_size),)

    @classmethod
    def score_statistics(cls, examples: Examples) -> dict:
        """Mean |d| and every test's signed d (its p-value is a permutation count, checked by tolerance)."""
        statistics = super().score_statistics(examples)
        for index, test in enumerate(examples.labels.get("test", [])):
            statistics[f"effect_size:{test}"] = lambda a, w, index=index: weighted_effect_sizes(a, w)[:, index]
        return statistics

    def __init__(self, **options):
        super().__init__(**options)
        if self.options["tests"] is not None:
            self.tests(RunContext())  # unknown test names fail when the config is read

    def tests(self, ctx: RunContext) -> list[str]:
        chosen = self.options["tests"]
        if chosen is None:
            if ctx.bias_type not in TESTS_BY_BIAS:
                raise HarnessError(f"SEAT has no tests for bias type '{ctx.bias_type}'",
                                   f"choose one of: {', '.join(TESTS_BY_BIAS)}, or set the option 'tests'")
            return list(TESTS_BY_BIAS[ctx.bias_type])
        chosen = [t.strip() for t in chosen.split(",")] if isinstance(chosen, str) else [str(t) for t in chosen]
        allowed = available_tests()
        unknown = [t for t in chosen if t not in allowed]
        if unknown or not chosen:
            raise HarnessError(f"unknown SEAT test(s) {', '.join(unknown) or '(none given)'}",
                               f"allowed: {', '.join(allowed)}")
        return list(dict.fromkeys(chosen))

    def run(self, lm: LanguageModel, ctx: RunContext) -> BenchmarkResult:
        tests = self.tests(ctx)
        resolved = ctx.data("seat", [f"{t}.jsonl" for t in tests])
        data = {t: load_seat_test(resolved.path(f"{t}.jsonl")) for t in tests}
        # every unique sentence of every test in one batched pass, then indexed per set
        sentences = list(dict.fromkeys(e for d in data.values() for k in SETS for e in d[k]["examples"]))
        row = {text: i for i, text in enumerate(sentences)}
        inputs, chat = bias_bench_inputs(lm, sentences)  # the Instruct model's in bias-bench's chat prompt
        emb = lm.pooled(inputs, normalize=True, batch_size=self.options["batch_size"],
                        progress=ctx.progress).double().numpy()

        scores, per_test, kept, targets = {}, {}, {}, {}
        for test, d in data.items():
            x, y, a, b = ([row[e] for e in d[k]["examples"]] for k in SETS)
            s = association(emb[x + y], emb[a], emb[b])
            kept[test] = (s[:len(x)], s[len(x):])
            targets[test] = (d["targ1"]["examples"], d["targ2"]["examples"])
            d_value = effect_size_from_association(s[:len(x)], s[len(x):])
            p, exact = permutation_p_value(s[:len(x)], s[len(x):], n_permutations=self.options["n_permutations"],
                                           exact_limit=self.options["exact_limit"],
                                           seed=_test_seed(ctx.seed, test))
            scores[f"effect_size:{test}"] = Score(d_value, n=len(x) + len(y))
            scores[f"p_value:{test}"] = Score(p, n=math.comb(len(x) * 2, len(x)) if exact else
                                              self.options["n_permutations"])
            per_test[test] = {"effect_size": d_value, "p_value": p, "p_value_method": "exact" if exact else "random",
                              "sizes": {k: len(d[k]["examples"]) for k in SETS},
                              "categories": {k: d[k]["category"] for k in SETS}}
        examples = stimulus_examples(tests, kept, targets)
        mean_abs = bootstrap_score(mean_abs_effect_size, examples.arrays, examples.n, seed=ctx.seed,
                                   resamples=self.options["resamples"], strata=examples.strata_values)
        mean_abs.value = float(np.mean([abs(v["effect_size"]) for v in per_test.values()]))  # the exact formula
        mean_abs.n = len(tests)
        scores = {"effect_size_mean_abs": mean_abs, **scores}
        details = {"bias_type": ctx.bias_type, "tests": per_test, "sentences_encoded": len(sentences),
                   **({"chat_template": chat.note()} if chat.used else {})}  # only then: other records unchanged
        return BenchmarkResult(scores, details=details, per_example=examples)


def _test_seed(seed: int, test: str) -> list[int]:
    """Per-test random stream: a test's p-value does not depend on which other tests run."""
    return [int(seed), zlib.crc32(test.encode())]
