"""Wall time of the bootstrap leaderboard over committed records (the README quotes it).

    python benchmarks/perf/leaderboard_bootstrap.py                       # results/runs, 1000 replicates
    python benchmarks/perf/leaderboard_bootstrap.py --replicates 2000 --threads 1

Prints the records and (model, variant, seed) runs it covers, then the wall time of reading the records, of
the point leaderboard alone and of the leaderboard with intervals (median of ``--repeat`` runs), and which
variants are distinguishable from the base model.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results/runs")
    parser.add_argument("--replicates", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    from leaderboard.bootstrap import build_board
    from leaderboard.table import select_records

    started = time.perf_counter()
    records = select_records(args.results)
    read_s = time.perf_counter() - started
    runs = {(r.model, r.variant, r.seed) for r in records}
    print(f"{len(records)} records, {len(runs)} (model, variant, seed) runs, "
          f"{len({r.model for r in records})} models; reading them: {read_s:.2f} s")

    def timed(**options) -> tuple[float, object]:
        times, board = [], None
        for _ in range(args.repeat):
            start = time.perf_counter()
            board = build_board(records, **options)
            times.append(time.perf_counter() - start)
        return statistics.median(times), board

    point_s, _ = timed(intervals=False)
    boot_s, board = timed(intervals=True, replicates=args.replicates)
    print(f"point leaderboard: {point_s:.2f} s; with intervals ({args.replicates} replicates, "
          f"{args.threads} thread(s)): {boot_s:.2f} s (median of {args.repeat})")
    for row in board.rows:
        if row.p_better is not None:
            verdict = "distinguishable" if row.distinguishable() else "not distinguishable"
            low, high = row.intervals.get("mean", (float("nan"), float("nan")))
            print(f"  {row.name:28s} Mean {row.mean:.2f} [{low:.2f}, {high:.2f}]  P(>base) {row.p_better:.3f}  "
                  f"{verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
