"""Runs the reference GRADIEND (``gradiend==0.2.3``) inside its own virtualenv; imports nothing of ours.

Usage (called by gradiend_vs_reference.py): python _reference_driver.py MODEL_DIR DATA.parquet OUT.json STEPS BATCH
The data file holds filled examples: masked (with [MASK]), split, cls (male/female), he/she columns.
Prints nothing useful; writes timings, peak RSS and the encoder's test correlation to OUT.json.
"""

import json
import resource
import sys
import tempfile
import time

import pandas as pd


def main() -> None:
    model_dir, data_path, out_path = sys.argv[1], sys.argv[2], sys.argv[3]
    steps, batch = int(sys.argv[4]), int(sys.argv[5])
    from gradiend import TextPredictionTrainer, TrainingArguments

    frame = pd.read_parquet(data_path)
    data = {c: frame[frame["cls"] == c].drop(columns=["cls"]).reset_index(drop=True) for c in ("male", "female")}
    out: dict = {"steps": steps, "batch_size": batch}
    with tempfile.TemporaryDirectory() as work:
        args = TrainingArguments(experiment_dir=work, train_batch_size=batch, max_steps=steps, learning_rate=1e-5,
                                 eval_steps=10 ** 9, max_seeds=1, do_eval=False, source="factual", target="diff",
                                 use_cache=False, seed=0)
        trainer = TextPredictionTrainer(model=model_dir, data=data, target_classes=["male", "female"], args=args)
        started = time.perf_counter()
        trainer.train()
        out["train_seconds"] = time.perf_counter() - started
        started = time.perf_counter()
        try:
            metrics = trainer.evaluate_encoder(split="test")
            out["encoder_seconds"] = time.perf_counter() - started
            out["encoder"] = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        except Exception as exc:  # noqa: BLE001 - report, do not hide
            out["encoder_error"] = f"{type(exc).__name__}: {exc}"[:500]
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open(out_path, "w") as handle:
        json.dump(out, handle, indent=2, default=str)


if __name__ == "__main__":
    main()
