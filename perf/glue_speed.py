"""GLUE/SuperGLUE probe speed: a cold run (empty feature cache), then a post-processing variant of the same
model (an affine projection hook, applied to the cached features), per model.

Targets (2 cores): the cold probe over all offline tasks of both suites on ``zoo:smollm2-135m`` under
15 minutes; each extra post-processing variant under 2 minutes. Other processes on the machine inflate
the numbers: the load average is printed beside them.

    python perf/glue_speed.py                              # zoo:smollm2-135m, both suites
    python perf/glue_speed.py --models zoo:bert-tiny --precision float32
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch


def projection_hook(dim: int, seed: int = 0):
    """An INLP-like hook: remove one random direction, :math:`h' = (I - vv^\\top) h`."""
    from harness.hooks import AffineHook

    v = torch.randn(dim, generator=torch.Generator().manual_seed(seed))
    v = v / v.norm()
    return AffineHook(torch.eye(dim) - torch.outer(v, v))


def run_suites(lm, suites, cache: Path, precision: str, progress: bool) -> dict[str, tuple[float, float, object]]:
    """Per suite: (wall seconds, process CPU seconds, result). CPU seconds / threads is what the wall time
    would be on otherwise idle cores, a figure that contention from other processes does not inflate."""
    from harness.api import RunContext
    from harness.registry import get_benchmark

    out = {}
    for suite in suites:
        ctx = RunContext(cache_dir=cache, progress=progress)
        started, cpu = time.perf_counter(), time.process_time()
        result = get_benchmark(suite)(precision=precision).run(lm, ctx)
        out[suite] = (time.perf_counter() - started, time.process_time() - cpu, result)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["zoo:smollm2-135m"])
    parser.add_argument("--suites", nargs="+", default=["glue", "superglue"])
    parser.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16"])
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args()

    from harness.models import load_model

    print(f"torch threads: {torch.get_num_threads()}, load average before: {os.getloadavg()}")
    for spec in args.models:
        lm = load_model(spec)
        with tempfile.TemporaryDirectory() as tmp:
            cold = run_suites(lm, args.suites, Path(tmp), args.precision, args.progress)
            lm.add_hidden_hook(projection_hook(lm.hidden_size))
            warm = run_suites(lm, args.suites, Path(tmp), args.precision, args.progress)
            lm.clear_hooks()
        for label, runs in (("cold (encode + cache)", cold), ("variant (cached features + hook)", warm)):
            total, cpu = sum(r[0] for r in runs.values()), sum(r[1] for r in runs.values())
            print(f"\n{spec} {label}: {total:.1f} s wall, {cpu:.1f} s CPU (/{torch.get_num_threads()} threads = "
                  f"{cpu / torch.get_num_threads():.1f} s), load average now {os.getloadavg()}")
            for suite, (seconds, cpu, result) in runs.items():
                tasks = result.details["per_task"]
                print(f"  {suite}: {seconds:.1f} s wall, {cpu:.1f} s CPU, precision {result.details['precision']}, "
                      f"score {result.scores['score'].value:.2f}; unavailable: "
                      f"{', '.join(result.details['unavailable']) or 'none'}")
                for task, info in tasks.items():
                    print(f"    {task:8s} {info['seconds']:7.1f} s  {info['features']:8s} score {info['score']:6.2f} "
                          f"(floor {info['floor']:6.2f})")


if __name__ == "__main__":
    main()
