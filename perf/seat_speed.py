"""Time SEAT: the full run per zoo model and bias type, the encoding alone and the permutation test alone.

Run: ``GRADIEND_BENCH_DATA=../shared/data python perf/seat_speed.py [bias_type ...]``
(default: gender). Prints wall times and the effect sizes; nothing is asserted.
"""

from __future__ import annotations

import os
import sys
import time


def main(bias_types: list[str]) -> None:
    from benchmarks.seat import SEAT, SETS, association, load_seat_test, permutation_p_value
    from harness.api import RunContext
    from harness.models import load_model

    print(f"cpus={os.cpu_count()} load_average={os.getloadavg()[0]:.2f}")
    for spec in ("zoo:bert-tiny", "zoo:smollm2-135m"):
        lm = load_model(spec)
        for bias_type in bias_types:
            ctx = RunContext(seed=0, bias_type=bias_type, progress=False)
            bench = SEAT()
            start = time.perf_counter()
            result = bench.run(lm, ctx)
            total = time.perf_counter() - start

            tests = bench.tests(ctx)
            resolved = ctx.data("seat", [f"{t}.jsonl" for t in tests])
            data = {t: load_seat_test(resolved.path(f"{t}.jsonl")) for t in tests}
            sentences = list(dict.fromkeys(e for d in data.values() for k in SETS for e in d[k]["examples"]))
            start = time.perf_counter()
            emb = lm.pooled(sentences, normalize=True, batch_size=64).double().numpy()
            encode = time.perf_counter() - start
            row = {s: i for i, s in enumerate(sentences)}
            start = time.perf_counter()
            for d in data.values():
                x, y, a, b = ([row[e] for e in d[k]["examples"]] for k in SETS)
                s = association(emb[x + y], emb[a], emb[b])
                permutation_p_value(s[:len(x)], s[len(x):], n_permutations=100_000, seed=0)
            stats = time.perf_counter() - start
            sizes = ", ".join(f"{t}={result.scores[f'effect_size:{t}'].value:+.3f}" for t in tests)
            print(f"{spec} {bias_type}: full run {total:.2f} s | encoding {len(sentences)} sentences {encode:.2f} s"
                  f" | similarities + permutation tests ({len(tests)} tests x 100k) {stats:.2f} s")
            print(f"  mean |d| = {result.scores['effect_size_mean_abs'].value:.4f}; {sizes}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["gender"])
