"""Does a leaderboard verdict depend on the bootstrap seed? The old rule against the adaptive one, per variant.

    python perf/verdict_stability.py                      # boards of `make tables`, seeds 0..16 (≈ 15 min)
    python perf/verdict_stability.py --seeds 5 --boards bert-tiny
    python perf/verdict_stability.py --reference 256000   # also P(>base) from 256,000 replicates (slow)

For every board — ``both`` (`make tables`: configs/zoo-cpu.yaml, both zoo models), ``bert-tiny`` and
``smollm2`` (``--models`` one of them) and ``demo`` (``--config configs/demo.yaml --models zoo:bert-tiny-mlm``:
the demo grid's records; a board with the same records and variant order as one before is computed once and
said so) — and every bootstrap seed, it builds the board twice from the committed records:

* old: the rule before the guard band — 1,000 replicates, distinguishable iff P(>base) ≥ 0.975 or ≤ 0.025
  (``max_replicates=1000, guard_z=0`` reproduces it exactly);
* new: the defaults of :mod:`leaderboard.bootstrap` (guard band of z standard errors, adaptive replicates).

It prints, per variant, the range of P(>base) over the seeds and how many seeds gave each verdict (D =
distinguishable, ≈ = not distinguishable, ? = borderline), the replicates the new rule drew, and with
``--reference B`` P(>base) from B replicates at seed 1000 (Monte-Carlo SE ≤ 0.5/√B) as the "true" value.
``--markdown`` prints the table as Markdown (the form quoted in docs/leaderboards.md).
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections import Counter

BOARDS = {
    "both": ("configs/zoo-cpu.yaml", None),
    "bert-tiny": ("configs/zoo-cpu.yaml", ["zoo:bert-tiny-mlm"]),
    "smollm2": ("configs/zoo-cpu.yaml", ["zoo:smollm2-135m"]),
    "demo": ("configs/demo.yaml", ["zoo:bert-tiny-mlm"]),
}
MARKS = {"distinguishable": "D", "indistinguishable": "≈", "borderline": "?"}


def records_for(results: str, config: str, models):
    """The records ``gradiend-bench leaderboard --config CONFIG --models ...`` reads."""
    from leaderboard.table import select_records

    try:
        return select_records(results, models=models, config=config)
    except TypeError:  # a select_records that does not pick one grid's records: all of them
        return select_records(results, models=models)


def board_for(records, config: str, models, **options):
    from harness.config import load_config
    from leaderboard.bootstrap import build_board

    order = [v.name for v in load_config(config).variants]
    return build_board(records, order=order, models=models, **options)


def counts(verdicts) -> str:
    found = Counter(verdicts)
    return " ".join(f"{found[m]}{m}" for m in ("D", "≈", "?") if found[m])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results/runs")
    parser.add_argument("--boards", default="both,bert-tiny,smollm2,demo")
    parser.add_argument("--seeds", type=int, default=17, help="bootstrap seeds 0..N-1 (default 17)")
    parser.add_argument("--reference", type=int, default=0, help="replicates of a reference P(>base) (0: none)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    from harness.config import load_config
    from leaderboard.bootstrap import GUARD_Z, MAX_REPLICATES

    print(f"new rule: guard band z = {GUARD_Z:g}, replicates 1000 doubling up to {MAX_REPLICATES}; "
          f"seeds 0..{args.seeds - 1}; load {os.getloadavg()[0]:.1f}")
    lines = []
    seen: dict[tuple, str] = {}
    for name in args.boards.split(","):
        config, models = BOARDS[name]
        order = tuple(v.name for v in load_config(config).variants)
        records = records_for(args.results, config, models)
        key = (order, tuple(models or ()), tuple(sorted((r.model, r.variant, r.benchmark, r.seed, r.config_hash)
                                                        for r in records)))
        if key in seen:
            lines.append(f"\n{name}: the same records, models and variant order as {seen[key]}, so the same board.")
            print(lines[-1], flush=True)
            continue
        seen[key] = name
        old, new, drawn = {}, {}, []
        started = time.perf_counter()
        old_s = new_s = 0.0
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            board = board_for(records, config, models, seed=seed, max_replicates=1000, guard_z=0.0)
            t1 = time.perf_counter()
            for row in board.rows:
                if row.p_better is not None:
                    old.setdefault(row.variant, []).append((row.p_better, MARKS[row.verdict]))
            board = board_for(records, config, models, seed=seed)
            new_s += time.perf_counter() - t1
            old_s += t1 - t0
            drawn.append(board.p_replicates)
            for row in board.rows:
                if row.p_better is not None:
                    new.setdefault(row.variant, []).append((row.p_better, MARKS[row.verdict]))
        reference = {}
        if args.reference:
            board = board_for(records, config, models, seed=1000, replicates=1000,
                              max_replicates=args.reference, guard_z=math.inf)
            reference = {r.variant: r.p_better for r in board.rows if r.p_better is not None}
        names = {r.variant: r.name for r in board.rows}
        lines.append(f"\n{name} ({', '.join(models or ['both models'])}): new rule drew "
                     f"{', '.join(f'{b}×{n}' for b, n in sorted(Counter(drawn).items()))} replicates; "
                     f"{old_s / args.seeds:.1f} s (old) and {new_s / args.seeds:.1f} s (new) per board, "
                     f"{time.perf_counter() - started:.0f} s in all")
        head = ["variant", "old P(>base) range", "old verdicts", "new P(>base) range", "new verdicts"]
        if reference:
            head.append(f"P at {args.reference}")
        rows = []
        for variant, draws in old.items():
            ps, marks = zip(*draws)
            nps, nmarks = zip(*new[variant])
            row = [names[variant], f"{min(ps):.3f}–{max(ps):.3f}", counts(marks),
                   f"{min(nps):.4f}–{max(nps):.4f}", counts(nmarks)]
            if reference:
                row.append(f"{reference[variant]:.4f}")
            rows.append(row)
        lines.append(table(head, rows, args.markdown))
        print(lines[-2], lines[-1], sep="\n", flush=True)
    return 0


def table(head, rows, markdown: bool) -> str:
    if markdown:
        return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                         + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    return "\n".join("  ".join(str(x).ljust(w) for x, w in zip(r, widths)) for r in [head, *rows])


if __name__ == "__main__":
    raise SystemExit(main())
