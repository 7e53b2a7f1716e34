"""How many scores each check mode flags on a machine it never saw: leave-one-out over CPU settings.

    python perf/cross_machine_heldout.py --config configs/demo.yaml --baseline-runs results/runs \\
        --tolerances results/baselines/demo.json SETTING_RUNS...

The baseline is made from ``--baseline-runs`` (as ``check --update --config`` makes it, the exact mode's
``tolerances`` taken from ``--tolerances``). For every folder of SETTING_RUNS (the same grid run under another
CPU setting or on another machine), the cross-machine noise is measured from the baseline's runs and the *other*
settings only, and the held-out setting is then checked in both modes: the exact mode's count says how many
scores machine noise alone moves past float tolerances, the cross-machine mode's how many of them it still
flags on a machine outside its measurement. Prints a table (and the flagged scores).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.config import load_config  # noqa: E402
from harness.records import load_records  # noqa: E402
from leaderboard import cross_machine as cm  # noqa: E402
from leaderboard.check import compare_to_baseline, make_baseline, read_baseline  # noqa: E402
from leaderboard.spread import SPREAD_FACTOR, SPREAD_FLOOR, measure_cross_machine, measure_spread, merge_task_rules  # noqa: E402,E501
from leaderboard.table import latest_records  # noqa: E402

MERGED = ["glue", "superglue", "lm-quality"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--baseline-runs", required=True)
    parser.add_argument("--tolerances", required=True, help="a baseline whose exact-mode tolerances to use")
    parser.add_argument("settings", nargs="+")
    args = parser.parse_args()
    config = load_config(args.config)
    selection = {"models": list(config.models), "variants": [v.name for v in config.variants],
                 "benchmarks": [b.name for b in config.benchmarks], "bias_types": [config.bias_type],
                 "seeds": list(config.seeds)}
    base_records = latest_records(load_records(Path(args.baseline_runs)))
    baseline = make_baseline(base_records, selection)
    baseline["tolerances"] = read_baseline(Path(args.tolerances))["tolerances"]
    runs = {name: latest_records(load_records(Path(name))) for name in args.settings}
    rows = []
    for held, held_records in runs.items():
        measured = {args.baseline_runs: base_records, **{k: v for k, v in runs.items() if k != held}}
        trial = copy.deepcopy(baseline)
        trial["cross_machine"] = {"factor": SPREAD_FACTOR, "floor": SPREAD_FLOOR, "alpha": cm.ALPHA,
                                  "discordance_floor": cm.Q_FLOOR, "resamples": cm.RESAMPLES,
                                  "effect_sizes": list(cm.EFFECT_SIZES),
                                  "rules": merge_task_rules(measure_spread(measured, selection), MERGED),
                                  "noise": measure_cross_machine(measured, selection)}
        counts = {}
        for mode in ("exact", "cross-machine"):
            checked, findings = compare_to_baseline(trial, held_records, mode=mode)
            failed = [f for f in findings if f.status in ("moved", "missing")]
            counts[mode] = len(failed)
            for f in failed if mode == "cross-machine" else []:
                print(f"  flagged ({held}): {' '.join(f.key)} {f.then} → {f.now} (allowed {f.allowed})")
        rows.append((held, len(measured), checked, counts["exact"], counts["cross-machine"]))
    print("| held-out setting | runs measured | scores | exact: moved | cross-machine: moved |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(x) for x in row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
