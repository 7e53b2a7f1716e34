"""Times the reference GRADIEND's (``gradiend==0.2.3``) decoder evaluation inside its own virtualenv; \
imports nothing of ours.

Usage (called by gradiend_decoder_vs_reference.py):
    python _reference_decoder_driver.py MODEL_DIR DATA.parquet NEUTRAL.parquet OUT.json STEPS BATCH SPLIT \
        GRID.json THREADS

DATA.parquet holds filled examples (masked with [MASK], split, cls male/female, male/female word columns);
NEUTRAL.parquet the LMS sentences (column ``text``); GRID.json ``{"feature_factors": [...], "alphas": [...]}``.
Trains a GRADIEND for STEPS steps (one seed, do_eval off, no cache), then times ``trainer.evaluate_decoder``
over exactly that grid (``lrs`` = the alphas) on the SPLIT rows (probabilities) and the neutral sentences
(LMS). Writes timings, row counts, the decoder-evaluation peak RSS (VmHWM reset just before it) and the
process peak RSS to OUT.json.
"""

import json
import re
import resource
import sys
import tempfile
import time

import pandas as pd


def _vm(key: str) -> float:
    """VmRSS / VmHWM of this process in MB (Linux)."""
    with open("/proc/self/status") as handle:
        return int(re.search(rf"{key}:\s+(\d+)", handle.read()).group(1)) / 1024


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # resets VmHWM (Linux >= 4.0)
        return True
    except OSError:
        return False


def main() -> None:
    (model_dir, data_path, neutral_path, out_path, steps, batch, split, grid_path,
     threads) = sys.argv[1:10]
    steps, batch, threads = int(steps), int(batch), int(threads)
    import torch

    torch.set_num_threads(threads)
    from gradiend import TextPredictionTrainer, TrainingArguments

    grid = json.loads(open(grid_path).read())
    frame = pd.read_parquet(data_path)
    neutral = pd.read_parquet(neutral_path)[["text"]].reset_index(drop=True)
    data = {c: frame[frame["cls"] == c].drop(columns=["cls"]).reset_index(drop=True) for c in ("male", "female")}
    out: dict = {"steps": steps, "batch_size": batch, "threads": threads, "split": split,
                 "n_feature_factors": len(grid["feature_factors"]), "n_alphas": len(grid["alphas"])}
    with tempfile.TemporaryDirectory() as work:
        args = TrainingArguments(experiment_dir=work, train_batch_size=batch, max_steps=steps, learning_rate=1e-5,
                                 eval_steps=10 ** 9, max_seeds=1, do_eval=False, source="factual", target="diff",
                                 use_cache=False, seed=0)
        trainer = TextPredictionTrainer(model=model_dir, data=data, target_classes=["male", "female"], args=args)
        started = time.perf_counter()
        trainer.train()
        out["train_seconds"] = time.perf_counter() - started
        model = trainer.get_model()
        out["rss_mb_before_decoder"] = _vm("VmRSS")
        out["peak_reset"] = _reset_peak()
        started = time.perf_counter()
        # the evaluation rows, built the reference's way (part of its decoder evaluation, so inside the timing)
        training_like, neutral_df = trainer._get_decoder_eval_dataframe(
            model.tokenizer, split=split, cached_neutral_df=neutral, max_size_neutral=len(neutral))
        result = trainer.evaluate_decoder(
            lrs=list(grid["alphas"]), feature_factors=list(grid["feature_factors"]), use_cache=False, split=split,
            max_size_neutral=len(neutral), eval_batch_size=64, training_like_df=training_like,
            neutral_df=neutral_df, plot=False)
        out["decoder_seconds"] = time.perf_counter() - started
        out["peak_rss_mb_decoder"] = _vm("VmHWM")
        out["n_prompts"] = int(len(training_like))
        out["n_lms_sentences"] = int(len(neutral_df))
        out["n_candidates"] = len(result.get("grid", {})) - 1  # minus the base model
        base = result.get("grid", {}).get("base", {})
        lms = base.get("lms")
        out["base_lms"] = lms.get("lms") if isinstance(lms, dict) else lms
        out["selected"] = {k: {kk: vv for kk, vv in v.items() if isinstance(vv, (int, float, str))}
                           for k, v in result.items() if k != "grid" and isinstance(v, dict)}
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open(out_path, "w") as handle:
        json.dump(out, handle, indent=2, default=str)


if __name__ == "__main__":
    main()
