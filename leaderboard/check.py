"""Regression check: compare every score in the records with a stored baseline (for CI pipelines).

A baseline is a JSON file of seed-averaged scores per (model, variant, benchmark, metric) with their 95%
CIs where the records have them. A current score *moves* when

* an absolute tolerance ``t`` is configured (``--tolerance`` or the baseline's ``tolerance``): |now − then| > t;
* otherwise, when the baseline has a CI: now ∉ [low, high] (the default);
* otherwise (metrics without a CI, e.g. SEAT effect sizes): |now − then| > 1e-6 · max(1, |then|), i.e. the
  runs are deterministic and any real change counts.

A baseline score with no current record (or a run that turned not applicable, or the reverse) also fails
the check; current scores that the baseline does not list are reported as new but do not fail.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from harness.atomic import write_text_atomic
from harness.errors import HarnessError
from harness.records import RunRecord
from leaderboard.ranking import NA, Cell, aggregate

BASELINE_VERSION = 1
EXACT_RELATIVE = 1e-6


def _key(entry: dict[str, Any]) -> tuple[str, str, str, str]:
    return entry["model"], entry["variant"], entry["benchmark"], entry["metric"]


def current_scores(records: Sequence[RunRecord], selection: dict[str, list[str]] | None = None) -> dict[tuple, Cell | str]:
    """Seed-averaged cells of the records inside ``selection`` (models / variants / benchmarks / bias_type)."""
    selection = selection or {}

    def keep(rec: RunRecord) -> bool:
        return all(not selection.get(f) or getattr(rec, attr) in selection[f]
                   for f, attr in (("models", "model"), ("variants", "variant"), ("benchmarks", "benchmark"),
                                   ("bias_types", "bias_type")))

    return aggregate(r for r in records if keep(r))


def make_baseline(records: Sequence[RunRecord], selection: dict[str, list[str]] | None = None,
                  tolerance: float | None = None) -> dict[str, Any]:
    scores = []
    for key, cell in sorted(current_scores(records, selection).items()):
        entry: dict[str, Any] = dict(zip(("model", "variant", "benchmark", "metric"), key))
        if cell == NA:
            entry["status"] = "not_applicable"
        else:
            entry["value"] = cell.value
            if cell.low is not None:
                entry["low"], entry["high"] = cell.low, cell.high
        scores.append(entry)
    return {"version": BASELINE_VERSION, "selection": selection or {}, "tolerance": tolerance, "scores": scores}


def write_baseline(path: Path, baseline: dict[str, Any]) -> None:
    write_text_atomic(Path(path), json.dumps(baseline, indent=1, sort_keys=True) + "\n")


def read_baseline(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
        if data.get("version") != BASELINE_VERSION or not isinstance(data.get("scores"), list):
            raise ValueError(f"version {data.get('version')!r}, expected {BASELINE_VERSION} with a 'scores' list")
        for entry in data["scores"]:
            _key(entry)
        return data
    except FileNotFoundError:
        raise HarnessError(f"baseline {path} does not exist",
                           f"create it with: gradiend-bench check --baseline {path} --update") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise HarnessError(f"baseline {path} is malformed ({type(exc).__name__}: {exc})",
                           f"regenerate it with: gradiend-bench check --baseline {path} --update") from None


@dataclass
class Finding:
    key: tuple[str, str, str, str]
    then: str
    now: str
    allowed: str
    status: str  # "moved", "missing", "new"


def _fmt(x: float | None) -> str:
    return "" if x is None else f"{x:.4f}"


def compare_to_baseline(baseline: dict[str, Any], records: Sequence[RunRecord],
                        tolerance: float | None = None) -> tuple[int, list[Finding]]:
    """(number of baseline scores checked, findings); a finding with status moved/missing fails the check."""
    tolerance = tolerance if tolerance is not None else baseline.get("tolerance")
    now = current_scores(records, baseline.get("selection"))
    findings = []
    seen = set()
    for entry in baseline["scores"]:
        key = _key(entry)
        seen.add(key)
        cell = now.get(key)
        if entry.get("status") == "not_applicable":
            if cell != NA:
                findings.append(Finding(key, "not applicable", "missing" if cell is None else _fmt(cell.value),
                                        "not applicable", "missing" if cell is None else "moved"))
            continue
        then = float(entry["value"])
        if tolerance is not None:
            lo, hi, allowed = then - tolerance, then + tolerance, f"±{tolerance:g}"
        elif "low" in entry and "high" in entry:
            lo, hi = float(entry["low"]), float(entry["high"])
            allowed = f"95% CI [{lo:.4f}, {hi:.4f}]"
        else:
            slack = EXACT_RELATIVE * max(1.0, abs(then))
            lo, hi, allowed = then - slack, then + slack, f"±{slack:.0e} (no CI)"
        if not isinstance(cell, Cell):
            findings.append(Finding(key, _fmt(then), "not applicable" if cell == NA else "missing", allowed, "missing"))
        elif not lo <= cell.value <= hi:
            findings.append(Finding(key, _fmt(then), _fmt(cell.value), allowed, "moved"))
    for key in sorted(k for k in now if k not in seen):
        cell = now[key]
        findings.append(Finding(key, "", "not applicable" if cell == NA else _fmt(cell.value), "", "new"))
    return len(baseline["scores"]), findings


def report(checked: int, findings: list[Finding]) -> tuple[bool, str]:
    from tabulate import tabulate

    failed = [f for f in findings if f.status != "new"]
    new = [f for f in findings if f.status == "new"]
    lines = []
    if failed:
        rows = [[*f.key, f.then, f.now, f.allowed, f.status] for f in failed]
        lines.append(tabulate(rows, headers=["model", "variant", "benchmark", "metric", "baseline", "now", "allowed",
                                             "status"], disable_numparse=True))
    lines.append(f"{checked} baseline score(s) checked: {len(failed)} moved or missing"
                 + (f", {len(new)} new score(s) not in the baseline (not checked; --update adds them)" if new else ""))
    return not failed, "\n".join(lines)
