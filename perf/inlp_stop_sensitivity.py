"""What one INLP classifier more or less does to the scores: the cost of the stop rule flipping.

    python perf/inlp_stop_sensitivity.py [--model zoo:bert-tiny-mlm] [--seed 0]

INLP's `cpu` protocol stops at the first classifier whose dev accuracy is at most the majority rate + 1 point
(methods/inlp.py). That decision is a threshold on a count of dev examples, so a model whose features differ a
little (another machine's build) can stop one classifier earlier or later. This script fits INLP as the
adapter does, notes how many dev examples the crossing classifier lies from the threshold, then scores the
model with the projection of k − 1, k and k + 1 classifiers (k = where the rule stops) on StereoSet, CrowS-Pairs
and SEAT, and prints each score's change against k — next to the effect sizes the cross-machine check
flags (leaderboard/cross_machine.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.api import RunContext  # noqa: E402
from harness.attribute_data import attribute_sentences, bias_bench_split, single_threaded  # noqa: E402
from harness.erasure import OrthogonalProjection  # noqa: E402
from harness.models import load_model  # noqa: E402
from harness.registry import get_benchmark  # noqa: E402
from methods.inlp import PROTOCOL_SETTINGS, nullspace_projection  # noqa: E402

BENCHMARKS = {"stereoset": {"resamples": 0}, "crows": {"resamples": 1},
              "seat": {"n_permutations": 1000, "resamples": 0}}
SHOWN = {"stereoset": ("ss", "lms", "ss:religion"), "crows": ("score",), "seat": ("effect_size_mean_abs",)}


class Fixed(OrthogonalProjection):
    def __init__(self, projection: np.ndarray):
        self.projection_ = projection


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="zoo:bert-tiny-mlm")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(2)
    lm = load_model(args.model)
    settings = PROTOCOL_SETTINGS["cpu"]
    data = attribute_sentences("gender", settings["n_per_class"], args.seed)
    x = lm.pooled(list(data.texts), batch_size=64).double().numpy()
    y = np.asarray(data.labels)
    train, dev, _ = bias_bench_split(len(y), args.seed)
    with single_threaded():
        _, stopped = nullspace_projection(x[train], y[train], x[dev], y[dev], 80, seed=args.seed,
                                          stop_at_majority=True)
    k = len(stopped)
    threshold = (np.bincount(y[dev]).max() / len(dev) + 0.01) * len(dev)
    print(f"{args.model} seed {args.seed}: the rule stops at classifier {k}; its dev count "
          f"{round(stopped[-1] * len(dev))} vs threshold {threshold:.2f} "
          f"(classifier {k - 1}: {round(stopped[-2] * len(dev))})")
    ctx = RunContext(seed=args.seed, progress=False)
    table: dict[int, dict[str, float]] = {}
    for count in (k - 1, k, k + 1):
        with single_threaded():
            projection, _ = nullspace_projection(x[train], y[train], x[dev], y[dev], count, seed=args.seed)
        lm.clear_hooks()
        lm.add_hidden_hook(Fixed(projection).hook())
        scores = {}
        with torch.no_grad():
            for name, options in BENCHMARKS.items():
                result = get_benchmark(name)(**options).run(lm, ctx)
                scores.update({f"{name}:{m}": result.scores[m].value for m in SHOWN[name]})
        table[count] = scores
        print(f"  {count} classifiers (rank {int(round(len(projection) - np.trace(projection)))}): "
              + ", ".join(f"{m} {v:.3f}" for m, v in scores.items()))
    for count in (k - 1, k + 1):
        print(f"  change {count} vs {k}: " + ", ".join(f"{m} {table[count][m] - table[k][m]:+.3f}"
                                                     for m in table[k]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
