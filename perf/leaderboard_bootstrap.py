"""Wall time of the bootstrap leaderboard over committed records (the README quotes it).

    python perf/leaderboard_bootstrap.py                       # results/runs, both models, default rule
    python perf/leaderboard_bootstrap.py --models zoo:bert-tiny-mlm --config configs/zoo-cpu.yaml
    python perf/leaderboard_bootstrap.py --max-replicates 1000 --guard-z 0   # the old fixed 1,000, bare cut
    python perf/leaderboard_bootstrap.py --synthetic      # 2 models x 15 variants x 3 seeds, real sizes

Prints the records and (model, variant, seed) runs it covers, then the wall time of reading the records, of
the point leaderboard alone and of the leaderboard with intervals (median of ``--repeat`` runs; the in-process
memo of :func:`leaderboard.bootstrap.build_board` is cleared before each), the replicates P(>base) took (the
adaptive stage: doublings from ``--replicates`` until no verdict is borderline, at most ``--max-replicates``),
and per variant P(>base), its Monte-Carlo standard error and the verdict.
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
    parser.add_argument("--max-replicates", type=int, help="default: leaderboard.bootstrap.MAX_REPLICATES")
    parser.add_argument("--guard-z", type=float, help="default: leaderboard.bootstrap.GUARD_Z")
    parser.add_argument("--models", nargs="+", help="only these models (default: all)")
    parser.add_argument("--config", help="variant order (and, where supported, the records) of this grid")
    parser.add_argument("--bias", default="ss,seat,crows", help="bias columns (make tables: ss,seat)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--synthetic", action="store_true",
                        help="random records of the committed grid's shape instead of --results")
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    from leaderboard import bootstrap
    from leaderboard.bootstrap import build_board
    from leaderboard.table import select_records

    started = time.perf_counter()
    order = None
    if args.synthetic:
        records = synthetic_records()
    elif args.config:
        from harness.config import load_config

        order = [v.name for v in load_config(args.config).variants]
        try:
            records = select_records(args.results, models=args.models, config=args.config)
        except TypeError:  # a select_records that does not pick one grid's records
            records = select_records(args.results, models=args.models)
    else:
        records = select_records(args.results, models=args.models)
    read_s = time.perf_counter() - started
    runs = {(r.model, r.variant, r.seed) for r in records}
    print(f"{len(records)} records, {len(runs)} (model, variant, seed) runs, "
          f"{len({r.model for r in records})} models; reading them: {read_s:.2f} s")

    bias = tuple(args.bias.split(","))
    rule = {k: v for k, v in (("max_replicates", args.max_replicates), ("guard_z", args.guard_z)) if v is not None}

    def timed(**options) -> tuple[float, object]:
        times, board = [], None
        for _ in range(args.repeat):
            bootstrap._MEMO.clear()  # time the bootstrap, not the memo
            start = time.perf_counter()
            board = build_board(records, bias=bias, order=order, models=args.models, **options)
            times.append(time.perf_counter() - start)
        return statistics.median(times), board

    point_s, _ = timed(intervals=False)
    boot_s, board = timed(intervals=True, replicates=args.replicates, **rule)
    print(f"point leaderboard: {point_s:.2f} s; with intervals ({args.replicates} replicates for the intervals, "
          f"{board.p_replicates} for P(>base), at most {board.max_replicates}, guard band z = {board.guard_z:g}; "
          f"{args.threads} thread(s)): {boot_s:.2f} s (median of {args.repeat}); load {os.getloadavg()[0]:.1f}")
    for row in board.rows:
        if row.p_better is not None:
            low, high = row.intervals.get("mean", (float("nan"), float("nan")))
            print(f"  {row.name:28s} Mean {row.mean:.2f} [{low:.2f}, {high:.2f}]  P(>base) {row.p_better:.4f} "
                  f"± {row.p_se:.4f}  {row.verdict}")
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
