"""Regression check: compare every score in the records with a stored baseline (for CI pipelines).

A baseline is a JSON file of seed-averaged scores per (model, variant, benchmark, metric) with their 95%
CIs where the records have them. A current score *moves* when

* an absolute tolerance ``t`` is given on the command line (``--tolerance``): |now − then| > t;
* otherwise, when the baseline has per-metric tolerances (``tolerances.rules``, see below) and one matches the
  score: |now − then| > max(absolute, relative · |then|);
* otherwise, when the baseline has a global ``tolerance`` t: |now − then| > t;
* otherwise, when the baseline has a CI: now ∉ [low, high] (the default);
* otherwise (metrics without a CI, e.g. SEAT effect sizes): |now − then| > 1e-6 · max(1, |then|), i.e. the
  runs are deterministic and any real change counts.

A baseline score with no current record (or a run that turned not applicable, or the reverse) also fails
the check; current scores that the baseline does not list are reported as new but do not fail.

Per-metric tolerances (``docs/regression-check.md``) come from *measured* variation, not from sampling CIs:
a CI says how much a score would move on other data, not how much the same run moves on another machine,
so a CI-wide tolerance passes real regressions and an exact one fails on float noise. A baseline may hold::

    "tolerances": {"measured": "<how the spread was measured>",
                   "rules": [{"benchmark": "seat", "metric": "effect_size*", "absolute": 0.002,
                              "relative": 0.0, "observed_max_spread": 0.0004}, ...]}

The first rule whose ``benchmark`` and ``metric`` (fnmatch patterns) match a score applies; a score no rule
matches falls back to the rules above. Baselines without ``tolerances`` behave as before. ``--update``
keeps an existing baseline's ``tolerances`` (they describe the measurement, not the scores).
"""

from __future__ import annotations

import fnmatch
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


def current_scores(records: Sequence[RunRecord],
                   selection: dict[str, list[str]] | None = None) -> dict[tuple, Cell | str]:
    """Seed-averaged cells of the records inside ``selection`` (models / variants / benchmarks / bias_type)."""
    selection = selection or {}

    def keep(rec: RunRecord) -> bool:
        return all(not selection.get(f) or getattr(rec, attr) in selection[f]
                   for f, attr in (("models", "model"), ("variants", "variant"), ("benchmarks", "benchmark"),
                                   ("bias_types", "bias_type"), ("seeds", "seed")))

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
    """Write ``baseline``; an existing file's measured ``tolerances`` are carried over unless it has its own."""
    path = Path(path)
    if "tolerances" not in baseline and path.is_file():
        try:
            previous = json.loads(path.read_text())
        except (OSError, ValueError):
            previous = {}
        if isinstance(previous, dict) and isinstance(previous.get("tolerances"), dict):
            baseline = {**baseline, "tolerances": previous["tolerances"]}
    write_text_atomic(path, json.dumps(baseline, indent=1, sort_keys=True) + "\n")


def _check_rules(data: dict[str, Any]) -> None:
    """Raise ValueError naming the first malformed tolerance rule."""
    tolerances = data.get("tolerances")
    if tolerances is None:
        return
    if not isinstance(tolerances, dict) or not isinstance(tolerances.get("rules"), list):
        raise ValueError("'tolerances' must be a mapping with a 'rules' list")
    for i, rule in enumerate(tolerances["rules"]):
        bounds = [rule.get(k) for k in ("absolute", "relative")] if isinstance(rule, dict) else []
        if not isinstance(rule, dict) or not all(isinstance(rule.get(k), str) for k in ("benchmark", "metric")) \
                or all(b is None for b in bounds) \
                or any(b is not None and (isinstance(b, bool) or not isinstance(b, (int, float)) or b < 0)
                       for b in bounds):
            raise ValueError(f"tolerance rule {i} must name 'benchmark' and 'metric' (patterns) and give a "
                             f"non-negative 'absolute' and/or 'relative', got {rule!r}")


def tolerance_rule(baseline: dict[str, Any], benchmark: str, metric: str) -> dict[str, Any] | None:
    """The first of the baseline's tolerance rules matching (benchmark, metric), or None."""
    for rule in (baseline.get("tolerances") or {}).get("rules", []):
        if fnmatch.fnmatchcase(benchmark, rule["benchmark"]) and fnmatch.fnmatchcase(metric, rule["metric"]):
            return rule
    return None


def rule_slack(rule: dict[str, Any], then: float) -> float:
    return max(float(rule.get("absolute") or 0.0), float(rule.get("relative") or 0.0) * abs(then))


def read_baseline(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
        if data.get("version") != BASELINE_VERSION or not isinstance(data.get("scores"), list):
            raise ValueError(f"version {data.get('version')!r}, expected {BASELINE_VERSION} with a 'scores' list")
        for entry in data["scores"]:
            _key(entry)
        _check_rules(data)
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
    """(number of baseline scores checked, findings); a finding with status moved/missing fails the check.

    ``tolerance`` (the command line's) overrides the baseline's per-metric and global tolerances."""
    explicit = tolerance
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
        rule = None if explicit is not None else tolerance_rule(baseline, entry["benchmark"], entry["metric"])
        if rule is not None:
            slack = rule_slack(rule, then)
            lo, hi, allowed = then - slack, then + slack, f"±{slack:.2g} (measured)"
        elif tolerance is not None:
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


# -- measured tolerances -------------------------------------------------------------------------------
SPREAD_FACTOR = 3.0  # tolerance = 3 × the largest spread seen, for machines and runs not sampled
SPREAD_FLOOR = 1e-6  # the least tolerance (absolute; relative for RELATIVE_METRICS): last-bit noise only
RELATIVE_METRICS = ("perplexity",)  # unbounded scales (bert-tiny: 10³–10⁴): tolerance relative to the value


def _family(metric: str) -> str:
    return metric.split(":", 1)[0]


def measure_spread(runs: dict[str, Sequence[RunRecord]], selection: dict[str, list[str]] | None = None,
                   ) -> list[dict[str, Any]]:
    """Tolerance rules from one grid run under several settings (``runs``: setting name → its records).

    Per (benchmark, metric family — ``ss`` covers ``ss:gender`` etc.): the largest spread max − min of a
    score across the settings over every (model, variant, metric) of the family, absolute and relative
    to the score; the rule allows ``SPREAD_FACTOR`` × that spread, at least ``SPREAD_FLOOR``. Scores
    missing from any setting raise: the settings must have run the same grid.
    """
    cells = {name: current_scores(records, selection) for name, records in runs.items()}
    keys = sorted(set().union(*cells.values()))
    spreads: dict[tuple[str, str], dict[str, Any]] = {}
    for key in keys:
        model, variant, benchmark, metric = key
        found = [c.get(key) for c in cells.values()]
        if all(f == NA for f in found):
            continue
        if not all(isinstance(f, Cell) for f in found):
            absent = [n for n, f in zip(cells, found) if not isinstance(f, Cell)]
            raise HarnessError(f"score {'/'.join(key)} is missing or not applicable in run(s) {', '.join(absent)}",
                               "run the same grid under every setting before measuring the spread")
        values = [f.value for f in found]
        spread = max(values) - min(values)
        relative = spread / max(abs(v) for v in values) if spread else 0.0
        family = spreads.setdefault((benchmark, _family(metric)), {
            "benchmark": benchmark, "family": _family(metric), "colon": False, "cells": 0,
            "observed_max_spread": 0.0, "observed_max_relative_spread": 0.0, "worst": None})
        family["colon"] |= ":" in metric
        family["cells"] += 1
        if spread > family["observed_max_spread"]:
            family["worst"] = f"{model} {variant} {metric}: {min(values):.6g} … {max(values):.6g}"
        family["observed_max_spread"] = max(family["observed_max_spread"], spread)
        family["observed_max_relative_spread"] = max(family["observed_max_relative_spread"], relative)
    rules = []
    for f in spreads.values():
        relative = f["family"] in RELATIVE_METRICS
        bound = SPREAD_FACTOR * (f["observed_max_relative_spread"] if relative else f["observed_max_spread"])
        rules.append({"benchmark": f["benchmark"], "metric": f["family"] + ("*" if f["colon"] else ""),
                      "absolute": 0.0 if relative else max(bound, SPREAD_FLOOR),
                      "relative": max(bound, SPREAD_FLOOR) if relative else 0.0,
                      "observed_max_spread": f["observed_max_spread"],
                      "observed_max_relative_spread": f["observed_max_relative_spread"],
                      "cells": f["cells"], "worst": f["worst"]})
    # first match wins: a longer family ("effect_size_mean_abs") before a pattern that also covers it
    return sorted(rules, key=lambda r: (r["benchmark"], -len(r["metric"]), r["metric"]))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m leaderboard.check spread --baseline B RUNS...``: write measured tolerance rules into B."""
    import argparse
    import sys

    from harness.records import load_records
    from leaderboard.table import latest_records

    parser = argparse.ArgumentParser(prog="python -m leaderboard.check")
    parser.add_argument("command", choices=["spread"])
    parser.add_argument("--baseline", required=True, help="baseline JSON to receive the rules (must exist)")
    parser.add_argument("--measured", required=True, help="how the runs were made (stored with the rules)")
    parser.add_argument("runs", nargs="+", help="records folders of one grid, one per setting")
    args = parser.parse_args(argv)
    try:
        baseline = read_baseline(Path(args.baseline))
        runs = {str(p): latest_records(load_records(Path(p))) for p in args.runs}
        rules = measure_spread(runs, baseline.get("selection"))
    except HarnessError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return 2
    baseline["tolerances"] = {"measured": args.measured, "runs": len(runs), "factor": SPREAD_FACTOR,
                              "floor": SPREAD_FLOOR, "rules": rules}
    write_baseline(Path(args.baseline), baseline)
    from tabulate import tabulate

    print(tabulate([[r["benchmark"], r["metric"], r["cells"], f"{r['observed_max_spread']:.3g}",
                     f"{r['observed_max_relative_spread']:.3g}", f"{r['absolute']:.3g}", f"{r['relative']:.3g}"]
                    for r in rules], headers=["benchmark", "metric", "cells", "max spread", "max rel. spread",
                                              "absolute tol.", "relative tol."], disable_numparse=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
