"""How many steps (and how much wall time) does a GRADIEND seed need to converge on a model?

    python perf/gradiend_convergence.py --model zoo:bert-tiny-mlm --lr 1e-5 --steps 200
    python perf/gradiend_convergence.py --model zoo:smollm2-135m --lr 1e-4 --steps 400 --seeds 0

Trains the given seeds with the ``cpu`` protocol's data (400 templates, base-model filtered) and evaluation
(every ``--eval-every`` steps on 64 validation examples) but **without** stopping at convergence, so the whole
curve is seen: validation r and both class means against steps, and where the reference rule
(:mod:`methods.gradiend.convergence`) first holds. Writes ``<out>/curve.json`` and ``<out>/convergence.png``
and prints one line per evaluation. The training state is saved after every evaluation in ``<out>/resume``: a
killed run continues where it stopped when started again with the same arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--eval-every", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from harness.models import load_model
    from methods.gradiend.convergence import ConvergenceRule
    from methods.gradiend.evaluation import EncoderProbe, class_examples
    from methods.gradiend.gradients import GradientEngine, auto_micro_batch, select_parameters
    from methods.gradiend.training import TrainConfig, train
    from methods.gradiend.workflow import Settings, auto_prune_fraction, plot_convergence, pre_prune, prepare_data

    out = args.out or Path("results/perf/gradiend-convergence") / f"{args.model.replace(':', '-')}-lr{args.lr:g}"
    out.mkdir(parents=True, exist_ok=True)
    lm = load_model(args.model)
    settings = Settings(protocol="cpu", lr=args.lr, seeds=tuple(args.seeds))
    started = time.perf_counter()
    data = prepare_data(lm, settings, progress=True)
    param_map = select_parameters(lm)
    engine = GradientEngine(lm, param_map, micro_batch=auto_micro_batch(lm))
    fraction = auto_prune_fraction(param_map)  # as the adapter's default pre_prune: auto
    if fraction is not None:
        param_map.index = pre_prune(engine, data, fraction, 8, 0, 32)
    prepared = time.perf_counter() - started
    rule = ConvergenceRule.named("reference")
    config = TrainConfig(tuple(args.seeds), args.lr, max_steps=args.steps, eval_every=args.eval_every,
                         rule="reference", min_convergent_seeds=None, stop_on_convergence=False)
    probe = EncoderProbe(engine, class_examples(data, "val", 0, 64))
    clock = time.perf_counter()
    result = train(engine, data, config, probe.correlations, progress=True, resume_dir=out / "resume")
    seconds = time.perf_counter() - clock
    curves = {}
    for report in result.seeds:
        evals = [e for e in result.history[report.seed] if "correlation" in e]
        first = next((e["step"] for e in evals
                      if rule.check(e["correlation"], e["mean_first"], e["mean_second"], e["step"])["converged"]),
                     None)
        curves[report.seed] = {"evaluations": evals, "first_converged_step": first,
                               "seconds": report.seconds, "seconds_per_step": report.seconds / max(report.steps, 1)}
        for e in evals:
            print(f"seed {report.seed} step {e['step']:4d}  r={e['correlation']:+.3f}  "
                  f"means {e['mean_first']:+.3f} / {e['mean_second']:+.3f}")
        print(f"seed {report.seed}: first converged (reference rule) at step {first}; "
              f"{report.seconds:.0f} s for {report.steps} steps ({report.seconds / max(report.steps, 1):.2f} s/step)")
    record = {"model": args.model, "lr": args.lr, "steps": args.steps, "eval_every": args.eval_every,
              "rule": rule.describe(), "trained_weights": engine.map.dim, "setup_seconds": round(prepared, 1),
              "train_seconds": round(seconds, 1), "torch_threads": torch.get_num_threads(),
              "load_average": os.getloadavg(), "seeds": curves}
    (out / "curve.json").write_text(json.dumps(record, indent=1))
    plot_convergence(result, out / "convergence.png", rule)
    print(f"-> {out / 'curve.json'}, {out / 'convergence.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
