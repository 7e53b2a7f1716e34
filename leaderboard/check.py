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

That is the **exact** mode: right when the inputs are bit-identical to the baseline's (CI's grid on the
wheel-shipped zoo:bert-tiny; the committed records against their own baseline). For a baseline made on
another machine, the **cross-machine** mode (:mod:`leaderboard.cross_machine`) pairs the two runs' per-example
scores instead. A baseline says which modes it supports (``modes``: cross-machine needs its runs' per-example
scores, ``per_example``, and a measurement of machine noise, ``cross_machine``) and which one ``check`` uses
when ``--mode`` is not given (``default_mode``).

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
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from harness.atomic import write_text_atomic
from harness.errors import HarnessError
from harness.records import STATUS_NOT_APPLICABLE, RunRecord
from leaderboard.ranking import NA, Cell, aggregate

BASELINE_VERSION = 2  # 2: optional per_example, cross_machine, default_mode; version 1 files are read as exact-only
READABLE_VERSIONS = (1, 2)
EXACT_RELATIVE = 1e-6
MODES = ("exact", "cross-machine")
CARRIED_OVER = ("tolerances", "cross_machine", "default_mode")  # measurements, not scores: kept by --update


def _key(entry: dict[str, Any]) -> tuple[str, str, str, str]:
    return entry["model"], entry["variant"], entry["benchmark"], entry["metric"]


def current_scores(records: Sequence[RunRecord],
                   selection: dict[str, list[str]] | None = None) -> dict[tuple, Cell | str]:
    """Seed-averaged cells of the records inside ``selection`` (models / variants / benchmarks / bias_type)."""
    return aggregate(_selected(records, selection))


def _selected(records: Sequence[RunRecord], selection: dict[str, list[str]] | None) -> list[RunRecord]:
    selection = selection or {}
    return [r for r in records if all(not selection.get(f) or getattr(r, attr) in selection[f]
                                      for f, attr in (("models", "model"), ("variants", "variant"),
                                                      ("benchmarks", "benchmark"), ("bias_types", "bias_type"),
                                                      ("seeds", "seed")))]


def make_baseline(records: Sequence[RunRecord], selection: dict[str, list[str]] | None = None,
                  tolerance: float | None = None) -> dict[str, Any]:
    """The seed-averaged scores of ``records`` inside ``selection`` and, for the cross-machine mode, the
    per-example scores of each of those records."""
    from leaderboard.cross_machine import embedded_decisions, embedded_examples

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
    chosen = _selected(records, selection)
    return {"version": BASELINE_VERSION, "selection": selection or {}, "tolerance": tolerance, "scores": scores,
            "per_example": embedded_examples(chosen), "decisions": embedded_decisions(chosen)}


def write_baseline(path: Path, baseline: dict[str, Any]) -> None:
    """Write ``baseline``; an existing file's measurements (``tolerances``, ``cross_machine``) and its
    ``default_mode`` are carried over unless the new one has its own."""
    path = Path(path)
    if path.is_file():
        try:
            previous = json.loads(path.read_text())
        except (OSError, ValueError):
            previous = {}
        if isinstance(previous, dict):
            baseline = {**{k: previous[k] for k in CARRIED_OVER if k in previous}, **baseline}
    write_text_atomic(path, json.dumps(baseline, indent=1, sort_keys=True) + "\n")


def supported_modes(baseline: dict[str, Any]) -> list[str]:
    """exact always; cross-machine when the baseline has its runs' per-example scores and a noise measurement."""
    return ["exact"] + (["cross-machine"] if baseline.get("per_example") and baseline.get("cross_machine") else [])


def choose_mode(baseline: dict[str, Any], path: Path, given: str | None) -> str:
    """``given`` (``--mode``), else the baseline's ``default_mode``; a mode the baseline cannot serve is a
    one-line error."""
    mode = given or baseline.get("default_mode") or "exact"
    if mode not in MODES:
        raise HarnessError(f"baseline {path}: unknown check mode {mode!r}", f"use one of: {', '.join(MODES)}")
    if mode not in supported_modes(baseline):
        raise HarnessError(f"baseline {path} does not support the {mode} mode (it lacks per-example scores or a "
                           "measurement of machine noise)",
                           "use --mode exact, or measure it: python -m leaderboard.spread --cross-machine "
                           f"--baseline {path} RUNS...")
    return mode


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
        if data.get("version") not in READABLE_VERSIONS or not isinstance(data.get("scores"), list):
            raise ValueError(f"version {data.get('version')!r}, expected one of {READABLE_VERSIONS} with a "
                             "'scores' list")
        for entry in data["scores"]:
            _key(entry)
        _check_rules(data)
        if data.get("cross_machine") is not None:
            _check_rules({"tolerances": data["cross_machine"]})
        if not isinstance(data.get("per_example", {}), dict):
            raise ValueError("'per_example' must be a mapping of record keys to per-example scores")
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
    status: str  # "moved", "missing", "new"; "note": a method decided otherwise (reported, never a failure)


def _fmt(x: float | None) -> str:
    return "" if x is None else f"{x:.4f}"


def _paired_verdicts(baseline: dict[str, Any], records: Sequence[RunRecord]) -> tuple[dict, list[Finding], int]:
    """Cross-machine verdicts of every record that the baseline has per-example scores of: (score key → its
    seeds' verdicts, findings about the records' examples, number of records paired)."""
    from harness.examples import Examples
    from leaderboard.cross_machine import check_record, decision_changes, decisions, record_key

    metrics: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for entry in baseline["scores"]:
        metrics[entry["model"], entry["variant"], entry["benchmark"]].add(entry["metric"])
    verdicts: dict[tuple, list] = defaultdict(list)
    examples_findings, paired = [], 0
    for rec in _selected(records, baseline.get("selection")):
        raw = baseline["per_example"].get(record_key(rec))
        if raw is None or rec.status == STATUS_NOT_APPLICABLE:
            continue
        paired += 1
        for change in decision_changes(baseline.get("decisions", {}).get(record_key(rec), []), decisions(rec)):
            examples_findings.append(Finding((rec.model, rec.variant, rec.benchmark, "(decision)"), "", change,
                                             f"seed {rec.seed}", "note"))
        then = Examples.from_json(raw, f"baseline per-example scores of {record_key(rec)}")
        for v in check_record(baseline["cross_machine"], then, rec, metrics[rec.model, rec.variant, rec.benchmark]):
            if v.metric == "(examples)":
                if v.moved:
                    examples_findings.append(Finding((rec.model, rec.variant, rec.benchmark, "(examples)"), v.then,
                                                     f"{v.now} (seed {rec.seed})", v.allowed, "moved"))
            else:
                verdicts[rec.model, rec.variant, rec.benchmark, v.metric].append((rec.seed, v))
    return verdicts, examples_findings, paired


def compare_to_baseline(baseline: dict[str, Any], records: Sequence[RunRecord], tolerance: float | None = None,
                        mode: str = "exact") -> tuple[int, list[Finding]]:
    """(number of baseline scores checked, findings); a finding with status moved/missing fails the check.

    ``tolerance`` (the command line's) overrides the baseline's per-metric and global tolerances. ``mode``
    "cross-machine" pairs the per-example scores (:mod:`leaderboard.cross_machine`) and takes the tolerances
    of the other scores from the baseline's cross-machine measurement."""
    explicit = tolerance
    tolerance = tolerance if tolerance is not None else baseline.get("tolerance")
    now = current_scores(records, baseline.get("selection"))
    findings: list[Finding] = []
    paired: dict[tuple, list] = {}
    rules = baseline
    if mode == "cross-machine":
        paired, findings, _ = _paired_verdicts(baseline, records)
        rules = {"tolerances": baseline["cross_machine"]}
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
        if key in paired and isinstance(cell, Cell):
            moved = [(seed, v) for seed, v in paired[key] if v.moved]
            if moved:
                seed, v = moved[0]
                findings.append(Finding(key, v.then, f"{v.now} (seed {seed})", v.allowed, "moved"))
            continue
        then = float(entry["value"])
        rule = None if explicit is not None else tolerance_rule(rules, entry["benchmark"], entry["metric"])
        if rule is not None and mode == "cross-machine":  # measured across machines, and no less than what matters
            from leaderboard.cross_machine import effect_size

            measured = rule_slack(rule, then)
            size = effect_size(baseline["cross_machine"], entry["benchmark"], entry["metric"], then)
            slack = max(measured, size)
            lo, hi = then - slack, then + slack
            allowed = f"±{slack:.2g} ({'measured' if measured >= size else 'effect size'})"
        elif rule is not None:
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


def report(checked: int, findings: list[Finding], mode: str = "exact") -> tuple[bool, str]:
    from tabulate import tabulate

    failed = [f for f in findings if f.status not in ("new", "note")]
    new = [f for f in findings if f.status == "new"]
    notes = sorted({(f.key[0], f.key[1], f.now, f.allowed) for f in findings if f.status == "note"})
    lines = []
    if failed:
        rows = [[*f.key, f.then, f.now, f.allowed, f.status] for f in failed]
        lines.append(tabulate(rows, headers=["model", "variant", "benchmark", "metric", "baseline", "now", "allowed",
                                             "status"], disable_numparse=True))
    if notes:  # why scores of these variants may have moved: a method made another discrete choice here
        lines.append("methods that decided otherwise than in the baseline (their variants' scores move with it):")
        lines += [f"  {model} {variant}: {change} ({seed})" for model, variant, change, seed in notes]
    how = " across machines (per-example scores paired)" if mode == "cross-machine" else ""
    lines.append(f"{checked} baseline score(s) checked{how}: {len(failed)} moved or missing"
                 + (f", {len(new)} new score(s) not in the baseline (not checked; --update adds them)" if new else ""))
    return not failed, "\n".join(lines)
