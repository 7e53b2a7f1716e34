"""Wall time of the bootstrap leaderboard over committed records (the README quotes it).

    python perf/leaderboard_bootstrap.py                       # results/runs, 1000 replicates
    python perf/leaderboard_bootstrap.py --replicates 2000 --threads 1
    python perf/leaderboard_bootstrap.py --synthetic      # 2 models x 15 variants x 3 seeds, real sizes

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
    parser.add_argument("--synthetic", action="store_true",
                        help="random records of the committed grid's shape instead of --results")
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    from leaderboard.bootstrap import build_board
    from leaderboard.table import select_records

    started = time.perf_counter()
    records = synthetic_records() if args.synthetic else select_records(args.results)
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

    point_s, _ = timed(intervals=False, bias=("ss", "seat", "crows"))
    boot_s, board = timed(intervals=True, replicates=args.replicates, bias=("ss", "seat", "crows"))
    print(f"point leaderboard: {point_s:.2f} s; with intervals ({args.replicates} replicates, "
          f"{args.threads} thread(s)): {boot_s:.2f} s (median of {args.repeat})")
    for row in board.rows:
        if row.p_better is not None:
            verdict = "distinguishable" if row.distinguishable() else "not distinguishable"
            low, high = row.intervals.get("mean", (float("nan"), float("nan")))
            print(f"  {row.name:28s} Mean {row.mean:.2f} [{low:.2f}, {high:.2f}]  P(>base) {row.p_better:.3f}  "
                  f"{verdict}")
    return 0


VARIANTS = ("base", "gradiend", "cda", "dropout", "inlp", "sentdebias", "selfdebias", "leace", "rlace",
            "gradiend+inlp", "gradiend+sentdebias", "cda+inlp", "cda+sentdebias", "dropout+inlp", "dropout+sentdebias")


def synthetic_records(models: int = 2, clusters: int = 2106, terms: int = 300, pairs: int = 262,
                      seat_tests: int = 6, seat_per_set: int = 72) -> list:
    """Records with random per-example scores of the committed grid's shape: per model 15 variants, three seeds
    for the seeded ones (base and SelfDebias once), StereoSet dev, CrowS gender and the six gender SEAT tests."""
    import numpy as np

    from harness.api import Score
    from harness.examples import Examples, digest
    from harness.records import RunRecord

    rng = np.random.default_rng(0)
    term = rng.integers(0, terms, clusters).astype(np.int32)
    domain = rng.integers(0, 4, clusters).astype(np.uint8)
    test = np.repeat(np.arange(seat_tests), 2 * seat_per_set).astype(np.uint8)
    side = np.tile(np.repeat([0, 1], seat_per_set), seat_tests).astype(np.uint8)

    def record(model, variant, benchmark, seed, score, examples):
        return RunRecord(model, variant, benchmark, seed, "cpu", "gender", {}, f"{model}{variant}{benchmark}{seed}",
                         {score: Score(50.0)}, per_example=examples.to_json())

    out = []
    for m in range(models):
        for variant in VARIANTS:
            for seed in ([0] if variant in ("base", "selfdebias") else [0, 1, 2]):
                model = f"model-{m}"
                out.append(record(model, variant, "stereoset", seed, "ss", Examples("cluster", {
                    "pro": (rng.random(clusters) < 0.56).astype(np.uint8),
                    "related": rng.integers(0, 3, clusters).astype(np.uint8), "term": term, "domain": domain,
                    "ss_domain": (domain == 0).astype(np.uint8)}, digest(map(str, range(clusters))))))
                out.append(record(model, variant, "crows", seed, "score", Examples("pair", {
                    "preference": rng.choice([-1, 1], pairs).astype(np.int8),
                    "stereo": np.ones(pairs, np.uint8)}, digest(map(str, range(pairs))))))
                out.append(record(model, variant, "seat", seed, "effect_size_mean_abs", Examples("sentence", {
                    "association": rng.normal(0, 0.05, len(test)), "test": test, "side": side,
                    "stratum": (2 * test + side).astype(np.uint8)}, digest(map(str, range(len(test)))),
                    strata="stratum")))
    return out


if __name__ == "__main__":
    raise SystemExit(main())
