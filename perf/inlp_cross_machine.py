"""How far INLP's fit moves between two builds of one model (e.g. zoo:bert-tiny-mlm built on two CPUs).

    python perf/inlp_cross_machine.py FOLDER_A FOLDER_B [--n-per-class 2500] [--seed 0]

FOLDER_A and FOLDER_B are two model folders that should be the same model (two `models build` outputs from other
machines or CPU settings, e.g. ``$GRADIEND_BENCH_CACHE/models/bert-tiny-mlm`` of each). Both encode the same
attribute sentences (the INLP adapter's data, split and `cpu` protocol settings) and fit INLP; the script prints
how far the weights, the features, the classifier sequence (each classifier's dev accuracy and its count of
correct dev examples) and the projection differ, and how close the stop rule came to another decision.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.attribute_data import attribute_sentences, bias_bench_split, single_threaded  # noqa: E402
from harness.models import load_model  # noqa: E402
from methods.inlp import PROTOCOL_SETTINGS, nullspace_projection  # noqa: E402


def weights_gap(a, b) -> float:
    gaps = [float((p - q).abs().max() / max(float(p.abs().max()), 1e-30))
            for p, q in zip(a.model.parameters(), b.model.parameters())]
    return max(gaps)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--n-per-class", type=int, default=PROTOCOL_SETTINGS["cpu"]["n_per_class"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    models = [load_model(args.a), load_model(args.b)]
    data = attribute_sentences("gender", args.n_per_class, args.seed)
    features = [lm.pooled(list(data.texts), batch_size=64).double().numpy() for lm in models]
    y = np.asarray(data.labels)
    train, dev, _ = bias_bench_split(len(y), args.seed)
    iterations = PROTOCOL_SETTINGS["cpu"][f"iterations_{models[0].kind}"]
    stop = PROTOCOL_SETTINGS["cpu"]["stop_at_majority"]
    fits = []
    for x in features:
        with single_threaded():
            fits.append(nullspace_projection(x[train], y[train], x[dev], y[dev], iterations, seed=args.seed,
                                             stop_at_majority=stop))
    (p_a, acc_a), (p_b, acc_b) = fits
    majority = np.bincount(y[dev]).max() / len(dev)
    n_dev = len(dev)
    threshold = majority + 0.01
    margins = [round((acc - threshold) * n_dev) for acc in acc_a]  # dev examples between a classifier and the stop
    closest = min(range(len(margins)), key=lambda i: abs(margins[i]))
    figures = {
        "weights_max_relative_gap": weights_gap(*models),
        "features_max_abs_gap": float(np.abs(features[0] - features[1]).max()),
        "features_max_abs": float(np.abs(features[0]).max()),
        "classifiers": [len(acc_a), len(acc_b)],
        "rank_removed": [int(round(p_a.shape[0] - np.trace(p_a))), int(round(p_b.shape[0] - np.trace(p_b)))],
        "dev_correct_differences": [int(round((a - b) * n_dev)) for a, b in zip(acc_a, acc_b)],
        "projection_max_abs_gap": float(np.abs(p_a - p_b).max()) if p_a.shape == p_b.shape else None,
        "dev_examples": n_dev,
        "stop_threshold_examples": threshold * n_dev,
        "closest_call": {"classifier": closest + 1, "examples_from_threshold": margins[closest]},
    }
    for key, value in figures.items():
        print(f"{key}: {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
