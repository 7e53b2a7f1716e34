"""Sweep continued pre-training settings under a wall-clock budget and print the held-out curves.

    python perf/pretraining_sweep.py --model zoo:bert-tiny \\
        --try steps=400,batch_size=64,lr=5e-4 --try steps=800,batch_size=32,lr=7e-4 --out build/sweep.json

Used to choose the ``zoo:bert-tiny-mlm`` recipe (best held-out accuracy within 10 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from harness.models import load_model
from harness.models.build import corpus_documents
from harness.pretraining import TrainingSettings, continue_pretraining


def parse_try(text: str) -> dict:
    out = {}
    for part in text.split(","):
        key, value = part.split("=")
        out[key] = float(value) if any(c in value for c in ".e") else int(value)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="zoo:bert-tiny")
    parser.add_argument("--corpus", default="corpus-en")
    parser.add_argument("--try", dest="tries", action="append", required=True, help="k=v,... training settings")
    parser.add_argument("--out", default="build/pretraining_sweep.json")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (accuracy per step does not depend on it)")
    args = parser.parse_args()
    train, heldout, _ = corpus_documents(args.corpus)
    results = []
    for spec in args.tries:
        settings = TrainingSettings.from_dict({"eval_every": 50, **parse_try(spec)})
        lm = load_model(args.model, device=args.device)
        started = time.perf_counter()
        report = continue_pretraining(lm, train, heldout, settings, progress=False)
        seconds = time.perf_counter() - started
        results.append({"settings": settings.to_dict(), "seconds": seconds, "log": report.log})
        print(f"{spec}: {seconds:.0f}s  final acc {100 * report.final['accuracy']:.2f}%  "
              f"top5 {100 * report.final['top5']:.2f}%  ppl {report.final['perplexity']:.1f}")
        for row in report.log:
            print(f"   step {row['step']:>5}  t={row.get('elapsed_s', 0):>6.0f}s  loss {row['heldout_loss']:.3f}  "
                  f"acc {100 * row['heldout_accuracy']:.2f}%")
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
