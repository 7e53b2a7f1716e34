"""Measuring tolerances: how far the same grid's scores move between runs, settings and machines.

``python -m leaderboard.spread --baseline B RUNS...`` reads the records of one grid run several times (each
folder one run: another thread count, CPU code path, machine) and writes the measurement into the baseline B:

* without ``--cross-machine``: ``tolerances``, the exact mode's per-metric float tolerances
  (:func:`measure_spread`; docs/regression-check.md);
* with ``--cross-machine``: ``cross_machine``, the cross-machine mode's measurement — the noise of the
  per-example scores (:func:`leaderboard.cross_machine.measure`) and the tolerances of the scores without a
  per-example statistic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from harness.errors import HarnessError
from harness.records import RunRecord
from leaderboard.check import MODES, _selected, choose_mode, current_scores, read_baseline, write_baseline
from leaderboard.ranking import NA, Cell

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


def merge_task_rules(rules: list[dict[str, Any]], benchmarks: Sequence[str]) -> list[dict[str, Any]]:
    """One rule ``*`` per benchmark in ``benchmarks`` taking the largest of its absolute rules, the suite
    ``score``, ``floor`` and relative rules (perplexity) keeping theirs: a few runs cannot measure a GLUE task
    (or lm-quality's top-1 accuracy) that happened not to move, and such scores move by whole examples (one
    WNLI example = 1.41 points; one lm-quality token of 3,962 = 0.025)."""
    out = []
    for benchmark in dict.fromkeys(r["benchmark"] for r in rules):
        own = [r for r in rules if r["benchmark"] == benchmark]
        if benchmark not in benchmarks:
            out += own
            continue
        kept = [r for r in own if r["metric"] in ("score", "floor") or r["relative"] > 0]  # perplexity: its own
        tasks = [r for r in own if r not in kept]
        out += kept
        if tasks:
            widest = max(tasks, key=lambda r: r["absolute"])
            out.append({**widest, "metric": "*", "cells": sum(r["cells"] for r in tasks),
                        "merged_from": sorted(r["metric"] for r in tasks)})
    return sorted(out, key=lambda r: (r["benchmark"], r["metric"] == "*", -len(r["metric"]), r["metric"]))


def measure_cross_machine(runs: dict[str, Sequence[RunRecord]], selection: dict[str, list[str]] | None):
    from leaderboard.cross_machine import measure

    return measure({name: _selected(records, selection) for name, records in runs.items()})


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m leaderboard.spread --baseline B RUNS...``: write measured tolerances into B."""
    import argparse
    import sys

    from harness.records import load_records
    from leaderboard.table import latest_records

    parser = argparse.ArgumentParser(prog="python -m leaderboard.spread")
    parser.add_argument("--baseline", required=True, help="baseline JSON to receive the rules (must exist)")
    parser.add_argument("--measured", required=True, help="how the runs were made (stored with the rules)")
    parser.add_argument("--cross-machine", action="store_true",
                        help="the runs come from other machines or CPU settings: write the cross-machine "
                             "measurement (noise of the per-example scores, tolerances of the others)")
    parser.add_argument("--merge-tasks", default="", metavar="BENCHMARKS",
                        help="comma-separated benchmarks (e.g. glue,superglue) whose task rules merge into one "
                             "(few runs cannot measure a task that happened not to move)")
    parser.add_argument("--default-mode", choices=MODES, help="also set the baseline's default check mode")
    parser.add_argument("runs", nargs="+", help="records folders of one grid, one per setting")
    args = parser.parse_args(argv)
    try:
        baseline = read_baseline(Path(args.baseline))
        runs = {str(p): latest_records(load_records(Path(p))) for p in args.runs}
        rules = merge_task_rules(measure_spread(runs, baseline.get("selection")),
                                 [b for b in args.merge_tasks.split(",") if b])
        noise = measure_cross_machine(runs, baseline.get("selection")) if args.cross_machine else None
    except HarnessError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return 2
    measurement = {"measured": args.measured, "runs": len(runs), "factor": SPREAD_FACTOR, "floor": SPREAD_FLOOR,
                   "rules": rules}
    if args.cross_machine:
        from leaderboard import cross_machine as cm

        baseline["cross_machine"] = {**measurement, "alpha": cm.ALPHA, "discordance_floor": cm.Q_FLOOR,
                                     "resamples": cm.RESAMPLES, "effect_sizes": list(cm.EFFECT_SIZES),
                                     "noise": noise}
    else:
        baseline["tolerances"] = measurement
    if args.default_mode:
        baseline["default_mode"] = args.default_mode
    choose_mode(baseline, Path(args.baseline), args.default_mode)
    write_baseline(Path(args.baseline), baseline)
    from tabulate import tabulate

    if noise:
        print(tabulate([[r["benchmark"], r["metric"], r["pairs"],
                         f"{r['max_change']:.3g}" if "max_change" in r else "",
                         f"{100 * r['max_discordance']:.2f} %" if "max_discordance" in r else "", r["worst"] or ""]
                        for r in noise],
                       headers=["benchmark", "metric", "pairs", "max |Δ|", "max changed examples", "worst"],
                       disable_numparse=True))
    print(tabulate([[r["benchmark"], r["metric"], r["cells"], f"{r['observed_max_spread']:.3g}",
                     f"{r['observed_max_relative_spread']:.3g}", f"{r['absolute']:.3g}", f"{r['relative']:.3g}"]
                    for r in rules], headers=["benchmark", "metric", "cells", "max spread", "max rel. spread",
                                              "absolute tol.", "relative tol."], disable_numparse=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
