"""GRADIEND decoder-evaluation speed and memory: this project vs the reference ``gradiend==0.2.3``.

    python perf/gradiend_decoder_vs_reference.py --model zoo:bert-tiny
    python perf/gradiend_decoder_vs_reference.py --grid full          # 96 candidates (~30 min loaded)
    python perf/gradiend_decoder_vs_reference.py --eval-split validation --lms-sentences 96

What is timed is ONLY the decoder evaluation: the grid of candidate rewrites W + α·dec(h*) over
h* ∈ feature factors × α ∈ learning rates, each candidate scored on class prompts (probabilities of the two
classes' words at the mask) and on neutral sentences (LMS: masked top-1 accuracy on 15% of the tokens), plus
the unmodified base model once, plus the candidate selection. Each side first trains a tiny GRADIEND (one
seed, ``--steps`` steps, lr 1e-5, ∇⁺W → ∇±W; quality is irrelevant here) in its own process: ours in .venv
(:class:`methods.gradiend.evaluation.DecoderGrid`, as ``gradiend-bench gradiend eval-decoder`` runs it), the
reference in the virtualenv built by ``perf/reference_venv.sh`` (``trainer.evaluate_decoder``,
driven by ``_reference_decoder_driver.py``, ``use_cache=False``, ``plot=False``).

Same grid on both sides (``--grid``, default ``cpu``): ``full`` = h* ∈ {−1, 0, 1} × α ∈ ±{1, 2, 5}·10^k ≤ 100
(32 values; the reference's default learning rates are the 16 positive ones, with one feature factor per class, i.e.
32 candidates; our ``full`` protocol adds the negative half and h* = 0) = 96 candidates; ``cpu`` = {−1, 0, 1} ×
±{0.01, 0.1, 1, 10} = 24 candidates (our ``cpu`` protocol). The reference is given the same lists
explicitly (``feature_factors``, ``lrs``).

Same data: the model is saved once to a folder and both sides load it; the filled examples (our gender
templates with names, base-model filtered, as in ``gradiend_vs_reference.py``) are written to parquet, and
the rows of ``--eval-split`` are the class prompts on both sides (the reference builds its evaluation frame
from the same rows with its own ``_get_decoder_eval_dataframe`` — inside the timing, as it is part of its
decoder evaluation — and the row counts of both sides are printed so parity can be checked). The LMS
sentences are the same ``--lms-sentences`` neutral corpus sentences on both sides. Differences that remain:
which 15% of tokens are masked for LMS (each side draws its own positions; the reference also never masks
the target words he/she), the reference's LMS batch is set to 64 like ours (its probability pass keeps its
fixed batch of 16), and the reference scores each class's probability on the other class's rows while we
score both words on every row — one forward pass per prompt and one per LMS sentence on both sides, so the
per-candidate work is the same number of forward passes over the same texts. How each side does it is
what is compared: the reference deep-copies the model per candidate and takes a full-vocabulary softmax at
every position; we add α·dec(h*) in place to the flat weight buffer (undone afterwards) and compute logits
only at the scored positions. Both totals include scoring the base model once and the selection.

Printed per side: prompts, LMS sentences, candidates, total decoder-evaluation seconds, seconds per
candidate, peak RSS during the decoder evaluation (VmHWM reset just before it) and the process peak RSS
(which includes training), then the ratio reference/ours. ``--threads`` sets torch's intra-op threads in both
children (default 1: the 2-core machine is shared); the load average is printed at start and end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gradiend_vs_reference import REFERENCE_PY, run_child  # noqa: E402
from gradiend_vs_reference import prepare as prepare_examples  # noqa: E402

SPLITS = {"validation": ("validation",), "test": ("test",), "train": ("train",), "all": ("train", "validation", "test")}


def grid_values(name: str) -> dict:
    """The (feature factors, alphas) grid, as in methods/gradiend/workflow.py's protocols."""
    if name == "full":
        alphas = sorted({s * m * 10.0 ** e for s in (-1, 1) for e in range(-3, 3) for m in (1, 2, 5)
                         if m * 10.0 ** e <= 100})
    else:
        alphas = [-10.0, -1.0, -0.1, -0.01, 0.01, 0.1, 1.0, 10.0]
    return {"feature_factors": [-1.0, 0.0, 1.0], "alphas": alphas}


def prepare(model: str, folder: Path, max_templates: int, filter_names: int, lms_sentences: int) -> None:
    """The training script's model and filled examples, plus the LMS sentences."""
    import pandas as pd

    data = prepare_examples(model, folder, max_templates, filter_names, n_neutral=lms_sentences)
    pd.DataFrame({"text": data.neutral[:lms_sentences]}).to_parquet(folder / "neutral.parquet", index=False)


def _vm(key: str) -> float:
    """VmRSS / VmHWM of this process in MB (Linux)."""
    return int(re.search(rf"{key}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux >= 4.0)
        return True
    except OSError:
        return False


def run_ours(folder: Path, steps: int, batch: int, split: str, grid_name: str, threads: int, out: Path) -> None:
    """Train one seed for ``steps`` steps, then time the decoder grid + selection."""
    import pandas as pd
    import torch

    torch.set_num_threads(threads)
    from harness.memory import release_freed_memory
    from harness.models import load_model
    from methods.gradiend.data import GradiendData, feature_classes
    from methods.gradiend.evaluation import METRICS, DecoderGrid, Examples, select
    from methods.gradiend.gradients import SLOT, GradientEngine, auto_micro_batch, select_parameters
    from methods.gradiend.training import TrainConfig, label_of, train

    grid = grid_values(grid_name)
    lm = load_model(str(folder / "model"))
    frame = pd.read_parquet(folder / "data.parquet")
    neutral = pd.read_parquet(folder / "neutral.parquet")["text"].tolist()
    cls = (frame["cls"] == "female").astype(int)
    templates = pd.DataFrame({"text_0": frame["masked"].str.replace("[MASK]", SLOT, regex=False),
                              "target_0": frame["male"], "target_1": frame["female"], "cls": cls,
                              "split": frame["split"].replace({"validation": "val"}), "kept": True})
    templates["text_1"] = templates["text_0"]
    data = GradiendData(feature_classes("gender"), templates, pd.DataFrame(columns=["name", "cls", "split"]), [])
    engine = GradientEngine(lm, select_parameters(lm), micro_batch=auto_micro_batch(lm))
    del lm
    release_freed_memory()
    started = time.perf_counter()
    result = train(engine, data, TrainConfig(seeds=(0,), batch_size=batch, max_steps=steps), None)
    train_seconds = time.perf_counter() - started
    rows = frame[frame["split"].isin(SPLITS[split])].reset_index(drop=True)
    prompts = Examples([t.replace("[MASK]", SLOT) for t in rows["masked"]],
                       [r["male"] if r["cls"] == "male" else r["female"] for _, r in rows.iterrows()],
                       [r["female"] if r["cls"] == "male" else r["male"] for _, r in rows.iterrows()],
                       [label_of(0 if c == "male" else 1) for c in rows["cls"]])
    rss_before = _vm("VmRSS")
    reset = _reset_peak()
    started = time.perf_counter()
    table = DecoderGrid(engine, prompts, neutral, 0).run(result.model, result.selected, grid["feature_factors"],
                                                         grid["alphas"])
    selection = {rule: {m: select(table, m, rule) for m in METRICS} for rule in ("product", "lms-threshold")}
    seconds = time.perf_counter() - started
    out.write_text(json.dumps({
        "steps": steps, "batch_size": batch, "threads": threads, "split": split, "train_seconds": train_seconds,
        "n_feature_factors": len(grid["feature_factors"]), "n_alphas": len(grid["alphas"]),
        "n_prompts": len(prompts.texts), "n_lms_sentences": len(neutral), "n_candidates": int(table["h"].notna().sum()),
        "decoder_seconds": seconds, "rss_mb_before_decoder": rss_before, "peak_reset": reset,
        "peak_rss_mb_decoder": _vm("VmHWM"), "base_lms": float(table[table["h"].isna()].iloc[0]["lms"]),
        "selected": selection["product"], "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }, indent=2))


def report(name: str, r: dict) -> dict:
    per = r["decoder_seconds"] / max(r["n_candidates"], 1)
    row = {"side": name, "grid": f"{r['n_feature_factors']}x{r['n_alphas']}", "candidates": r["n_candidates"],
           "prompts": r["n_prompts"], "lms sentences": r["n_lms_sentences"], "decoder s": r["decoder_seconds"],
           "s/candidate": per, "decoder peak MB": r["peak_rss_mb_decoder"] if r.get("peak_reset") else float("nan"),
           "RSS before MB": r["rss_mb_before_decoder"], "process peak MB": r["peak_rss_mb"],
           "train s": r["train_seconds"]}
    print("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="zoo:bert-tiny")
    parser.add_argument("--steps", type=int, default=3, help="training steps per side (only to get a GRADIEND)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--grid", choices=("full", "cpu"), default="cpu",
                        help="full: 3 h* x 32 alphas = 96 candidates; cpu: 3 x 8 = 24")
    parser.add_argument("--eval-split", choices=tuple(SPLITS), default="all",
                        help="rows of the prepared examples scored as class prompts")
    parser.add_argument("--lms-sentences", type=int, default=400, help="neutral sentences for LMS")
    parser.add_argument("--max-templates", type=int, default=0, help="cap on templates (0: all)")
    parser.add_argument("--filter-names", type=int, default=2, help="train names per class in the base-model filter")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads in each child")
    parser.add_argument("--side", choices=("both", "ours", "reference"), default="both")
    parser.add_argument("--work", default=None, help="folder for the model copy, data and results (default: temp)")
    parser.add_argument("--child", nargs=2, metavar=("FOLDER", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        folder, out = args.child
        return run_ours(Path(folder), args.steps, args.batch, args.eval_split, args.grid, args.threads, Path(out))
    load_start = os.getloadavg()
    print(f"load average at start: {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}")
    work = Path(args.work or tempfile.mkdtemp(prefix="gradiend-dec-vs-ref-"))
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "data.parquet").exists() or not (work / "neutral.parquet").exists():
        prepare(args.model, work, args.max_templates, args.filter_names, args.lms_sentences)
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": str(args.threads)}
    rows = []
    if args.side in ("both", "ours"):
        out = work / f"ours_{args.grid}_{args.eval_split}.json"
        run_child([sys.executable, __file__, "--child", str(work), str(out), "--steps", str(args.steps),
                "--batch", str(args.batch), "--grid", args.grid, "--eval-split", args.eval_split,
                "--threads", str(args.threads)], env)
        rows.append(report("ours", json.loads(out.read_text())))
    if args.side in ("both", "reference"):
        if not REFERENCE_PY.exists():
            raise SystemExit(f"no reference virtualenv at {REFERENCE_PY.parent.parent}: "
                             "run perf/reference_venv.sh")
        grid_path = work / f"grid_{args.grid}.json"
        grid_path.write_text(json.dumps(grid_values(args.grid)))
        out = work / f"reference_{args.grid}_{args.eval_split}.json"
        run_child([str(REFERENCE_PY), str(Path(__file__).with_name("_reference_decoder_driver.py")),
                str(work / "model"), str(work / "data.parquet"), str(work / "neutral.parquet"), str(out),
                str(args.steps), str(args.batch), args.eval_split, str(grid_path), str(args.threads)], env)
        rows.append(report("reference", json.loads(out.read_text())))
    if len(rows) == 2:
        ours, ref = rows
        print(f"ratio reference/ours: decoder evaluation {ref['decoder s'] / ours['decoder s']:.1f}x faster in total, "
              f"{ref['s/candidate'] / ours['s/candidate']:.1f}x per candidate; decoder peak RSS "
              f"{ours['decoder peak MB'] / ref['decoder peak MB']:.2f}x")
    load_end = os.getloadavg()
    print(f"load average at end: {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}")
    print(f"work folder: {work}")


if __name__ == "__main__":
    main()
