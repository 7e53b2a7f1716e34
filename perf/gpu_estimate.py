"""The paper grid's GPU wall time and memory, extrapolated — the estimated half of docs/gpu-runbook.md.

    .venv/bin/python perf/gpu_estimate.py [--scaling build/perf/family-scaling.json] [--mfu 0.35]

Nothing here was measured on a GPU (none was available). Each cost is counted work × an assumed rate:

* **work**: FLOPs per token ≈ 2·N for a forward pass, 6·N for training (Kaplan et al. 2020, "Scaling Laws for
  Neural Language Models", C ≈ 6N per training token; N counts the tied embedding, which the LM head
  multiplies), 10·N for a GRADIEND step (one forward, two backward passes), plus attention's 2·L·s·d per
  token at CDA's 512 tokens; × the tokens each step processes: measured for StereoSet/SEAT/CrowS/lm-quality
  (``perf/family_scaling.py``: padded tokens and forward calls the model body saw, on real vocabularies),
  counted from the data and the ``full`` settings for the methods and GLUE/SuperGLUE (constants below);
* **rate**: ``--mfu`` (default 35 %) of an H100/H200's dense peak — 67 TFLOPS fp32, which is what the harness
  runs today (fp32 weights, PyTorch's default of no TF32), or 495 TFLOPS with TF32
  (``TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1``); small batches are latency-bound instead: each pass costs at least
  ``LAYER_MS`` per layer (kernel launches; an assumption), an optimizer step reads and writes 28 B per weight
  at ``HBM_TB_S``;
* **host time**: what does not shrink on a GPU — the benchmarks' own CPU work (tokenising, statistics,
  SEAT's permutations: their measured wall time on a tiny model, whose forward passes cost nothing), and the
  solvers that run on the CPU on any machine (R-LACE's game single-threaded, INLP's SVMs: measured against
  the hidden size, extrapolated with their measured log-log slope);
* **memory**: bytes per weight × copies (fp32 4 B; AdamW 8 B; the copies each step holds, from the code)
  + activations at the measured bytes per token·layer·hidden unit (fp32 training, ``family_scaling.py``).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# hub config.json of each model: parameters, layers, hidden size, kind (GPT-2 is fine-tuned for GLUE, Llama
# scored zero-shot: benchmarks/glue_suite.py paper_protocol)
PAPER = {"bert-base-cased": (108.3e6, 12, 768, "masked"), "bert-large-cased": (333.6e6, 24, 1024, "masked"),
         "distilbert-base-cased": (65.8e6, 6, 768, "masked"), "roberta-large": (355.4e6, 24, 1024, "masked"),
         "gpt2": (124.4e6, 12, 768, "causal"), "meta-llama/Llama-3.2-3B": (3.21e9, 28, 3072, "causal"),
         "meta-llama/Llama-3.2-3B-Instruct": (3.21e9, 28, 3072, "causal")}
PEAK_TFLOPS = {"fp32": 67.0, "tf32": 495.0}  # H100 SXM dense (H200: the same compute, 141 GB at 4.8 TB/s)
LAYER_MS = 0.2  # assumed floor per layer and pass (~20 eager kernels of ~10 µs); a training step is 3 passes
HBM_TB_S = 3.35  # H100 SXM memory bandwidth
GPU_GB = {"H100": 80, "H200": 141}
MEMORY_BUDGET_WEIGHTS = 2 * 1024 ** 3 / 36  # pre_prune: auto keeps the weights whose encoder-decoder fits 2 GiB

# -- counted work (full protocol) ---------------------------------------------------------------------------
# GRADIEND (methods/gradiend/workflow.py, full): 2,313 templates mined from corpus-en (1,850 train, 231 val, 232
# test; ~40 words ≈ 52 tokens), the base-model filter asks 16 names per class, 173 steps of 32 (max(150,
# 3·1850/32)), seeds in turn until one converged (1 to 3), 4-row slices above 50M weights, the paper's grid of
# 240 (h*, α) candidates on 252 name prompts (~14 tokens) and 1,000 LMS sentences (~33 tokens)
GRADIEND = {"templates": 2313, "train": 1850, "template_tokens": 52, "filter_names": 16, "steps": 173,
            "batch": 32, "slice": 4, "candidates": 241, "prompts": 252, "prompt_tokens": 14, "lms": 1000,
            "lms_tokens": 33, "host_step_s": 0.3}  # host_step_s: CPU AdamW of the encoder-decoder (assumed)
# CDA/Dropout (harness/pretraining.py PROTOCOLS["full"]): 2,000 steps of 512 sequences (causal: 256) × 512 tokens
PRETRAIN = {"masked": (2000, 32, 16, 512), "causal": (2000, 16, 16, 512)}  # steps, rows, accumulation, length
# post-processing encodings (harness/attribute_data.py, full): sentences available in corpus-en for gender —
# 10,000 male, 4,419 female, 10,000 neutral; 19,345 counterfactual pairs; ~15 words ≈ 20 tokens each
ENCODED = {"inlp": 24419, "leace": 24419, "rlace": 14419, "sentdebias": 2 * 19345}
SENTENCE_TOKENS = 20
INLP_ITERATIONS = {"masked": 80, "causal": 10}  # methods/inlp.py PROTOCOL_SETTINGS["full"] (never stops early)
# INLP's SVM time against d on *real* features: the committed records' fit seconds per classifier on 3,675 rows —
# zoo:bert-tiny-mlm (d 128) 13.8 s / 25, zoo:smollm2-135m (d 576) 278.4 s / 10 (encoding included, so an upper
# bound) — slope 2.6; synthetic features give 5 (perf/family_scaling.py: their conditioning worsens with d), so
# the estimate anchors the records' slope at the measured d = 128 classifier on the full protocol's 11,965 rows
INLP_SLOPE = math.log((278.4 / 10) / (13.8 / 25)) / math.log(576 / 128)
RLACE_STEPS = 75000
SELFDEBIAS_TOKENS = 2.5  # its prefix pass besides the plain one: 1 + (1 + 13-token prefix / ~25 tokens)
# GLUE/SuperGLUE under `full`: (train rows, eval rows, mean tokens of a batch of 32 rows in random order after
# padding to its longest row, max 128), measured with zoo:bert-tiny-mlm's WordPiece tokenizer on the mirror's
# files; MNLI, QQP and QNLI's train set are not mirrored: sizes from the GLUE paper, batch lengths assumed twice
# their mean rows (~40, ~32, ~50 tokens), as measured for the other pair tasks (MRPC 1.5×, STS-B 2.5×, WNLI 2.2×)
FINETUNE = {"glue": {"cola": (8551, 1043, 23), "sst2": (67349, 872, 41), "mrpc": (3668, 408, 80),
                     "qqp": (363846, 40430, 65), "mnli": (392702, 19647, 80), "qnli": (104743, 5463, 100),
                     "rte": (2490, 277, 128), "stsb": (5749, 1500, 70), "wnli": (635, 71, 81)},
            "superglue": {"boolq": (9427, 3270, 128), "cb": (250, 56, 128), "copa": (800, 200, 30),
                          "multirc": (27243, 4848, 128), "rte": (2490, 277, 128), "wic": (5428, 638, 44),
                          "wsc": (554, 104, 92)}}
FINETUNE_EPOCHS, FINETUNE_SEEDS, FINETUNE_BATCH = 3, 3, 32
CHOICES = {"mnli": 3, "cb": 3}  # zero-shot log-likelihood requests per example (else 2)


class Gpu:
    def __init__(self, precision: str, mfu: float):
        self.rate = PEAK_TFLOPS[precision] * 1e12 * mfu

    def passes(self, flops: float, calls: float, layers: int, passes_per_call: int = 1) -> float:
        """Seconds for ``calls`` batches of ``flops`` in all: compute- or launch-bound, whichever is slower."""
        return max(flops / self.rate, calls * passes_per_call * layers * LAYER_MS / 1e3)


def optimizer_s(params: float, steps: float) -> float:
    return steps * params * 28 / (HBM_TB_S * 1e12)


def activations_gb(act_bytes: float, tokens: float, layers: int, hidden: int) -> float:
    return act_bytes * tokens * layers * hidden / 1e9


def at_dim(measured: dict, dim: int) -> float:
    """A CPU solver's seconds at hidden size ``dim``: measured, else log-log inter/extrapolated from the two
    nearest measurements (the two largest beyond them)."""
    points = sorted((int(d), float(s)) for d, s in measured.items())
    exact = dict(points)
    if dim in exact:
        return exact[dim]
    (d0, s0), (d1, s1) = sorted(points, key=lambda p: abs(math.log(p[0] / dim)))[:2]
    exponent = math.log(s1 / s0) / math.log(d1 / d0)
    return s0 * (dim / d0) ** exponent


def method_costs(n, layers, hidden, kind, gpu: Gpu, fits: dict, act_bytes: float) -> dict[str, tuple[float, float]]:
    """{method: (seconds, peak GPU GB)} of fitting each method once on one model."""
    g = GRADIEND
    kept = min(n, MEMORY_BUDGET_WEIGHTS)  # all backbone weights are selected (include: null), ≈ n
    slices = g["batch"] // g["slice"] if n > 50e6 else 1
    filter_tokens = g["templates"] * 2 * g["filter_names"] * g["template_tokens"]
    step_tokens = g["batch"] * g["template_tokens"]
    grid_tokens = g["candidates"] * (g["prompts"] * g["prompt_tokens"] + g["lms"] * g["lms_tokens"])
    # model, the engine's clone, ∇⁺W and ∇⁻W (4 B each) + one slice's activations
    gradiend_gb = 16 * n / 1e9 + activations_gb(act_bytes, g["slice"] * g["template_tokens"], layers, hidden)
    out = {}
    for seeds in (1, 3):
        seconds = (gpu.passes(2 * n * filter_tokens, filter_tokens / (64 * g["template_tokens"]), layers)
                   + seeds * g["steps"] * (gpu.passes(10 * n * step_tokens, slices, layers, 3) + g["host_step_s"])
                   + gpu.passes(2 * n * grid_tokens, g["candidates"] * (g["prompts"] + g["lms"]) / 32, layers))
        out[f"gradiend, {seeds} seed(s) trained"] = (seconds, gradiend_gb)
    # pre-pruning sums |∇±W| over all weights on the host: the sum, the copied gradient and its abs (4 B each)
    out["gradiend: host RAM"] = (0.0, 12 * n / 1e9 + 36 * kept / 1e9)
    steps, rows, accumulation, length = PRETRAIN[kind]
    tokens = steps * rows * accumulation * length
    pretrain_s = (gpu.passes(tokens * (6 * n + 6 * layers * length * hidden), steps * accumulation, layers, 3)
                  + optimizer_s(n, steps))
    # the model, its trained copy, gradients, AdamW moments + one micro-batch's activations
    out["cda"] = out["dropout"] = (pretrain_s, 20 * n / 1e9 + activations_gb(act_bytes, rows * length, layers, hidden))
    encode = {m: gpu.passes(2 * n * k * SENTENCE_TOKENS, k / 32, layers) for m, k in ENCODED.items()}
    forward_gb = 4 * n / 1e9 + 1.0  # weights + one batch's activations and logits (≈ 1 GB)
    anchor = float(fits["inlp_classifier_s"]["128"] if "128" in fits["inlp_classifier_s"]
                   else fits["inlp_classifier_s"][128])
    out["inlp"] = (encode["inlp"] + INLP_ITERATIONS[kind] * anchor * (hidden / 128) ** INLP_SLOPE, forward_gb)
    out["sentdebias"] = (encode["sentdebias"], forward_gb)
    out["leace"] = (encode["leace"], forward_gb)
    rlace_step = (at_dim(fits["rlace_step_s"], hidden) if hidden <= max(map(int, fits["rlace_step_s"]))
                  else at_dim(fits["eigh_single_thread_s"], hidden))  # at large d a step is its eigendecomposition
    out["rlace"] = (encode["rlace"] + RLACE_STEPS * rlace_step, forward_gb)
    out["selfdebias"] = (0.0, forward_gb)
    return out


def benchmark_costs(n, layers, hidden, kind, gpu: Gpu, measured: dict, act_bytes: float) -> dict[str, tuple]:
    """{benchmark: (seconds, peak GPU GB)} of one run on one variant."""
    out = {}
    for name, m in measured[kind].items():  # host part (measured on a tiny model) + the model's passes
        out[name] = (m["host_s"] + gpu.passes(2 * n * m["tokens"], m["calls"], layers), 4 * n / 1e9 + 1.0)
    for suite, tasks in FINETUNE.items():
        if kind == "masked" or n < 1e9:  # fine-tuned: masked LMs and GPT-2 (glue_suite.paper_protocol)
            seconds, batch_tokens = 0.0, 0
            for rows, evals, tokens in tasks.values():
                steps = math.ceil(rows / FINETUNE_BATCH) * FINETUNE_EPOCHS * FINETUNE_SEEDS
                seconds += gpu.passes(6 * n * rows * tokens * FINETUNE_EPOCHS * FINETUNE_SEEDS, steps, layers, 3)
                seconds += optimizer_s(n, steps) + gpu.passes(2 * n * evals * tokens * FINETUNE_SEEDS,
                                                              evals / 64 * FINETUNE_SEEDS, layers)
                batch_tokens = max(batch_tokens, FINETUNE_BATCH * tokens)
            # the variant's model, the fine-tuned clone, its gradients and AdamW moments + activations
            out[suite] = (seconds, 20 * n / 1e9 + activations_gb(act_bytes, batch_tokens, layers, hidden))
        else:  # zero-shot: the log-likelihood of each choice (lm-eval), the prompt ≈ 10 tokens more
            requests = sum(evals * CHOICES.get(t, 2) for t, (_, evals, _) in tasks.items() if t != "stsb")
            tokens = sum(evals * CHOICES.get(t, 2) * (tok + 10) for t, (_, evals, tok) in tasks.items() if t != "stsb")
            out[suite] = (gpu.passes(2 * n * tokens, requests / 32, layers), 4 * n / 1e9 + 2.0)
    return out


WEIGHT_CHANGING = ("gradiend", "cda", "dropout")
SEED_FREE_BENCHMARKS = ("stereoset", "crows", "lm-quality")  # the only ones SelfDebias applies to


def grid_seconds(methods: dict, benchmarks: dict, weight_changing: tuple[str, ...], gradiend_seeds: int) -> float:
    """One model's grid: each weight change once, INLP and SentDebias on the base and on each weight-changed
    model, LEACE and R-LACE once; every variant through every benchmark (SelfDebias: three, at its token cost)."""
    fits = sum(methods[f"gradiend, {gradiend_seeds} seed(s) trained" if m == "gradiend" else m][0]
               for m in weight_changing)
    fits += (1 + len(weight_changing)) * (methods["inlp"][0] + methods["sentdebias"][0])
    fits += methods["leace"][0] + methods["rlace"][0]
    variants = 1 + 4 + len(weight_changing) * 3  # base, INLP, SentDebias, LEACE, R-LACE; each change alone + 2 combos
    runs = variants * sum(s for s, _ in benchmarks.values())
    runs += sum(SELFDEBIAS_TOKENS * benchmarks[b][0] for b in SEED_FREE_BENCHMARKS if b in benchmarks)
    return fits + runs


def measured_benchmarks(scaling: dict) -> dict:
    """Tokens and calls per benchmark by kind (real vocabularies) and the host seconds (a tiny model's wall time)."""
    rows = {(r["name"], r["benchmark"]): r for r in scaling["benchmarks"]}
    sources = {"masked": ("zoo:bert-tiny-mlm", "tiny-bert"), "causal": ("tiny-llama-smollm2-vocab",) * 2}
    return {kind: {b: {"tokens": rows[(real, b)]["tokens"], "calls": rows[(real, b)]["calls"],
                       "host_s": rows[(tiny, b)]["wall_s"]} for (name, b) in rows if name == real}
            for kind, (real, tiny) in sources.items()}


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min" if seconds >= 60 else \
        f"{seconds:.0f} s"


def main(argv: list[str] | None = None) -> int:
    from tabulate import tabulate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scaling", default="build/perf/family-scaling.json", help="perf/family_scaling.py's JSON")
    parser.add_argument("--mfu", type=float, default=0.35, help="sustained share of the GPU's dense peak")
    args = parser.parse_args(argv)
    scaling = json.loads((ROOT / args.scaling).read_text())
    measured = measured_benchmarks(scaling)
    largest = max(scaling["throughput"], key=lambda r: r["params"])
    act_bytes = largest["activation_bytes_per_token_layer_hidden"]
    gpus = {p: Gpu(p, args.mfu) for p in PEAK_TFLOPS}
    print(f"GPU estimate: {args.mfu:.0%} of H100/H200 dense peak (fp32 {PEAK_TFLOPS['fp32']:.0f}, TF32 "
          f"{PEAK_TFLOPS['tf32']:.0f} TFLOPS), ≥ {LAYER_MS} ms per layer and pass; activations "
          f"{act_bytes:.0f} B per token·layer·hidden (measured on {largest['name']})")
    totals = {p: [0.0, 0.0, 0.0] for p in gpus}  # configured grid (1 GRADIEND seed), 3 seeds, paper's Llama rows
    for model, (n, layers, hidden, kind) in PAPER.items():
        costs = {p: (method_costs(n, layers, hidden, kind, g, scaling["fits"], act_bytes),
                     benchmark_costs(n, layers, hidden, kind, g, measured, act_bytes)) for p, g in gpus.items()}
        print(f"\n{model}: {n / 1e9:.2f}B parameters, {layers} layers, hidden {hidden}, {kind}")
        for part in (0, 1):
            table = [[name, hours(costs["fp32"][part][name][0]), hours(costs["tf32"][part][name][0]),
                      f"{costs['fp32'][part][name][1]:.1f}"] for name in costs["fp32"][part]]
            print(tabulate(table, headers=["method (fit once)" if part == 0 else "benchmark (one run)", "fp32",
                                           "TF32", "peak GB"]))
        llama = n > 1e9
        for p in gpus:
            methods, benchmarks = costs[p]
            totals[p][0] += grid_seconds(methods, benchmarks, WEIGHT_CHANGING, 1)
            totals[p][1] += grid_seconds(methods, benchmarks, WEIGHT_CHANGING, 3)
            totals[p][2] += grid_seconds(methods, benchmarks, ("gradiend",) if llama else WEIGHT_CHANGING, 1)
        print("grid on this model: " + ", ".join(
            f"{p} {hours(grid_seconds(*costs[p], WEIGHT_CHANGING, 1))}" for p in gpus))
    print("\nWhole paper grid (configs/paper.yaml) on one GPU:")
    for p, (one, three, paper) in totals.items():
        print(f"  {p}: {hours(one)} (GRADIEND: 1 seed trained per model; 3 seeds: {hours(three)}); without Llama's "
              f"CDA/Dropout rows, as the paper's table: {hours(paper)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
