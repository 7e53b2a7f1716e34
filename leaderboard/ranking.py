"""The GRADIEND paper's leaderboard: proportional bias ranks and language-modelling columns from run records.

Proportional rank, per base model m and bias metric k: the n variants with a score for (m, k) (the base
model included) are sorted from worst to best by their distance from the metric's ideal value,
``d = |score − ideal|`` (the benchmark declares it: SS and CrowS 50, SEAT mean |effect size| 0), with a *stable* sort
over the configured variant order (ties are not averaged: the earlier-configured variant ranks lower).
The variant at 0-based position i gets

    r_{m,k} = i / (n − 1)        (r = 0.5 when n = 1),

so 1 is the least biased and 0 the most biased. Column k shows mean_m r_{m,k} over the models where the
variant was ranked; **Mean** is the mean over the bias columns the variant has; rows are sorted by Mean,
descending (stably, so ties keep the configured order).

Language-modelling columns (LMS, GLUE, SuperGLUE) show the raw score averaged over the models where the
variant has it, and Δ = mean_m (score_{v,m} − score_{base,m}) over the models where both have it. The two
averages can cover different model sets, so Δ is *not* always the difference of the shown averages.

Scores of several seeds are averaged per (model, variant, metric) before anything else.

A cell is *unconverged* (footnoted by every export) when a record of its own variant that entered it is built on
a GRADIEND that did not converge (:func:`leaderboard.flags.unconverged`); Mean inherits the mark from its bias
columns, (Δ) from the variant's records on the models it covers. Other variants' ranks are not marked, although
the unconverged score takes part in ranking them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from statistics import mean
from typing import Iterable, Sequence

from harness.records import STATUS_NOT_APPLICABLE, RunRecord
from harness.variants import BASE
from leaderboard.flags import unconverged

NA = "na"  # the metric does not apply to this variant (record status "not_applicable")


@dataclass(frozen=True)
class BiasColumn:
    """A bias metric ranked by its distance from ``ideal`` (smaller distance = less biased)."""

    key: str
    label: str
    benchmark: str
    metric: str
    ideal: float

    def distance(self, value: float) -> float:
        return abs(value - self.ideal)


@dataclass(frozen=True)
class QualityColumn:
    """A language-modelling metric shown as a raw average with its signed change from the base model."""

    key: str
    label: str
    benchmark: str
    metric: str
    scale: float = 1.0  # multiply record values by this for display (records already hold ×100 scores)
    floor: str | None = None  # the record's score key of the metric's floor (harness.metrics.Metric.floor)


def bias_columns() -> dict[str, BiasColumn]:
    """Every bias metric a benchmark declares (:class:`harness.metrics.Metric` with an ideal), by key."""
    from harness.registry import declared_metrics

    return {k: BiasColumn(k, m.label, b, m.score, m.ideal) for k, (b, m) in declared_metrics().items() if m.is_bias}


def quality_columns() -> dict[str, QualityColumn]:
    """Every quality metric a benchmark declares, by key."""
    from harness.registry import declared_metrics

    return {k: QualityColumn(k, m.label, b, m.score, m.scale, m.floor) for k, (b, m) in declared_metrics().items()
            if not m.is_bias}


DEFAULT_BIAS = ("ss", "seat")
DEFAULT_QUALITY = ("lms", "glue", "superglue")

DISPLAY_NAMES = {
    "base": "Base Model", "gradiend": "GRADIEND", "cda": "CDA", "dropout": "Dropout", "inlp": "INLP",
    "sentdebias": "SentDebias", "selfdebias": "SelfDebias", "leace": "LEACE", "rlace": "RLACE",
    "gradiend-fpi": "GRADIEND-FPI", "gradiend-mpi": "GRADIEND-MPI",
}


def display_name(variant: str) -> str:
    """'gradiend+inlp' → 'GRADIEND + INLP'; unknown parts keep their spelling."""
    if variant in DISPLAY_NAMES:
        return DISPLAY_NAMES[variant]
    return " + ".join(DISPLAY_NAMES.get(part.strip(), part.strip()) for part in variant.split("+"))


@dataclass(frozen=True)
class Cell:
    """A seed-averaged score of one (model, variant, benchmark, metric)."""

    value: float
    low: float | None
    high: float | None
    seeds: int


def aggregate(records: Iterable[RunRecord]) -> dict[tuple[str, str, str, str], Cell | str]:
    """(model, variant, benchmark, metric) → seed-mean :class:`Cell`, or ``NA`` for a not-applicable run.

    A not-applicable record marks the whole benchmark as ``NA`` under the key metric ``"*"``.
    """
    values: dict[tuple, list] = defaultdict(list)
    out: dict[tuple, Cell | str] = {}
    for rec in records:
        if rec.status == STATUS_NOT_APPLICABLE:
            out[(rec.model, rec.variant, rec.benchmark, "*")] = NA
            continue
        for metric, score in rec.scores.items():
            values[(rec.model, rec.variant, rec.benchmark, metric)].append(score)
    for key, scores in values.items():
        lows = [s.low for s in scores if s.low is not None]
        highs = [s.high for s in scores if s.high is not None]
        full = len(lows) == len(highs) == len(scores)
        out[key] = Cell(mean(s.value for s in scores), mean(lows) if full else None, mean(highs) if full else None,
                        len(scores))
    return out


def lookup(cells: dict, model: str, variant: str, benchmark: str, metric: str) -> Cell | str | None:
    found = cells.get((model, variant, benchmark, metric))
    if found is None and cells.get((model, variant, benchmark, "*")) == NA:
        return NA
    return found


def proportional_ranks(distances: Sequence[tuple[str, float]]) -> dict[str, float]:
    """Variant → i/(n−1) after a stable sort from the largest distance (worst) to the smallest (best).

    ``distances`` must be in the configured variant order; a single variant gets 0.5.
    """
    n = len(distances)
    if n == 0:
        return {}
    if n == 1:
        return {distances[0][0]: 0.5}
    order = sorted(range(n), key=lambda i: -distances[i][1])  # stable: ties keep configured order
    return {distances[i][0]: pos / (n - 1) for pos, i in enumerate(order)}


@dataclass
class Row:
    variant: str
    name: str
    weight: bool  # ΔW: some step changes weights
    post: bool  # PP: some step post-processes
    mean: float | None
    bias: dict[str, float | str | None]  # column key → mean rank, NA, or None (never scored)
    quality: dict[str, float | str | None]  # column key → averaged raw score (scaled), NA or None
    delta: dict[str, float | None]  # column key → signed mean difference from base over shared models
    models: dict[str, list[str]] = field(default_factory=dict)  # column key → models that entered the value
    # ids of the columns built on an unconverged GRADIEND: bias/quality keys, "<key>_delta", "mean"
    unconverged: set[str] = field(default_factory=set)
    # column id (bias/quality key, "<key>_delta", "mean") → 95 % interval (leaderboard.bootstrap)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    p_better: float | None = None  # P(Mean above the base model's) over the bootstrap replicates
    p_se: float | None = None  # its Monte-Carlo standard error, sqrt(p(1 − p)/B)
    # distinguishable, indistinguishable or borderline (leaderboard.bootstrap.VerdictRule); None: not bootstrapped
    verdict: str | None = None
    # quality column key → its floor averaged over the same models as the score (where every one recorded it)
    floors: dict[str, float] = field(default_factory=dict)

    def distinguishable(self, confidence: float = 0.95) -> bool | None:
        """Whether the Mean differs from the base model's at this confidence: the bootstrap's verdict where it
        gave one (None: borderline), else P(>base) against the thresholds (None: not bootstrapped)."""
        if self.p_better is None:
            return None
        if self.verdict is not None:
            return {"distinguishable": True, "indistinguishable": False}.get(self.verdict)
        alpha = 1 - confidence
        return self.p_better >= 1 - alpha / 2 or self.p_better <= alpha / 2


@dataclass
class Leaderboard:
    bias_columns: list[BiasColumn]
    quality_columns: list[QualityColumn]
    rows: list[Row]
    models: list[str]
    bias_type: str
    # (model, column key) → {variant: rank}; the per-model detail behind the averaged columns
    per_model_ranks: dict[tuple[str, str], dict[str, float]]
    seeds: dict[str, int]  # variant → largest number of seeds averaged in any cell
    # (model, variant, column key) → seed-averaged cell of every bias and quality column (quality unscaled)
    scores: dict[tuple[str, str, str], Cell] = field(default_factory=dict)
    protocols: dict[str, list[str]] = field(default_factory=dict)  # recorded protocol → benchmarks
    # (model, variant, column key) of the ``scores`` built on an unconverged GRADIEND
    unconverged_scores: set[tuple[str, str, str]] = field(default_factory=set)
    order: list[str] = field(default_factory=list)  # configured variant order (breaks rank ties)
    # (model, variant, column key) → 95 % interval of the raw score (bias scores unscaled), when bootstrapped
    score_intervals: dict[tuple[str, str, str], tuple[float, float]] = field(default_factory=dict)
    replicates: int | None = None  # bootstrap replicates behind the intervals (None: no intervals)
    p_replicates: int | None = None  # replicates behind P(>base) and the verdicts (≥ replicates: adaptive)
    max_replicates: int | None = None  # the most the adaptive stage could have drawn
    guard_z: float | None = None  # guard band of the verdicts, in Monte-Carlo standard errors
    confidence: float = 0.95
    rank_input: str = "point"


def variant_order(variants: Iterable[str], configured: Sequence[str] | None = None) -> list[str]:
    """Configured order first (those present), then ``base``, then the rest alphabetically."""
    present = list(dict.fromkeys(variants))
    order = [v for v in (configured or []) if v in present]
    rest = sorted(v for v in present if v not in order)
    if BASE in rest:
        rest.remove(BASE)
        rest.insert(0, BASE)
    return order + rest


def method_kinds(variant: str, records: Sequence[RunRecord]) -> tuple[bool, bool]:
    """(ΔW, PP) from the records' variant steps; the registry's method kinds where no record logs steps."""
    if variant == BASE:
        return False, False
    kinds = {step.get("kind") for rec in records if rec.variant == variant for step in rec.variant_steps}
    if not kinds:
        from harness.errors import HarnessError
        from harness.registry import get_method

        for part in variant.split("+"):
            try:
                kinds.add(get_method(part.strip()).kind)
            except HarnessError:  # a method not installed here: leave its marks unknown (✗)
                pass
    return "weight" in kinds, "post" in kinds


def build(records: Sequence[RunRecord], *, bias: Sequence[str] = DEFAULT_BIAS,
          quality: Sequence[str] = DEFAULT_QUALITY, order: Sequence[str] | None = None,
          models: Sequence[str] | None = None, bias_type: str = "gender",
          rank_values: dict[tuple[str, str, str], float] | None = None) -> Leaderboard:
    """The leaderboard of ``records`` (already reduced to the newest record per cell).

    ``rank_values``: (model, variant, bias key) → the value to rank instead of the point estimate (e.g. the
    bootstrap mean, :mod:`leaderboard.bootstrap`)."""
    from harness.errors import HarnessError

    known_bias, known_quality = bias_columns(), quality_columns()
    for key in bias:
        if key not in known_bias:
            raise HarnessError(f"unknown bias column '{key}'", f"choose from: {', '.join(known_bias)}")
    for key in quality:
        if key not in known_quality:
            raise HarnessError(f"unknown quality column '{key}'", f"choose from: {', '.join(known_quality)}")
    records = [r for r in records if r.bias_type == bias_type and (not models or r.model in models)]
    model_list = [m for m in (models or sorted({r.model for r in records})) if any(r.model == m for r in records)]
    variants = variant_order((r.variant for r in records), order)
    cells = aggregate(records)
    bias_cols = [known_bias[k] for k in bias]
    quality_cols = [known_quality[k] for k in quality]
    flagged = {(r.model, r.variant, r.benchmark) for r in records if r.status != STATUS_NOT_APPLICABLE
               and unconverged(r)}

    per_model: dict[tuple[str, str], dict[str, float]] = {}
    for col in bias_cols:
        for model in model_list:
            scored = [(v, col.distance((rank_values or {}).get((model, v, col.key), c.value))) for v in variants
                      if isinstance(c := lookup(cells, model, v, col.benchmark, col.metric), Cell)]
            per_model[(model, col.key)] = proportional_ranks(scored)

    rows = []
    for variant in variants:
        row = Row(variant, display_name(variant), *method_kinds(variant, records), None, {}, {}, {}, {})
        for col in bias_cols:
            ranked = [(m, per_model[(m, col.key)][variant]) for m in model_list if variant in per_model[(m, col.key)]]
            states = [lookup(cells, m, variant, col.benchmark, col.metric) for m in model_list]
            row.bias[col.key] = mean(r for _, r in ranked) if ranked else (NA if NA in states else None)
            row.models[col.key] = [m for m, _ in ranked]
            if any((m, variant, col.benchmark) in flagged for m, _ in ranked):
                row.unconverged.add(col.key)
        ranks = [v for v in row.bias.values() if isinstance(v, float)]
        row.mean = mean(ranks) if ranks else None
        if row.unconverged:
            row.unconverged.add("mean")
        for col in quality_cols:
            own = {m: c.value * col.scale for m in model_list
                   if isinstance(c := lookup(cells, m, variant, col.benchmark, col.metric), Cell)}
            states = [lookup(cells, m, variant, col.benchmark, col.metric) for m in model_list]
            row.quality[col.key] = mean(own.values()) if own else (NA if NA in states else None)
            row.models[col.key] = list(own)
            floors = [c.value * col.scale for m in own
                      if col.floor and isinstance(c := lookup(cells, m, variant, col.benchmark, col.floor), Cell)]
            if own and len(floors) == len(own):
                row.floors[col.key] = mean(floors)
            base = {m: c.value * col.scale for m in own
                    if isinstance(c := lookup(cells, m, BASE, col.benchmark, col.metric), Cell)}
            row.delta[col.key] = mean(own[m] - base[m] for m in base) if base and variant != BASE else None
            if any((m, variant, col.benchmark) in flagged for m in own):
                row.unconverged.add(col.key)
            if row.delta[col.key] is not None and any((m, variant, col.benchmark) in flagged for m in base):
                row.unconverged.add(f"{col.key}_delta")
        rows.append(row)
    rows.sort(key=lambda r: -r.mean if r.mean is not None else float("inf"))  # stable
    seeds = {}
    for (model, variant, _, _), cell in cells.items():
        if isinstance(cell, Cell):
            seeds[variant] = max(seeds.get(variant, 0), cell.seeds)
    scores = {(m, v, col.key): c for col in [*bias_cols, *quality_cols] for m in model_list for v in variants
              if isinstance(c := lookup(cells, m, v, col.benchmark, col.metric), Cell)}
    marked = {(m, v, col.key) for col in [*bias_cols, *quality_cols] for m in model_list for v in variants
              if (m, v, col.key) in scores and (m, v, col.benchmark) in flagged}
    protocols: dict[str, set[str]] = defaultdict(set)
    for rec in records:
        if rec.status != STATUS_NOT_APPLICABLE:  # a skipped run's protocol is only the configured one
            protocols[rec.protocol].add(rec.benchmark)
    return Leaderboard(bias_cols, quality_cols, rows, model_list, bias_type, per_model, seeds, scores,
                       {p: sorted(b) for p, b in sorted(protocols.items())}, marked, variants)


def pareto_front(points: Sequence[tuple[str, float, float]]) -> list[str]:
    """Names of the points no other point dominates, for *lower x* (bias) and *higher y* (LMS) being better.

    A point dominates another when it is at least as good in both and strictly better in one.
    """
    front = []
    for name, x, y in points:
        dominated = any((x2 <= x and y2 >= y) and (x2 < x or y2 > y) for _, x2, y2 in points)
        if not dominated:
            front.append(name)
    return front
