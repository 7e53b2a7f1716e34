"""``gradiend-bench gradiend ...``: the GRADIEND workflow step by step in one folder.

    gradiend-bench gradiend data         --model zoo:bert-tiny --dir runs/g   [--bias-type gender] [--protocol cpu]
    gradiend-bench gradiend data         --model zoo:bert-tiny --dir runs/n   --feature number-3sg-3pl   (any spec)
    gradiend-bench gradiend train        --dir runs/g [--max-steps N] [--seeds 0 1 2] [--pre-prune F] [--bf16]
    gradiend-bench gradiend eval-encoder --dir runs/g
    gradiend-bench gradiend eval-decoder --dir runs/g
    gradiend-bench gradiend rewrite      --dir runs/g --metric bpi [--rule product] --out models/debiased
    gradiend-bench gradiend rewrite      --dir runs/g --h -1 --alpha 0.01 --out models/chosen   (any candidate)
    gradiend-bench gradiend compare      runs/g runs/n runs/p [--top-k 1000] [--labels ...] --out overlap
    gradiend-bench gradiend report       runs/g runs/n runs/p [--rule product] --out features

``data`` writes ``settings.json`` (model, bias type, protocol, seed, ...) and ``data/``; later steps read them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields, replace
from pathlib import Path

from harness.atomic import write_json_atomic
from harness.errors import HarnessError

DEVICE_HELP = "where the model and the encoder-decoder run: cpu (default), cuda, cuda:N, mps or auto"


def _load_model(spec: str, args):
    """``spec`` on ``--device`` (checked first, so a missing GPU is one line before anything loads)."""
    from harness.config import check_device
    from harness.models import load_model

    device = getattr(args, "device", None) or "cpu"
    check_device(device, "", key="--device")
    return load_model(spec, device=device)


def _settings(folder: Path):
    from methods.gradiend.workflow import Settings

    path = folder / "settings.json"
    if not path.is_file():
        raise HarnessError(f"{folder} has no settings.json",
                           f"run `gradiend-bench gradiend data --dir {folder} ...` first")
    raw = json.loads(path.read_text())
    model = raw.pop("model")
    known = {f.name for f in fields(Settings)}
    raw = {k: tuple(v) if isinstance(v, list) and k in ("pair", "seeds") else v for k, v in raw.items() if k in known}
    return model, Settings(**raw)


def _engine(folder: Path, args):
    from methods.gradiend.data import GradiendData
    from methods.gradiend.gradients import GradientEngine
    from methods.gradiend.workflow import load_trained

    model_spec, settings = _settings(folder)
    lm = _load_model(model_spec, args)
    gradiend, param_map = load_trained(folder)
    return lm, settings, GradiendData.load(folder / "data"), GradientEngine(lm, param_map, bf16=settings.bf16), gradiend


def cmd_data(args) -> int:
    from methods.gradiend.workflow import Settings, prepare_data

    folder = Path(args.dir)
    settings = Settings(bias_type=args.bias_type, pair=tuple(args.pair), protocol=args.protocol, seed=args.seed,
                        feature=args.feature)
    settings.feature_spec()  # a bad spec fails before the model loads
    data = prepare_data(_load_model(args.model, args), settings, progress=True)
    data.save(folder / "data")
    write_json_atomic(folder / "settings.json", {"model": args.model, **asdict(settings)})
    kept = int(data.templates["kept"].sum())
    print(f"{kept} of {len(data.templates)} templates kept, {len(data.names)} names, {len(data.neutral)} neutral "
          f"sentences -> {folder / 'data'}")
    return 0


def train_settings(saved, args):
    """``saved`` (the folder's ``settings.json``) with the flags ``train`` was given: a new ``Settings``, as
    ``saved`` is a cache key and stays as it is."""
    given = {key: getattr(args, key) for key in ("max_steps", "pre_prune", "post_prune", "lr", "convergence",
                                                 "min_convergent_seeds") if getattr(args, key) is not None}
    if args.seeds:
        given["seeds"] = tuple(args.seeds)
    return replace(saved, **given, bf16=saved.bf16 or args.bf16)


def cmd_train(args) -> int:
    from methods.gradiend.data import GradiendData
    from methods.gradiend.workflow import step_train

    folder = Path(args.dir)
    model_spec, saved = _settings(folder)
    settings = train_settings(saved, args)
    write_json_atomic(folder / "settings.json", {"model": model_spec, **asdict(settings)})
    _, result, _ = step_train(_load_model(model_spec, args), settings, GradiendData.load(folder / "data"), folder,
                              progress=True, resume_dir=folder / "resume")
    for s in result.seeds:
        print(f"seed {s.seed}: val r={s.best_correlation:.3f}, class means {s.mean_first:+.3f} / {s.mean_second:+.3f} "
              f"at step {s.best_step} of {s.steps}, converged={s.converged}")
    if result.untrained:
        print(f"seeds {result.untrained} not trained: enough seeds converged")
    print(f"selected seed {result.seeds[result.selected].seed} (converged: {result.converged}; "
          f"rule {result.summary()['rule']}); checkpoint {folder / 'gradiend.safetensors'}")
    if not result.converged:
        print("no seed converged: train longer (--max-steps), with more seeds (--seeds) or a larger --lr, and "
              "look at convergence.png")
    import shutil

    shutil.rmtree(folder / "resume", ignore_errors=True)
    return 0


def cmd_eval_encoder(args) -> int:
    from methods.gradiend.workflow import step_encoder

    folder = Path(args.dir)
    _, settings, data, engine, gradiend = _engine(folder, args)
    metrics = step_encoder(engine, settings, data, gradiend, folder, progress=True)
    print(json.dumps(metrics, indent=2))
    return 0


def cmd_eval_decoder(args) -> int:
    from methods.gradiend.workflow import step_decoder

    folder = Path(args.dir)
    _, settings, data, engine, gradiend = _engine(folder, args)
    if args.grid:
        settings = replace(settings, grid=args.grid)
    selection = step_decoder(engine, settings, data, gradiend, folder, progress=True)
    for rule in ("product", "lms-threshold"):
        for metric, c in selection[rule].items():
            print(f"{rule:14s} {metric}: h*={c['h']:+g} alpha={c['alpha']:+g} {metric}={c['value']:.4f} "
                  f"(base {c['base_value']:.4f}) lms={c['lms']:.4f} (base {c['base_lms']:.4f})")
    return 0


def cmd_rewrite(args) -> int:
    from methods.gradiend.rewrite import rewrite
    from methods.gradiend.workflow import load_trained

    folder = Path(args.dir)
    model_spec, _ = _settings(folder)
    if (args.h is None) != (args.alpha is None):
        raise HarnessError("rewrite needs both --h and --alpha (or neither, to use the selection)",
                           "pass e.g. --h -1 --alpha 0.01, or --metric bpi")
    if args.h is not None:
        chosen = {"h": args.h, "alpha": args.alpha}
    else:
        selection_path = folder / "selection.json"
        if not selection_path.is_file():
            raise HarnessError(f"{folder} has no selection.json",
                               "run `gradiend-bench gradiend eval-decoder` first, or pass --h and --alpha")
        chosen = json.loads(selection_path.read_text())[args.rule][args.metric]
    gradiend, param_map = load_trained(folder)
    out = rewrite(_load_model(model_spec, args), param_map, gradiend.decode(chosen["h"], 0), chosen["alpha"])
    out.save_pretrained(args.out)
    print(f"W + {chosen['alpha']:g}·dec({chosen['h']:g}) saved to {args.out} "
          "(loads with load_model or from_pretrained)")
    return 0


def cmd_compare(args) -> int:
    from methods.gradiend.comparison import Run, compare_runs, format_stability, write_comparison

    if args.labels and len(args.labels) != len(args.dirs):
        raise HarnessError(f"{len(args.labels)} labels for {len(args.dirs)} runs", "give one --labels entry per run")
    runs = [Run.load(Path(d), args.labels[i] if args.labels else None) for i, d in enumerate(args.dirs)]
    result = compare_runs(runs, args.top_k, args.importance)
    width = max(len(label) for label in result["labels"])
    print(f"top-{args.top_k} overlap |A∩B|/k by {args.importance}")
    for label, row in zip(result["labels"], result["overlap"]):
        print(f"{label:{width}s} " + " ".join(f"{v:.3f}" for v in row))
    for label, s in result["seed_stability"].items():
        print(f"seed stability {label}: {format_stability(s)}")
    for group, s in result["run_stability"].items():
        print(f"run stability {group}: {format_stability(s)}")
    if args.out:
        prefix = Path(args.out)
        paths = write_comparison(result, prefix.with_suffix("") if prefix.suffix in (".png", ".csv", ".json")
                                 else prefix)
        print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def cmd_report(args) -> int:
    from harness.atomic import write_bytes_atomic
    from methods.gradiend.report import markdown, summarise

    rows = [summarise(Path(d), args.rule) for d in args.dirs]
    text = markdown(rows)
    print(text, end="")
    if args.out:
        prefix = Path(args.out).with_suffix("")
        write_bytes_atomic(prefix.with_suffix(".md"), text.encode())
        write_json_atomic(prefix.with_suffix(".json"), rows)
        print(f"wrote {prefix.with_suffix('.md')}, {prefix.with_suffix('.json')}")
    return 0


def register(subparsers) -> None:
    group = subparsers.add_parser("gradiend", help="GRADIEND workflow: data, train, eval, rewrite, compare")
    actions = group.add_subparsers(dest="action", required=True)
    data = actions.add_parser("data", help="mine templates/names/neutral text and filter with the base model")
    data.add_argument("--model", required=True)
    data.add_argument("--dir", required=True)
    data.add_argument("--bias-type", default="gender", choices=("gender", "race", "religion"))
    data.add_argument("--feature", help="a feature spec: a shipped name (number-3sg-3pl, person, ...) or a YAML file; "
                      "replaces --bias-type")
    data.add_argument("--pair", nargs=2, type=int, default=[0, 1], help="class positions for race/religion")
    data.add_argument("--protocol", default="cpu", choices=("cpu", "full"))
    data.add_argument("--seed", type=int, default=0)
    data.add_argument("--device", default="cpu", help=DEVICE_HELP)
    data.set_defaults(func=cmd_data)
    train = actions.add_parser("train", help="train the encoder-decoder (all seeds, best kept)")
    train.add_argument("--dir", required=True)
    train.add_argument("--max-steps", type=int)
    train.add_argument("--seeds", type=int, nargs="+")
    train.add_argument("--lr", type=float)
    train.add_argument("--pre-prune", type=float, help="fraction of weights kept by |mean ∇±W|")
    train.add_argument("--post-prune", type=float, help="fraction kept by |W_d| after training")
    train.add_argument("--bf16", action="store_true")
    train.add_argument("--convergence", choices=("reference", "iclr"), help="convergence rule (default reference)")
    train.add_argument("--min-convergent-seeds", type=int, help="stop once this many seeds converged (default 1)")
    train.add_argument("--device", default="cpu", help=DEVICE_HELP)
    train.set_defaults(func=cmd_train)
    for name, func, text in (("eval-encoder", cmd_eval_encoder, "encoder metrics and distribution plot (test split)"),
                             ("eval-decoder", cmd_eval_decoder, "h* x alpha grid, heatmap and selection")):
        p = actions.add_parser(name, help=text)
        p.add_argument("--dir", required=True)
        if name == "eval-decoder":
            p.add_argument("--grid", choices=("paper", "package"), help="default: the protocol's (paper, 240)")
        p.add_argument("--device", default="cpu", help=DEVICE_HELP)
        p.set_defaults(func=func)
    rw = actions.add_parser("rewrite", help="save the selected rewrite with save_pretrained")
    rw.add_argument("--dir", required=True)
    rw.add_argument("--metric", default="bpi", choices=("bpi", "fpi", "mpi"))
    rw.add_argument("--rule", default="product", choices=("product", "lms-threshold"))
    rw.add_argument("--h", type=float, help="an explicit feature value h* (with --alpha): any candidate")
    rw.add_argument("--alpha", type=float, help="an explicit step size α (with --h)")
    rw.add_argument("--out", required=True)
    rw.add_argument("--device", default="cpu", help=DEVICE_HELP)
    rw.set_defaults(func=cmd_rewrite)
    cmp = actions.add_parser("compare", help="top-k decoder weight overlap between any number of runs")
    cmp.add_argument("dirs", nargs="+", help="GRADIEND folders (features, seeds, models of one architecture)")
    cmp.add_argument("--top-k", type=int, default=1000)
    cmp.add_argument("--labels", nargs="+", help="one name per run (default: feature/model/seed)")
    cmp.add_argument("--importance", default="change", choices=("change", "weight"),
                     help="change: |W_d − W_d⁰|, what training learned (default); weight: |W_d|, the package's")
    cmp.add_argument("--out", help="PREFIX: writes PREFIX.csv (matrix), PREFIX.json (with the runs' identities and "
                     "seed stability) and PREFIX.png (heatmap)")
    cmp.set_defaults(func=cmd_compare)
    rep = actions.add_parser("report", help="encoder r, class means and the decoder's effect per run (Markdown)")
    rep.add_argument("dirs", nargs="+", help="evaluated GRADIEND folders")
    rep.add_argument("--rule", default="product", choices=("product", "lms-threshold"))
    rep.add_argument("--out", help="PREFIX: writes PREFIX.md and PREFIX.json")
    rep.set_defaults(func=cmd_report)
