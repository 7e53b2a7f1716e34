"""Paired bootstrap comparison of two variants on the same examples, from the records alone.

For one model, both variants were scored on the same N examples (StereoSet clusters, CrowS pairs, SEAT target
sentences), whose per-example scores the records hold. One set of replicate weights ``w`` [B, N]
(:func:`harness.stats.resample_weights`) is applied to *both* variants, so every replicate compares them on
identical examples:

    d*_b = f(A; w_b) − f(B; w_b),    CI = percentiles (2.5, 97.5) of d*,
    p = min(1, 2 · (min(#[d* ≤ 0], #[d* ≥ 0]) + 1) / (B + 1))     (two-sided, bootstrap sign test)

For bias metrics (declared with an ideal value, e.g. SS and CrowS 50, SEAT 0) a second row compares the *bias*
itself, ``|f(A) − ideal| − |f(B) − ideal|`` (negative: A is less biased). ``f`` is the benchmark's own declared
statistic (:class:`harness.metrics.Metric`), so this module knows no benchmark.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from harness.errors import HarnessError
from harness.examples import Examples
from harness.records import RunRecord
from harness.stats import p_two_sided, percentile_interval, point, resample_weights

RERUN = "re-run its grid: `gradiend-bench run CONFIG` recomputes the records that lack per-example scores"


def resampled_metrics() -> dict[str, tuple[str, object]]:
    """Metric key → (benchmark, Metric) for the metrics that can be recomputed from per-example scores."""
    from harness.registry import declared_metrics

    return {k: (b, m) for k, (b, m) in declared_metrics().items() if m.statistic is not None}


def examples_of(rec: RunRecord) -> Examples:
    """The record's per-example scores; a one-line error naming the record when it has none."""
    found = rec.examples()
    if found is None:
        raise HarnessError(f"the {rec.benchmark} record of {rec.model}/{rec.variant} seed {rec.seed} has no "
                           "per-example scores (it predates them)", RERUN)
    return found


def check_paired(model: str, benchmark: str, examples: dict[str, Examples]) -> None:
    """All runs of one (model, benchmark) must be scored on the same examples for a paired bootstrap."""
    digests = {name: ex.ids_digest for name, ex in examples.items()}
    if len(set(digests.values())) > 1:
        first = next(iter(digests))
        other = next(name for name, d in digests.items() if d != digests[first])
        raise HarnessError(f"{model}: {first} and {other} were not scored on the same {benchmark} examples",
                           "re-run them with the same benchmark options and data")


def stream_seed(seed: int, *parts: str) -> list[int]:
    """A replicate stream per (seed, model, benchmark): independent across models, shared across variants."""
    return [int(seed), *(zlib.crc32(p.encode()) for p in parts)]


@dataclass(frozen=True)
class Comparison:
    model: str
    quantity: str  # e.g. "ss" or "|ss − 50|"
    a: float
    b: float
    diff: float
    low: float
    high: float
    p_value: float
    n: int


def paired_bootstrap(a: Examples, b: Examples, metric, model: str, *, resamples: int = 10_000, seed: int = 0,
                     confidence: float = 0.95) -> list[Comparison]:
    """Difference A − B of the metric's statistic (and of its distance from the ideal) over shared replicates."""
    check_paired(model, metric.key, {"A": a, "B": b})
    n = a.n
    if n == 0:
        raise HarnessError(f"{model}: no {metric.key} examples to compare", "check the benchmark's bias type")
    point_a, point_b = point(metric.statistic, a.arrays, n), point(metric.statistic, b.arrays, n)
    draws_a, draws_b = [], []
    for w in resample_weights(n, resamples, stream_seed(seed, model, metric.key), a.strata_values):
        draws_a.append(metric.statistic(a.arrays, w))
        draws_b.append(metric.statistic(b.arrays, w))
    boot_a, boot_b = np.concatenate(draws_a), np.concatenate(draws_b)
    quantities = [(metric.key, point_a, point_b, boot_a - boot_b)]
    if metric.is_bias:
        quantities.append((f"|{metric.key} − {metric.ideal:g}|", metric.distance(point_a), metric.distance(point_b),
                           metric.distance(boot_a) - metric.distance(boot_b)))
    out = []
    for quantity, va, vb, boot in quantities:
        low, high = percentile_interval(boot, confidence)
        out.append(Comparison(model, quantity, va, vb, va - vb, float(low), float(high), p_two_sided(boot), n))
    return out


def pick(records: Sequence[RunRecord], model: str, variant: str, benchmark: str, seed: int | None) -> RunRecord:
    found = [r for r in records if r.model == model and r.variant == variant and r.benchmark == benchmark
             and r.status == "ok" and (seed is None or r.seed == seed)]
    if not found:
        raise HarnessError(f"no {benchmark} record of {model}/{variant}" + (f" for seed {seed}" if seed is not None
                                                                            else ""),
                           f"run the grid with variant '{variant}' and benchmark '{benchmark}' first")
    return min(found, key=lambda r: r.seed)


def compare(records: Sequence[RunRecord], a: str, b: str, metric: str = "ss", *, models: Sequence[str] | None = None,
            resamples: int = 10_000, seed: int | None = None) -> list[Comparison]:
    known = resampled_metrics()
    if metric not in known:
        raise HarnessError(f"compare has no metric '{metric}' (per-example scores are needed)",
                           f"choose one of: {', '.join(sorted(known))}")
    benchmark, declared = known[metric]
    have = sorted({r.model for r in records if r.benchmark == benchmark and r.variant in (a, b)})
    chosen = list(models) if models else [m for m in have if
                                          {r.variant for r in records if r.model == m and r.benchmark == benchmark}
                                          >= {a, b}]
    if not chosen:
        raise HarnessError(f"no model has {benchmark} records of both '{a}' and '{b}'",
                           f"models with either: {', '.join(have) or '(none)'}")
    out = []
    for model in chosen:
        run_seed = seed
        if run_seed is None:  # the lowest seed both variants ran (a seed-independent variant has only seed 0)
            seeds_a = {r.seed for r in records if r.model == model and r.variant == a and r.benchmark == benchmark}
            seeds_b = {r.seed for r in records if r.model == model and r.variant == b and r.benchmark == benchmark}
            common = seeds_a & seeds_b
            run_seed = min(common) if common else None
        rec_a, rec_b = pick(records, model, a, benchmark, run_seed), pick(records, model, b, benchmark, run_seed)
        out += paired_bootstrap(examples_of(rec_a), examples_of(rec_b), declared, model, resamples=resamples,
                                seed=rec_a.seed)
    return out


def table(rows: list[Comparison], a: str, b: str) -> str:
    from tabulate import tabulate

    body = [[r.model, r.quantity, f"{r.a:.2f}", f"{r.b:.2f}", f"{r.diff:+.2f}", f"[{r.low:+.2f}, {r.high:+.2f}]",
             f"{r.p_value:.4f}", r.n] for r in rows]
    return tabulate(body, headers=["model", "quantity", a, b, "A − B", "95% CI", "p", "n"], disable_numparse=True)


def to_json(rows: list[Comparison]) -> str:
    return json.dumps([r.__dict__ for r in rows], indent=1)

