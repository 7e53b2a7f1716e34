"""GRADIEND on every model family's tiny model on one device — the first thing to run on a GPU machine.

    python perf/gpu_smoke.py                    # --device cuda (falls back to the CPU, saying so, without CUDA)
    python perf/gpu_smoke.py --device cpu       # the same checks on the CPU (15–20 s per family on one core)
    python perf/gpu_smoke.py --families llama --steps 8

Per family (``harness.models.tiny.build_tiny_model``: BERT, DistilBERT, RoBERTa, GPT-2, Llama; 0.4M random
weights, built once into ``--out``) it loads the model on the device and runs, there:

* the whole cached workflow (:func:`methods.gradiend.workflow.fit`, ``cpu`` protocol, one seed, ``--steps``
  steps, the ``package`` grid) with **pre-pruning forced** (``pre_prune: 0.5``; a tiny model would keep every
  weight under ``auto``, the paper's models do not): pre-pruning, training, encoder evaluation, decoder grid,
  checkpoints — and checks that the checkpoint loads on the CPU;
* a rewrite W + 0.01·dec(1) on the pruned index (the selection may keep the unchanged model, α = 0);
* micro-batched gradients under bf16 autocast (the path of models above 50M weights, and option ``bf16``);
* two seeds' training through a resume file, then the same call again, which loads both from that file.

The base-model filter's verdict is overridden (every template kept), as in ``tests/tiny_families.py``: a random
model keeps a few templates by chance. The numbers mean nothing; what counts is that every step runs on the
device. It prints per family ``ok`` or the error with where it was raised, and ``torch.cuda.max_memory_allocated``;
the exit status is 1 when a family failed, 2 when the set-up failed (e.g. no data mirror).
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python perf/gpu_smoke.py` from the repository root

DOCUMENTS = 3000  # corpus documents the tiny tokenizers learn from (as tests/tiny_families.py)


def choose_device(requested: str) -> str:
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        print(f"CUDA is not available (torch {torch.__version__}, {torch.cuda.device_count()} GPUs visible): running "
              "on the CPU instead. This shows the script runs, not that GRADIEND runs on a GPU.", file=sys.stderr)
        return "cpu"
    return requested


def smoke_family(family: str, device: str, root: Path, documents: list[str], steps: int) -> str:
    """Run GRADIEND on ``family``'s tiny model on ``device``; a short description of what ran (raises on failure)."""
    import torch

    from harness.models import load_model
    from harness.models.tiny import build_tiny_model
    from methods.gradiend.evaluation import EncoderProbe, class_examples
    from methods.gradiend.gradients import GradientEngine, make_batch
    from methods.gradiend.model import Gradiend
    from methods.gradiend.rewrite import rewrite
    from methods.gradiend.training import TrainConfig, sample_batch, train
    from methods.gradiend.workflow import Settings, fit, prepare_data

    folder = root / family
    if not (folder / "config.json").is_file():
        build_tiny_model(family, folder, documents)
    lm = load_model(str(folder), device=device)
    settings = Settings(protocol="cpu", seeds=(0,), max_steps=steps, grid="package", pre_prune=0.5)
    data = prepare_data(lm, settings)
    data.templates["kept"] = True  # see the module docstring
    work = root / f"{family}-gradiend"
    for stale in (work, work.with_name(work.name + ".resume"), root / f"{family}-resume"):
        shutil.rmtree(stale, ignore_errors=True)  # a cached entry would skip everything

    artefacts = fit(lm, settings, work, data=data)
    param_map = artefacts.param_map
    if param_map.index is None:
        raise AssertionError("pre-pruning kept every weight: the pruned path did not run")
    loaded, _ = Gradiend.load(work / "gradiend.safetensors")
    if loaded.device.type != "cpu":
        raise AssertionError(f"the checkpoint loads on {loaded.device}, not on the CPU")

    rewritten = rewrite(lm, param_map, artefacts.model.decode(1.0, 0), 0.01)
    before, after = dict(lm.model.named_parameters()), dict(rewritten.model.named_parameters())
    changed = [n for n in param_map.names if not torch.equal(before[n], after[n])]
    if rewritten.device != lm.device or not changed:
        raise AssertionError(f"the rewrite changed {len(changed)} weights on {rewritten.device}")

    engine = GradientEngine(lm, param_map, bf16=True, micro_batch=2)
    texts, factual, counterfactual = sample_batch(data, "train", 0, 5, random.Random(0))
    grads = engine.gradients(make_batch(lm, texts, factual, counterfactual), ("factual", "counterfactual", "diff"))
    if any(g.device != engine.device or g.numel() != param_map.dim for g in grads.values()):
        raise AssertionError("micro-batched gradients are not the kept weights on the model's device")
    del engine, grads

    engine = GradientEngine(lm, param_map, micro_batch=4)
    probe = EncoderProbe(engine, class_examples(data, "val", 0, 16))
    config = TrainConfig(seeds=(0, 1), batch_size=8, max_steps=2, eval_every=1, min_convergent_seeds=None)
    resume = root / f"{family}-resume"
    first = train(engine, data, config, probe.correlations, resume_dir=resume)
    again = train(engine, data, config, probe.correlations, resume_dir=resume)  # both seeds from the file
    if again.model.device != engine.device or not torch.equal(first.model.w_d.cpu(), again.model.w_d.cpu()):
        raise AssertionError("training resumed from its file differs from the training that wrote it")
    return (f"{param_map.dim:,} of {param_map.total:,} weights kept, {artefacts.summary['training']['steps']} "
            f"steps, decoder grid of {artefacts.selection['grid']['candidates']}, rewrite changed {len(changed)} "
            "tensors")


def where(exc: BaseException) -> str:
    """The innermost frame of the project's own code (methods/, harness/) that the error passed through."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if any(f"/{part}/" in f.filename for part in ("methods", "harness"))]
    if not frames:
        return ""
    frame = frames[-1]
    return f" ({Path(frame.filename).relative_to(ROOT) if str(ROOT) in frame.filename else frame.filename}:" \
           f"{frame.lineno} in {frame.name})"


def main(argv: list[str] | None = None) -> int:
    from harness.models.tiny import FAMILIES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    parser.add_argument("--steps", type=int, default=4, help="GRADIEND training steps of the workflow run")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "perf" / "gpu-smoke",
                        help="tiny models (kept) and GRADIEND folders (replaced each run)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (a 64-wide model gains nothing from more; see tests/tiny_families.py)")
    parser.add_argument("--traceback", action="store_true", help="print the full traceback of a failure")
    args = parser.parse_args(argv)

    import torch

    from harness.data.corpus import load_documents
    from harness.errors import HarnessError

    torch.set_num_threads(args.threads)
    device = choose_device(args.device)
    try:
        documents = load_documents()[:DOCUMENTS]
    except HarnessError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return 2
    cuda = device == "cuda"
    print(f"device: {torch.cuda.get_device_name() if cuda else 'cpu'} (torch {torch.__version__})")
    failed = []
    for family in args.families:
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        try:
            done = smoke_family(family, device, args.out, documents, args.steps)
            status = f"ok      {done}"
        except Exception as exc:  # noqa: BLE001 - every failure is reported per family, then the next runs
            failed.append(family)
            status = f"FAILED  {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}{where(exc)}"
            if args.traceback:
                traceback.print_exc()
        memory = f"{torch.cuda.max_memory_allocated() / 2 ** 20:.1f} MB" if cuda else "n/a (cpu)"
        print(f"{family:10s} {status}  [{time.perf_counter() - started:.1f} s, "
              f"torch.cuda.max_memory_allocated: {memory}]", flush=True)
    print(f"{len(args.families) - len(failed)} of {len(args.families)} families ok"
          + (f"; failed: {', '.join(failed)} (rerun with --traceback)" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
