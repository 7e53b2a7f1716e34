"""Time and memory against parameter count on the models that run here — the measured half of docs/gpu-runbook.md.

    .venv/bin/python perf/family_scaling.py                   # measure (~5 min on 2 cores), print, write JSON
    .venv/bin/python perf/family_scaling.py --parts records   # only the committed zoo records (no model runs)

Parts (each measurement runs in its own process, so its peak RSS is its own — ``ru_maxrss`` only grows):

* ``throughput`` — per model: parameters, forward and training (forward + backward + AdamW) tokens/s on random
  token ids (rows of 128), the RSS that loading, a forward and a training step add, and the activation bytes
  of training per token·layer·hidden unit (training peak minus the loaded model, gradients and AdamW state).
  Models: the five tiny families of :mod:`harness.models.tiny` (hidden 64, 2 layers), width-scaled tiny BERT
  and Llama, ``zoo:bert-tiny-mlm`` (4.4M) and ``zoo:smollm2-135m`` (134.5M).
* ``benchmarks`` — StereoSet, SEAT, CrowS-Pairs and lm-quality with their default options (the same under the
  ``cpu`` and ``full`` protocols): wall time, peak RSS, and the tokens (padded) and forward calls the model's
  body sees, on the tiny BERT (the 0.4M point of the time fit), on ``zoo:bert-tiny-mlm`` (a real WordPiece
  vocabulary) and on a tiny Llama with SmolLM2's tokenizer (a real byte-level BPE vocabulary): the token counts
  that the GPU estimate (``perf/gpu_estimate.py``) multiplies by FLOPs per token.
* ``fits`` — the post-processing solvers that run on the CPU even on a GPU machine: one R-LACE game step
  (single-threaded, as ``methods/rlace.py`` runs it) and one INLP classifier (``methods/inlp.py``) against the
  hidden size, on synthetic features with a planted class signal.
* ``validate`` — SEAT, CrowS-Pairs and lm-quality on ``zoo:smollm2-135m``, against what the token counts and the
  measured throughput predict (the GPU estimate's method, checked on the CPU).
* ``records`` — the committed zoo records (``configs/zoo-cpu.yaml``, results/runs): per benchmark the base model's
  ``wall_time_s`` and ``peak_memory_mb``, per method its fitting seconds from the record's notes.

Then log-log slopes of time and memory against parameters. Nothing is written under results/.
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python perf/family_scaling.py` from the repository root

PARTS = ("throughput", "benchmarks", "fits", "records", "validate")
VALIDATE = ("seat", "crows", "lm-quality")  # SmolLM2's cheaper benchmarks, against the prediction
ZERO_SHOT = ("stereoset", "seat", "crows", "lm-quality")
FAMILIES = ("bert", "distilbert", "roberta", "gpt2", "llama")
# (family, hidden, layers) beside the 64-wide, 2-layer family models: same tokenizer, 64-wide heads
SCALED = [("bert", 256, 4), ("bert", 512, 6), ("llama", 256, 4), ("llama", 512, 6)]
ZOO = ("zoo:bert-tiny-mlm", "zoo:smollm2-135m")
SEQ = 128
# INLP's SVMs (liblinear, tol 1e-8) grow steeply with d: one classifier at d = 576 on 4,000 rows took 40 s here,
# so they are measured at small d on the full protocol's rows and extrapolated (docs/gpu-runbook.md)
RLACE_DIMS, EIGH_ONLY_DIMS, INLP_DIMS = (128, 576, 1024), (2048, 3072), (128, 256, 384)
INLP_TRAIN_ROWS = 11965  # the full protocol's INLP training rows: 49 % of 10,000 + 4,419 + 10,000 sentences


# -- child processes ------------------------------------------------------------------------------------------
def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: allocator, kernels, lazy initialisation
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def child_throughput(spec: str) -> dict:
    import torch

    from harness.models import load_model

    baseline = _rss_mb()
    lm = load_model(spec)
    model, config = lm.model, lm.model.config
    params = sum(p.numel() for p in model.parameters())
    large = params > 50e6  # fewer rows for SmolLM2: the figure is per token
    loaded = _rss_mb()
    gen = torch.Generator().manual_seed(0)

    def rows(tokens: int) -> torch.Tensor:
        return torch.randint(10, config.vocab_size, (max(1, tokens // SEQ), SEQ), generator=gen)

    ids = rows(512 if large else 4096)
    with torch.no_grad():
        forward_s = _median_seconds(lambda: model(input_ids=ids, attention_mask=torch.ones_like(ids)), 2)
    forward_peak = _peak_mb()
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    train_ids = rows(256 if large else 1024)
    labels = train_ids.clone()
    if lm.kind == "masked":  # MLM: the loss on 15 % of the positions, as CDA's continued pre-training
        labels[torch.rand(labels.shape, generator=gen) > 0.15] = -100

    def step() -> None:
        model(input_ids=train_ids, attention_mask=torch.ones_like(train_ids), labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=False)

    train_s = _median_seconds(step, 2)
    train_peak = _peak_mb()
    layers, hidden = int(config.num_hidden_layers), int(config.hidden_size)
    activations_mb = train_peak - loaded - 12 * params / 2 ** 20  # minus gradients (4 B) and AdamW moments (8 B)
    # load_mb: what loading added (weights, and the libraries a first load imports: ~170 MB on its own)
    return {"model": spec, "kind": lm.kind, "params": params, "layers": layers, "hidden": hidden,
            "forward_tokens_per_s": ids.numel() / forward_s, "train_tokens_per_s": train_ids.numel() / train_s,
            "load_mb": loaded - baseline, "forward_extra_mb": forward_peak - loaded,
            "train_extra_mb": train_peak - loaded, "train_tokens": train_ids.numel(),
            "activation_bytes_per_token_layer_hidden": activations_mb * 2 ** 20 / (train_ids.numel() * layers * hidden)}


def child_benchmark(spec: str, name: str) -> dict:
    import torch

    from harness.api import RunContext
    from harness.models import load_model
    from harness.registry import get_benchmark, load_plugins

    load_plugins()
    baseline = _rss_mb()
    lm = load_model(spec)
    seen = {"tokens": 0, "calls": 0}

    def count(module, args, kwargs):  # everything the benchmarks ask goes through the model's body
        ids = kwargs.get("input_ids", args[0] if args else None)
        shape = ids.shape if ids is not None else kwargs["inputs_embeds"].shape[:2]
        seen["tokens"] += int(np.prod(shape))
        seen["calls"] += 1

    lm.backbone.register_forward_pre_hook(count, with_kwargs=True)
    with tempfile.TemporaryDirectory() as cache:
        ctx = RunContext(seed=0, protocol="full", bias_type="gender", batch_size=32, cache_dir=Path(cache),
                         progress=False)
        started = time.perf_counter()
        with torch.no_grad():
            get_benchmark(name)().run(lm, ctx)
        wall = time.perf_counter() - started
    return {"model": spec, "benchmark": name, "kind": lm.kind, "params": sum(p.numel() for p in lm.model.parameters()),
            "wall_s": wall, "peak_mb": _peak_mb() - baseline, **seen}


def _planted(n: int, dim: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian features whose class means differ along random directions (a separable-ish attribute signal)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    means = rng.normal(0, 0.3, (classes, dim))
    return (rng.normal(0, 1, (n, dim)) + means[y]).astype(np.float32), y


def child_fits() -> dict:
    import torch

    from harness.attribute_data import single_threaded
    from methods.inlp import nullspace_projection
    from methods.rlace import solve_game

    rlace, eigh, inlp = {}, {}, {}
    with single_threaded():  # as RLACEEraser.fit runs the game
        for dim in RLACE_DIMS:
            x, y = _planted(6000, dim, 2)
            timed = {}
            for steps in (1, 3, 13):  # a warm-up; the difference cancels the probe fits at the first and last step
                started = time.perf_counter()
                solve_game(x, y, steps=steps, evaluate_every=10 ** 9, epsilon=0.0)
                timed[steps] = time.perf_counter() - started
            rlace[dim] = (timed[13] - timed[3]) / 10
        for dim in EIGH_ONLY_DIMS:  # the game's per-step cost at large d is its eigendecomposition
            matrix = torch.randn(dim, dim)
            started = time.perf_counter()
            torch.linalg.eigh((matrix + matrix.T) / 2)
            eigh[dim] = time.perf_counter() - started
    for dim in INLP_DIMS:
        x, y = _planted(INLP_TRAIN_ROWS + 3000, dim, 3)
        started = time.perf_counter()
        nullspace_projection(x[:INLP_TRAIN_ROWS], y[:INLP_TRAIN_ROWS], x[INLP_TRAIN_ROWS:], y[INLP_TRAIN_ROWS:], 1)
        inlp[dim] = time.perf_counter() - started
    return {"rlace_step_s": rlace, "eigh_single_thread_s": eigh, "inlp_classifier_s": inlp,
            "inlp_train_rows": INLP_TRAIN_ROWS}


CHILDREN = {"throughput": child_throughput, "benchmark": child_benchmark, "fits": child_fits}


def run_child(kind: str, *args: str, threads: int) -> dict:
    """One measurement in a fresh interpreter; its JSON result is the last line it prints."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    done = subprocess.run([sys.executable, __file__, "--child", kind, *args], capture_output=True, text=True,
                          env=env, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"error: {kind} {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the parent: models, records, fits, printing ---------------------------------------------------------------
def build_models(folder: Path) -> dict[str, str]:
    """Tiny models (name -> folder): the five families, the width-scaled ones and a tiny Llama that carries
    SmolLM2's own tokenizer (the real vocabulary, so its token counts are SmolLM2's)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

    from harness.data.corpus import load_documents
    from harness.models.catalog import model_catalog
    from harness.models.tiny import build_tiny_model, tiny_config

    documents = load_documents()[:3000]
    models = {f"tiny-{f}": str(build_tiny_model(f, folder / f, documents)) for f in FAMILIES}

    def widened(name: str, family: str, tokenizer, hidden: int = 64, layers: int = 2) -> None:
        config = tiny_config(family, tokenizer, hidden=hidden, layers=layers, heads=max(2, hidden // 64))
        auto = AutoModelForCausalLM if family in ("gpt2", "llama") else AutoModelForMaskedLM
        torch.manual_seed(0)
        auto.from_config(config).save_pretrained(folder / name)
        tokenizer.save_pretrained(folder / name)
        models[name] = str(folder / name)

    for family, hidden, layers in SCALED:  # the family's tokenizer, trained once above
        widened(f"tiny-{family}-{hidden}x{layers}", family, AutoTokenizer.from_pretrained(models[f"tiny-{family}"]),
                hidden, layers)
    widened("tiny-llama-smollm2-vocab", "llama", AutoTokenizer.from_pretrained(model_catalog().fetch(ZOO[1])))
    return models


def zoo_records(results: Path) -> dict:
    """Per zoo model: the base model's wall time and peak RSS per benchmark, and each method's fitting seconds
    (seed 0, from the notes), from the records of the current configs/zoo-cpu.yaml specs."""
    from harness.config import expand, load_config
    from harness.records import read_record, record_path

    out: dict[str, dict] = {}
    for spec in expand(load_config(ROOT / "configs" / "zoo-cpu.yaml")):
        path = record_path(results, spec)
        if spec.seed != 0 or "+" in spec.variant or not path.is_file():
            continue
        record = read_record(path)
        model = out.setdefault(spec.model, {"benchmarks": {}, "methods": {}, "peak_mb": {}})
        model["peak_mb"][spec.variant] = max(model["peak_mb"].get(spec.variant, 0), record.peak_memory_mb or 0)
        if spec.variant == "base":
            model["benchmarks"][spec.benchmark] = {"wall_s": record.wall_time_s, "peak_mb": record.peak_memory_mb,
                                                   "protocol": record.protocol}
        elif record.variant_steps:
            notes = record.variant_steps[0]["notes"]
            seconds = notes.get("seconds") or {}
            fitted = (sum(v for k, v in seconds.items() if k != "apply") if seconds
                      else notes.get("fit_seconds") or notes.get("training", {}).get("seconds"))
            if fitted:
                model["methods"][spec.variant] = round(float(fitted), 1)
    return out


def slope(xs, ys) -> float:
    """Least-squares slope of log y against log x (y ∝ x^slope)."""
    return float(np.polyfit(np.log(np.asarray(xs, float)), np.log(np.asarray(ys, float)), 1)[0])


def measure(parts: list[str], threads: int, output: Path) -> dict:
    """Measure ``parts`` into ``output`` (JSON), each part saved as soon as it is done, beside the parts an
    earlier call measured (so the parts can run at different times)."""
    report: dict = json.loads(output.read_text()) if output.is_file() else {}
    report.update({"threads": threads, "machine": f"{os.cpu_count()} cores"})

    def save(part: str, value) -> None:
        report[part] = value
        when = f"{time.strftime('%Y-%m-%d %H:%M')}, load average {os.getloadavg()[0]:.1f}"
        report.setdefault("measured_at", {})[part] = when
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(report, indent=1, default=str))

    if "records" in parts:
        save("records", zoo_records(ROOT / "results" / "runs"))
    if "fits" in parts:
        save("fits", run_child("fits", threads=threads))
    if "validate" in parts:
        save("validate", [run_child("benchmark", ZOO[1], bench, threads=threads) for bench in VALIDATE])
    if not set(parts) & {"throughput", "benchmarks"}:
        return report
    with tempfile.TemporaryDirectory() as scratch:
        models = build_models(Path(scratch))
        if "throughput" in parts:
            names = [n for n in models if n != "tiny-llama-smollm2-vocab"]
            save("throughput", [{**run_child("throughput", models.get(n, n), threads=threads), "name": n}
                                for n in [*names, *ZOO]])
        if "benchmarks" in parts:
            # tiny BERT: the 0.4M point of the time fit; the other two: real vocabularies for the token counts
            chosen = {"tiny-bert": models["tiny-bert"], "zoo:bert-tiny-mlm": "zoo:bert-tiny-mlm",
                      "tiny-llama-smollm2-vocab": models["tiny-llama-smollm2-vocab"]}
            save("benchmarks", [{**run_child("benchmark", spec, bench, threads=threads), "name": name}
                                for name, spec in chosen.items() for bench in ZERO_SHOT])
    return report


def print_report(report: dict) -> None:
    from tabulate import tabulate

    rows = report.get("throughput", [])
    if rows:
        print(f"\nThroughput ({report['threads']} torch threads, fp32, rows of {SEQ} tokens)")
        print(tabulate([[r["name"], f"{r['params'] / 1e6:.2f}M", r["layers"], r["hidden"],
                         f"{r['forward_tokens_per_s']:,.0f}", f"{r['train_tokens_per_s']:,.0f}",
                         f"{r['load_mb']:.0f}", f"{r['forward_extra_mb']:.0f}", f"{r['train_extra_mb']:.0f}",
                         f"{r['activation_bytes_per_token_layer_hidden']:.0f}"] for r in rows],
                       headers=["model", "params", "layers", "hidden", "fwd tok/s", "train tok/s", "load MB",
                                "+fwd MB", "+train MB", "act. B/(tok·layer·hidden)"]))
        big = [r for r in rows if r["params"] >= 1e6]
        params = [r["params"] for r in big]
        fits = {"forward s/token": [1 / r["forward_tokens_per_s"] for r in big],
                "train s/token": [1 / r["train_tokens_per_s"] for r in big],
                "train RSS above the loaded model": [r["train_extra_mb"] for r in big]}
        print("\nlog-log slopes against parameters (models >= 1M parameters): "
              + ", ".join(f"{k} {slope(params, v):.2f}" for k, v in fits.items()))
    rows = report.get("benchmarks", [])
    if rows:
        print("\nBenchmarks, default options (= full protocol): wall time, peak RSS, tokens and calls the body sees")
        print(tabulate([[r["name"], r["benchmark"], f"{r['params'] / 1e6:.2f}M", f"{r['wall_s']:.1f}",
                         f"{r['peak_mb']:.0f}", f"{r['tokens']:,}", r["calls"]] for r in rows],
                       headers=["model", "benchmark", "params", "wall s", "peak MB", "tokens", "calls"]))
    records = report.get("records", {})
    for model, data in records.items():
        print(f"\nCommitted records, {model} (base model per benchmark; method fitting seconds, seed 0)")
        print(tabulate([[b, v["protocol"], f"{v['wall_s']:.1f}", v["peak_mb"]] for b, v in data["benchmarks"].items()],
                       headers=["benchmark", "protocol", "wall s", "peak MB (process)"]))
        print(tabulate([[m, s, data["peak_mb"].get(m)] for m, s in data["methods"].items()],
                       headers=["method", "fit s", "peak MB (process)"]))
    if len(records) == 2 and rows:
        small, large = (records[m] for m in ZOO)
        now = {(r["name"], r["benchmark"]): r["wall_s"] for r in rows}
        print("\nBenchmark wall time against parameters — measured now: tiny BERT (0.4M), bert-tiny-mlm (4.4M); "
              "committed records (measured under whatever load the machine had): bert-tiny-mlm, smollm2 (135M)")
        table = []
        for bench in ZERO_SHOT:
            if bench in small["benchmarks"] and bench in large["benchmarks"] and ("tiny-bert", bench) in now:
                tiny, mlm = now[("tiny-bert", bench)], now[(ZOO[0], bench)]
                mlm_record, smol = small["benchmarks"][bench]["wall_s"], large["benchmarks"][bench]["wall_s"]
                table.append([bench, f"{tiny:.1f}", f"{mlm:.1f}", f"{mlm_record:.1f}", f"{smol:.1f}",
                              f"{slope([4.4e6, 134.5e6], [mlm, smol]):.2f}",
                              f"{slope([4.4e6, 134.5e6], [mlm_record, smol]):.2f}"])
        print(tabulate(table, headers=["benchmark", "tiny now", "4.4M now", "4.4M record", "135M record",
                                       "slope now->record", "slope records"]))
        both = [m for m in small["methods"] if m in large["methods"]]
        print("method fitting time (cpu protocol, whose work differs per model kind), slope 4.4M->135M: "
              + ", ".join(f"{m} {slope([4.4e6, 134.5e6], [small['methods'][m], large['methods'][m]]):.2f}"
                          for m in both))
    validate, throughput = report.get("validate"), {r["name"]: r for r in report.get("throughput", [])}
    if validate and throughput and rows:
        # the GPU estimate's method on the CPU: tokens (tiny Llama, same tokenizer) / SmolLM2's forward tokens/s
        # + the host time (the tiny model's wall time)
        rate = throughput[ZOO[1]]["forward_tokens_per_s"]
        tiny = {r["benchmark"]: r for r in rows if r["name"] == "tiny-llama-smollm2-vocab"}
        print(f"\nPrediction check on {ZOO[1]} (tokens / {rate:.0f} tokens/s + the tiny model's wall time)")
        print(tabulate([[v["benchmark"], f"{v['tokens']:,}", f"{tiny[v['benchmark']]['tokens']:,}",
                         f"{tiny[v['benchmark']]['wall_s'] + tiny[v['benchmark']]['tokens'] / rate:.1f}",
                         f"{v['wall_s']:.1f}", f"{v['peak_mb']:.0f}"] for v in validate],
                       headers=["benchmark", "tokens", "tokens (tiny)", "predicted s", "measured s", "peak MB"]))
    fits = report.get("fits")
    if fits:
        print("\nCPU-side solvers (one thread for R-LACE, as methods/rlace.py): seconds against hidden size")
        print("R-LACE step: " + ", ".join(f"d={d} {s:.4f}" for d, s in fits["rlace_step_s"].items())
              + "; eigh alone: " + ", ".join(f"d={d} {s:.2f}" for d, s in fits["eigh_single_thread_s"].items()))
        print(f"INLP classifier ({fits['inlp_train_rows']} rows): "
              + ", ".join(f"d={d} {s:.2f}" for d, s in fits["inlp_classifier_s"].items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--threads", type=int, default=2, help="torch threads per measuring process")
    parser.add_argument("--output", default="build/perf/family-scaling.json",
                        help="JSON of every figure; parts measured earlier into it are kept")
    parser.add_argument("--input", help="print a JSON written earlier instead of measuring")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        print(json.dumps(CHILDREN[args.child[0]](*args.child[1:])))
        return 0
    output = ROOT / args.output
    report = json.loads(Path(args.input).read_text()) if args.input else measure(args.parts, args.threads, output)
    print_report(report)
    if not args.input:
        print(f"\nwrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
