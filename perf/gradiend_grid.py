"""Decoder-grid cost on CPU, and whether screening on fewer prompts changes the selected candidate.

    python perf/gradiend_grid.py --model zoo:bert-tiny-mlm --dir results/cache/methods/gradiend-shared/<key>
    python perf/gradiend_grid.py --model zoo:smollm2-135m --dir ... --skip-full   # screened only

``--dir`` is a trained GRADIEND folder (the adapter's cache entry, or a CLI ``gradiend train`` folder: it needs
``gradiend.safetensors`` and ``data/``). With the same GRADIEND, objective (the gender name-prediction prompts)
and LMS sentences, it runs the paper's 240-candidate grid twice — every candidate on all prompts and
sentences (``full``), and :func:`methods.gradiend.evaluation.screened_grid` (all candidates on every
``--screen``-th prompt and sentence, the finalists on all) — and prints per run the wall time, seconds per
candidate and the selected (h*, α) for each metric and rule, then whether the two selections agree.
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
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--screen", type=int, default=4, help="screen on every N-th prompt and LMS sentence")
    parser.add_argument("--finalists", type=int, default=8)
    parser.add_argument("--skip-full", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from harness.models import load_model
    from methods.gradiend.data import GradiendData
    from methods.gradiend.evaluation import (
        METRICS,
        PAPER_ALPHAS,
        PAPER_FEATURE_FACTORS,
        DecoderGrid,
        screened_grid,
        select,
    )
    from methods.gradiend.gradients import GradientEngine
    from methods.gradiend.workflow import Settings, load_trained, selection_objective

    lm = load_model(args.model)
    gradiend, param_map = load_trained(args.dir)
    data = GradiendData.load(args.dir / "data")
    engine = GradientEngine(lm, param_map)
    settings = Settings(protocol="cpu")
    values = settings.protocol_values()
    sentences = data.neutral[values["neutral_eval"]:values["neutral_eval"] + values["lms_sentences"]]
    objective, described = selection_objective(lm, settings, data)  # what the adapter's decoder step scores
    full = DecoderGrid(engine, objective, sentences, 0)
    screen = DecoderGrid(engine, objective.subset(args.screen), sentences[::args.screen], 0)
    n = len(PAPER_FEATURE_FACTORS) * len(PAPER_ALPHAS)
    report = {"model": args.model, "candidates": n, "prompts": described["n_prompts"], "lms_sentences": len(sentences),
              "screen_every": args.screen, "finalists_per_metric": args.finalists, "threads": args.threads}
    tables = {}
    for name in (["screened"] if args.skip_full else ["full", "screened"]):
        started = time.perf_counter()
        if name == "full":
            table = full.run(gradiend, 0, PAPER_FEATURE_FACTORS, PAPER_ALPHAS, progress=True)
        else:
            table = screened_grid(full, screen, gradiend, 0, PAPER_FEATURE_FACTORS, PAPER_ALPHAS, args.finalists,
                                  progress=True)
        seconds = time.perf_counter() - started
        tables[name] = table
        chosen = {f"{rule}/{m}": select(table, m, rule) for rule in ("product", "lms-threshold") for m in METRICS}
        n_full = int((table["scored_on"] == "full").sum()) - 1 if "scored_on" in table else n
        report[name] = {"seconds": round(seconds, 1), "full_set_candidates": n_full,
                        "selected": {k: (v["h"], v["alpha"], v["unchanged"]) for k, v in chosen.items()}}
        print(f"{name}: {seconds:.0f} s ({seconds / n:.2f} s per candidate; {n_full} candidates on the full sets)")
        for key, c in chosen.items():
            what = "unchanged model" if c["unchanged"] else f"h*={c['h']:+g} α={c['alpha']:+g}"
            print(f"  {key:18s} {what:28s} value {c['value']:.4f} (base {c['base_value']:.4f}) lms {c['lms']:.4f}")
    if len(tables) == 2:
        same = report["full"]["selected"] == report["screened"]["selected"]
        report["same_selection"] = same
        print(f"screened selection {'equals' if same else 'DIFFERS FROM'} the full grid's")
    report["load_average"] = os.getloadavg()
    out = args.out or Path("results/perf/gradiend-grid") / f"{args.model.replace(':', '-')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
