"""Paired bootstrap comparison of two variants on the same examples.

For one model, both variants were scored on the same N examples (StereoSet clusters, CrowS pairs). One
index matrix ``I`` of shape [B, N] (rows drawn uniformly with replacement) is applied to *both* variants,
so every resample compares them on identical examples:

    d*_b = f(A[I_b]) − f(B[I_b]),    CI = percentiles (2.5, 97.5) of d*,
    p = min(1, 2 · (min(#[d* ≤ 0], #[d* ≥ 0]) + 1) / (B + 1))     (two-sided, bootstrap sign test)

For bias metrics with an ideal value (SS and CrowS: 50) a second row compares the *bias* itself,
``|f(A) − 50| − |f(B) − 50|`` (negative: A is less biased). ``f`` is the benchmark's own statistic
(StereoSet: macro average over target terms; CrowS: % of pairs preferring the more stereotypical sentence).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from harness.errors import HarnessError
from harness.records import RunRecord

RERUN = ("rerun both variants with `gradiend-bench run CONFIG --force` on this machine (per-example files live in "
         "the git-ignored results/artifacts/)")


@dataclass(frozen=True)
class Examples:
    """Per-example arrays of one run and the statistic that turns (arrays, index matrix) into values."""

    ids: tuple[str, ...]
    arrays: dict[str, np.ndarray]
    statistic: Callable[[dict[str, np.ndarray], np.ndarray], np.ndarray]  # idx [B, N] → [B]
    ideal: float | None


METRICS = {  # metric name → (benchmark, score key in the record, ideal)
    "ss": ("stereoset", "ss", 50.0), "lms": ("stereoset", "lms", None), "icat": ("stereoset", "icat", None),
    "crows": ("crows", "score", 50.0),
}


# -- statistics ---------------------------------------------------------------------------------------
def macro_percent(values: np.ndarray, groups: np.ndarray, idx: np.ndarray, denominator: float = 1.0) -> np.ndarray:
    """Per resample row: mean over groups present of 100·Σ values / (denominator · count) (StereoSet's macro)."""
    n_groups = int(groups.max()) + 1
    rows = idx.shape[0]
    flat = (groups[idx] + n_groups * np.arange(rows)[:, None]).ravel()
    count = np.bincount(flat, minlength=rows * n_groups).reshape(rows, n_groups)
    total = np.bincount(flat, values[idx].ravel(), rows * n_groups).reshape(rows, n_groups)
    present = count > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(present, 100 * total / (denominator * np.maximum(count, 1)), 0).sum(1) / present.sum(1)


def stereoset_statistic(metric: str) -> Callable[[dict[str, np.ndarray], np.ndarray], np.ndarray]:
    def ss(a, idx):
        return macro_percent(a["pro"], a["term"], idx)

    def lms(a, idx):
        return macro_percent(a["related"], a["term"], idx, 2.0)

    def icat(a, idx):
        s, lm_score = ss(a, idx), lms(a, idx)
        return lm_score * np.minimum(s, 100 - s) / 50

    return {"ss": ss, "lms": lms, "icat": icat}[metric]


def crows_statistic(a: dict[str, np.ndarray], idx: np.ndarray) -> np.ndarray:
    return 100 * a["success"][idx].mean(1)


# -- per-example data from records ------------------------------------------------------------------
def _artifact(rec: RunRecord, name: str, results_dir: Path) -> Path:
    raw = rec.artifacts.get(name)
    where = f"{rec.model}/{rec.variant} {rec.benchmark} seed {rec.seed}"
    if not raw:
        raise HarnessError(f"the {where} record lists no '{name}' artifact", RERUN)
    for candidate in (Path(raw), Path(results_dir).resolve().parent.parent / raw):
        if candidate.is_file():
            return candidate
    raise HarnessError(f"per-example file of {where} is missing: {raw}", RERUN)


def stereoset_examples(rec: RunRecord, metric: str, results_dir: Path) -> Examples:
    """Per-cluster pro/related indicators from the predictions artifact and the gold file the run used."""
    from benchmarks.stereoset import SPLITS, example_counts, load_clusters, read_predictions
    from harness.data.catalog import resolve

    predictions = read_predictions(_artifact(rec, "predictions", results_dir))
    split = rec.details.get("split")
    if split not in SPLITS:
        raise HarnessError(f"record {rec.model}/{rec.variant} stereoset has no known split ({split!r})", RERUN)
    name, file_name = SPLITS[split]
    resolved = resolve(name, [file_name])
    recorded = rec.datasets.get(name, {}).get("sha256", {}).get(file_name)
    if recorded and resolved.checksums.get(file_name) != recorded:
        raise HarnessError(f"the {name} file here differs from the one {rec.model}/{rec.variant} was scored on",
                           RERUN)
    clusters, _ = load_clusters(resolved.path(file_name))
    if metric == "ss":  # SS is reported on the bias type's domain only
        domain = rec.details.get("ss_domain", rec.bias_type)
        clusters = [c for c in clusters if c.bias_type == domain]
    pro, related = example_counts(clusters, predictions)
    terms = np.unique([c.target for c in clusters], return_inverse=True)[1]
    return Examples(tuple(c.id for c in clusters), {"pro": pro, "related": related, "term": terms},
                    stereoset_statistic(metric), METRICS[metric][2])


def crows_examples(rec: RunRecord) -> Examples:
    """Per-pair success (the more stereotypical sentence scored higher) from the record's preference string."""
    prefs = rec.details.get("preferences")
    if not isinstance(prefs, str):
        raise HarnessError(f"the {rec.model}/{rec.variant} crows record has no per-pair preferences", RERUN)
    skipped = set(rec.details.get("skipped_rows", []))
    # pairs are in file order; skipped rows (tokenisation) are named, so the kept positions are comparable
    key = f"{rec.details.get('pairs_in_file')}:{sorted(skipped)}:{rec.details.get('bias_type')}"
    return Examples(tuple(f"{key}:{i}" for i in range(len(prefs))),
                    {"success": np.array([c == "+" for c in prefs], float)}, crows_statistic, 50.0)


def examples_of(rec: RunRecord, metric: str, results_dir: Path) -> Examples:
    if metric in ("ss", "lms", "icat"):
        return stereoset_examples(rec, metric, results_dir)
    return crows_examples(rec)


# -- the paired bootstrap ---------------------------------------------------------------------------
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


def p_two_sided(boot: np.ndarray) -> float:
    below, above = int((boot <= 0).sum()), int((boot >= 0).sum())
    return float(min(1.0, 2 * (min(below, above) + 1) / (boot.size + 1)))


def paired_bootstrap(a: Examples, b: Examples, model: str, name: str, *, resamples: int = 10_000,
                     seed: int = 0, confidence: float = 0.95) -> list[Comparison]:
    """Difference A − B of the statistic (and of its distance from the ideal) over shared resamples."""
    if a.ids != b.ids:
        raise HarnessError(f"{model}: the two variants were not scored on the same {name} examples "
                           f"({len(a.ids)} vs {len(b.ids)})", "compare runs of the same benchmark options and data")
    n = len(a.ids)
    if n == 0:
        raise HarnessError(f"{model}: no {name} examples to compare", "check the benchmark's bias type")
    every = np.arange(n)[None, :]
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    point_a, point_b = float(a.statistic(a.arrays, every)[0]), float(b.statistic(b.arrays, every)[0])
    boot_a, boot_b = a.statistic(a.arrays, idx), b.statistic(b.arrays, idx)
    tail = (1 - confidence) / 2 * 100
    out = []
    quantities = [(name, point_a, point_b, boot_a - boot_b)]
    if a.ideal is not None:
        def dist(x):
            return np.abs(x - a.ideal)

        quantities.append((f"|{name} − {a.ideal:g}|", abs(point_a - a.ideal), abs(point_b - a.ideal),
                           dist(boot_a) - dist(boot_b)))
    for quantity, va, vb, boot in quantities:
        low, high = np.percentile(boot, [tail, 100 - tail])
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
            results_dir: Path = Path("results/runs"), resamples: int = 10_000, seed: int | None = None,
            progress: bool = False) -> list[Comparison]:
    if metric not in METRICS:
        raise HarnessError(f"compare has no metric '{metric}' (per-example data is needed)",
                           f"choose one of: {', '.join(METRICS)} (SEAT keeps no per-example scores)")
    benchmark = METRICS[metric][0]
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
        if run_seed is None:  # the lowest seed both variants ran, so the comparison is paired on one seed
            common = ({r.seed for r in records if r.model == model and r.variant == a and r.benchmark == benchmark}
                      & {r.seed for r in records if r.model == model and r.variant == b and r.benchmark == benchmark})
            run_seed = min(common) if common else None
        rec_a, rec_b = pick(records, model, a, benchmark, run_seed), pick(records, model, b, benchmark, run_seed)
        out += paired_bootstrap(examples_of(rec_a, metric, results_dir), examples_of(rec_b, metric, results_dir),
                                model, metric, resamples=resamples, seed=rec_a.seed)
    return out


def table(rows: list[Comparison], a: str, b: str) -> str:
    from tabulate import tabulate

    body = [[r.model, r.quantity, f"{r.a:.2f}", f"{r.b:.2f}", f"{r.diff:+.2f}", f"[{r.low:+.2f}, {r.high:+.2f}]",
             f"{r.p_value:.4f}", r.n] for r in rows]
    return tabulate(body, headers=["model", "quantity", a, b, "A − B", "95% CI", "p", "n"], disable_numparse=True)


def to_json(rows: list[Comparison]) -> str:
    return json.dumps([r.__dict__ for r in rows], indent=1)
