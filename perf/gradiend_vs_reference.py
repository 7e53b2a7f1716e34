"""GRADIEND training speed, memory and encoder quality: this project vs the reference ``gradiend==0.2.3``.

    python perf/gradiend_vs_reference.py --model zoo:bert-tiny --steps 20 --batch 32
    python perf/gradiend_vs_reference.py --model zoo:smollm2-135m --steps 5 --batch 8 --ours-batch 32

Both sides get the same model (saved to a folder), the same filled examples (our gender templates with
names, base-model filtered, written to parquet), the same number of steps, one seed, lr 1e-5, source ∇⁺W and
target ∇±W. Each side runs in its own process (ours in .venv, the reference in the virtualenv built by
``perf/reference_venv.sh``) so peak memory (max RSS) is per side. Printed: steps/s,
examples/s, peak memory, encoder test correlation and seconds, and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_PY = ROOT / ".venv-reference" / "bin" / "python"


def prepare(model: str, folder: Path, max_templates: int, filter_names: int, n_neutral: int = 0):
    """Save the model and the filled examples (masked text, split, cls, he, she) into ``folder``; returns
    the built data (its ``neutral`` sentences: ``n_neutral`` of them)."""
    import random

    import pandas as pd

    from harness.models import load_model
    from methods.gradiend.data import build_data
    from methods.gradiend.workflow import filter_templates

    lm = load_model(model)
    lm.save_pretrained(folder / "model")
    data = build_data("gender", 0, n_neutral=n_neutral, max_templates=max_templates or None)  # all templates by default
    filter_templates(lm, data, filter_names, 0)
    rng = random.Random(0)
    rows = []
    for split in ("train", "val", "test"):
        for _, t in data.split(split).iterrows():
            for cls in (0, 1):
                name = rng.choice(data.names_of(split, cls))
                text = t[f"text_{cls}"].replace("[NAME]", name).replace("[TARGET]", "[MASK]")
                rows.append({"masked": text, "split": "validation" if split == "val" else split,
                             "cls": ("male", "female")[cls], "male": t["target_0"], "female": t["target_1"]})
    pd.DataFrame(rows).to_parquet(folder / "data.parquet", index=False)
    return data


def _rss_mb() -> float:
    """Current resident set size of this process (Linux), for a per-stage breakdown next to the peak."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def run_ours(folder: Path, steps: int, batch: int, out: Path, bf16: bool, micro_batch: int | None) -> None:
    """Train one seed for ``steps`` steps on the prepared examples, then encode the test split."""
    import pandas as pd
    import torch

    from harness.memory import release_freed_memory
    from harness.models import load_model
    from methods.gradiend.data import GradiendData, feature_classes
    from methods.gradiend.evaluation import EncoderProbe, Examples, encoder_metrics
    from methods.gradiend.gradients import GradientEngine, auto_micro_batch, select_parameters
    from methods.gradiend.training import TrainConfig, train

    stages = {"imports": _rss_mb()}
    lm = load_model(str(folder / "model"))
    stages["model loaded"] = _rss_mb()
    frame = pd.read_parquet(folder / "data.parquet")
    cls = (frame["cls"] == "female").astype(int)
    templates = pd.DataFrame({"text_0": frame["masked"].str.replace("[MASK]", "[TARGET]"), "target_0": frame["male"],
                              "target_1": frame["female"], "cls": cls,
                              "split": frame["split"].replace({"validation": "val"}), "kept": True})
    templates["text_1"] = templates["text_0"]
    data = GradiendData(feature_classes("gender"), templates, pd.DataFrame(columns=["name", "cls", "split"]), [])
    started = time.perf_counter()
    engine = GradientEngine(lm, select_parameters(lm), bf16=bf16,
                            micro_batch=auto_micro_batch(lm) if micro_batch is None else (micro_batch or None))
    del lm  # the engine holds its own copy; the loaded one would only add to the peak
    release_freed_memory()
    stages["engine built"] = _rss_mb()
    setup = time.perf_counter() - started
    started = time.perf_counter()
    result = train(engine, data, TrainConfig(seeds=(0,), batch_size=batch, max_steps=steps), None)
    seconds = time.perf_counter() - started
    peak_train = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before the encoder evaluation
    stages["after training"] = _rss_mb()
    test = data.split("test")
    examples = Examples([t[f"text_{c}"] for t, c in zip(test.to_dict("records"), test["cls"])],
                        [t[f"target_{c}"] for t, c in zip(test.to_dict("records"), test["cls"])],
                        [t[f"target_{1 - c}"] for t, c in zip(test.to_dict("records"), test["cls"])],
                        [1.0 if c == 0 else -1.0 for c in test["cls"]])
    started = time.perf_counter()
    h = EncoderProbe(engine, examples).encode(result.model, 0)
    encode_seconds = time.perf_counter() - started
    metrics = encoder_metrics(h, torch.tensor(examples.labels))
    out.write_text(json.dumps({"steps": steps, "batch_size": batch, "micro_batch": engine.micro_batch,
                               "train_seconds": seconds, "setup_seconds": setup,
                               "encoder_seconds": encode_seconds, "encoder": metrics, "timings": result.seconds,
                               "peak_rss_mb_training": peak_train, "rss_mb_by_stage": stages,
                               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}, indent=2))


def run_child(cmd: list[str], env: dict | None = None) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"child failed ({proc.returncode}): {' '.join(cmd[:3])} ...")
    return time.perf_counter() - started


def report(name: str, r: dict) -> dict:
    steps_s = r["steps"] / r["train_seconds"]
    corr = r.get("encoder", {}).get("pearson", r.get("encoder", {}).get("correlation"))
    row = {"side": name, "batch": r["batch_size"], "steps/s": steps_s, "examples/s": steps_s * r["batch_size"],
           "peak MB": r["peak_rss_mb"], "test r": corr, "encoder s": r.get("encoder_seconds")}
    print("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="zoo:bert-tiny")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=32, help="the reference's batch size")
    parser.add_argument("--ours-batch", type=int, default=None, help="our batch size (default: --batch)")
    parser.add_argument("--max-templates", type=int, default=0, help="cap on templates (0: all)")
    parser.add_argument("--filter-names", type=int, default=2, help="train names per class in the base-model filter")
    parser.add_argument("--side", choices=("both", "ours", "reference"), default="both")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast for our gradients")
    parser.add_argument("--micro-batch", type=int, default=None,
                        help="our rows per micro-batch (default: the pipeline's automatic choice; 0: whole batches)")
    parser.add_argument("--work", default=None, help="folder for the model copy, data and results (default: temp)")
    parser.add_argument("--child", nargs=4, metavar=("FOLDER", "STEPS", "BATCH", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        folder, steps, batch, out = args.child
        return run_ours(Path(folder), int(steps), int(batch), Path(out), args.bf16, args.micro_batch)
    work = Path(args.work or tempfile.mkdtemp(prefix="gradiend-vs-ref-"))
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "data.parquet").exists():
        prepare(args.model, work, args.max_templates, args.filter_names)
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    rows = []
    if args.side in ("both", "ours"):
        batch = args.ours_batch or args.batch
        out = work / f"ours_b{batch}.json"
        cmd = [sys.executable, __file__, "--child", str(work), str(args.steps), str(batch), str(out)]
        micro = [] if args.micro_batch is None else ["--micro-batch", str(args.micro_batch)]
        run_child(cmd + (["--bf16"] if args.bf16 else []) + micro, env)
        result = json.loads(out.read_text())
        rows.append(report("ours" + (" bf16" if args.bf16 else "") + f" micro={result.get('micro_batch')}", result))
    if args.side in ("both", "reference"):
        if not REFERENCE_PY.exists():
            raise SystemExit(f"no reference virtualenv at {REFERENCE_PY.parent.parent}: "
                             "run perf/reference_venv.sh")
        out = work / f"reference_b{args.batch}.json"
        run_child([str(REFERENCE_PY), str(Path(__file__).with_name("_reference_driver.py")), str(work / "model"),
                str(work / "data.parquet"), str(out), str(args.steps), str(args.batch)], env)
        rows.append(report("reference", json.loads(out.read_text())))
    if len(rows) == 2:
        ours, ref = rows
        print(f"ratios ours/reference: steps/s {ours['steps/s'] / ref['steps/s']:.1f}x, "
              f"examples/s {ours['examples/s'] / ref['examples/s']:.1f}x, "
              f"peak memory {ours['peak MB'] / ref['peak MB']:.2f}x"
              + (f", encoder evaluation {ref['encoder s'] / ours['encoder s']:.1f}x faster"
                 if ref.get("encoder s") and ours.get("encoder s") else ""))
    print(f"work folder: {work}")


if __name__ == "__main__":
    main()
