"""Judge records written before the reference convergence rule by that rule, from their own per-seed numbers.

    python -m methods.gradiend.relabel results/runs [--dry-run]

GRADIEND steps of version 1 (before this harness applied :mod:`methods.gradiend.convergence`) store every seed's
best validation r, best step and class means in ``notes.seeds`` but no verdict of the reference rule. This adds,
to every such step: ``converged`` (the selected seed under the reference rule), ``convergence_rule``, the
per-seed checks, and ``convergence_relabelled`` saying that the verdict was computed afterwards from the record's
numbers (no model was run). Scores are untouched. Records are rewritten atomically; a record that already has a
verdict is left alone, so running it twice changes nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness.atomic import write_json_atomic
from methods.gradiend.convergence import ConvergenceRule

GRADIEND_METHODS = ("gradiend", "gradiend-fpi", "gradiend-mpi")
NOTE = ("computed afterwards by methods/gradiend/relabel.py from this record's per-seed numbers (notes.seeds); "
        "the step was run before the reference rule was applied")


def relabel_step(notes: dict, rule: ConvergenceRule) -> bool:
    """Add the verdict to one step's notes; False when there is nothing to do."""
    if "converged" in notes or not notes.get("seeds"):
        return False
    selected = notes.get("selected_seed")
    for seed in notes["seeds"]:
        seed["checks"] = rule.check(seed["best_correlation"], seed["mean_first"], seed["mean_second"],
                                    seed["best_step"])
        seed["converged_as_recorded"] = seed.get("converged")
        seed["converged"] = seed["checks"]["converged"]
    chosen = next((s for s in notes["seeds"] if s["seed"] == selected), None)
    notes["converged"] = bool(chosen and chosen["converged"])
    notes["convergence_rule"] = rule.describe()
    notes["convergence_relabelled"] = NOTE
    return True


def relabel(results: Path, dry_run: bool = False) -> list[tuple[Path, bool]]:
    rule = ConvergenceRule.named("reference")
    changed = []
    for path in sorted(Path(results).rglob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        steps = record.get("variant_steps") if isinstance(record, dict) else None
        if not isinstance(steps, list):
            continue
        touched = [relabel_step(step.setdefault("notes", {}), rule) for step in steps
                   if step.get("method") in GRADIEND_METHODS]
        if any(touched):
            verdict = all(step["notes"].get("converged", True) for step in steps
                          if step.get("method") in GRADIEND_METHODS)
            changed.append((path, verdict))
            if not dry_run:
                write_json_atomic(path, record)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="add reference-rule convergence verdicts to old GRADIEND records")
    parser.add_argument("results", type=Path)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    changed = relabel(args.results, args.dry_run)
    for path, verdict in changed:
        print(f"{'would relabel' if args.dry_run else 'relabelled'} {path}: converged={verdict}")
    print(f"{len(changed)} record(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
