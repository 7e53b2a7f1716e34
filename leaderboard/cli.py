"""`gradiend-bench leaderboard | check | compare | plot`: registered into the harness CLI through entry points."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.atomic import write_text_atomic
from harness.errors import HarnessError


def _csv_list(text: str | None) -> list[str] | None:
    return [p.strip() for p in text.split(",") if p.strip()] if text else None


def _variant_order(args) -> list[str] | None:
    """Configured variant order: --variants, else the variants of --config, else None (base, then A–Z)."""
    if getattr(args, "variants", None):
        return _csv_list(args.variants)
    if getattr(args, "config", None):
        from harness.config import load_config

        return [v.name for v in load_config(args.config).variants]
    return None


def _write(path: Path, text: str) -> None:
    write_text_atomic(Path(path), text if text.endswith("\n") else text + "\n")
    print(f"wrote {path}")


def _add_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", default="results/runs", help="records folder (default results/runs)")
    parser.add_argument("--bias-type", default="gender", help="records of this bias type (default gender)")
    parser.add_argument("--models", nargs="+", metavar="MODEL", help="only these models (in this order)")


def cmd_leaderboard(args) -> int:
    from leaderboard.table import EXTENSIONS, render

    bias = tuple(_csv_list(args.bias) or ())
    options = dict(bias_type=args.bias_type, models=args.models, bias=bias or None, order=_variant_order(args))
    if args.output_dir:
        for fmt, ext in EXTENSIONS.items():
            _write(Path(args.output_dir) / f"leaderboard.{ext}", render(args.results, fmt, args.all_metrics, **options))
    if args.plots:
        cmd_plot(argparse.Namespace(**{**vars(args), "output": args.plots}))
    if args.output_dir or args.plots:
        if args.output:
            _write(Path(args.output), render(args.results, args.format, args.all_metrics, **options))
        return 0
    text = render(args.results, args.format, args.all_metrics, **options)
    if args.output:
        _write(Path(args.output), text)
    else:
        print(text, end="" if text.endswith("\n") else "\n")
    return 0


def cmd_plot(args) -> int:
    from leaderboard.plots import write_plots
    from leaderboard.ranking import DEFAULT_BIAS, build
    from leaderboard.table import select_records

    records = select_records(args.results, args.bias_type, args.models)
    board = build(records, bias=tuple(_csv_list(args.bias) or DEFAULT_BIAS), order=_variant_order(args),
                  models=args.models, bias_type=args.bias_type)
    written = write_plots(board, Path(args.output))
    for path in written:
        print(f"wrote {path}")
    if not written:
        print("no figures: the records have no bias or LMS scores")
    return 0


def cmd_check(args) -> int:
    from harness.records import load_records
    from leaderboard.check import compare_to_baseline, make_baseline, read_baseline, report, write_baseline
    from leaderboard.table import latest_records

    records = latest_records(load_records(Path(args.results)))
    if args.update:
        if args.config:
            from harness.config import load_config

            config = load_config(args.config)
            selection = {"models": list(config.models), "variants": [v.name for v in config.variants],
                         "benchmarks": [b.name for b in config.benchmarks], "bias_types": [config.bias_type]}
        elif Path(args.baseline).is_file():
            selection = read_baseline(Path(args.baseline)).get("selection") or {}
        else:
            selection = {}
        baseline = make_baseline(records, selection, args.tolerance)
        if not baseline["scores"]:
            raise HarnessError(f"no scores under {args.results} for the baseline's selection",
                               "run the grid first, or pass --config with the grid to record")
        write_baseline(Path(args.baseline), baseline)
        print(f"wrote {args.baseline}: {len(baseline['scores'])} score(s)")
        return 0
    baseline = read_baseline(Path(args.baseline))
    checked, findings = compare_to_baseline(baseline, records, args.tolerance)
    ok, text = report(checked, findings)
    print(text)
    return 0 if ok else 1


def cmd_compare(args) -> int:
    from harness.records import load_records
    from leaderboard.compare import compare, table, to_json
    from leaderboard.table import latest_records

    records = [r for r in latest_records(load_records(Path(args.results))) if r.bias_type == args.bias_type]
    rows = compare(records, args.a, args.b, args.metric, models=args.models, results_dir=Path(args.results),
                   resamples=args.resamples, seed=args.seed)
    print(to_json(rows) if args.json else table(rows, args.a, args.b))
    return 0


def register(subparsers) -> None:
    from leaderboard.table import FORMATS

    parser = subparsers.add_parser("leaderboard", help="the proportional-rank leaderboard of run records")
    _add_selection(parser)
    parser.add_argument("--format", choices=FORMATS, default="markdown",
                        help="markdown (with per-model scores), csv, latex, html, text; scores / long-csv: raw scores")
    parser.add_argument("-o", "--output", help="write to this file instead of stdout")
    parser.add_argument("--output-dir", help="write leaderboard.{csv,md,tex,html} into this folder")
    parser.add_argument("--plots", metavar="DIR", help="also write PNG figures into DIR")
    parser.add_argument("--bias", help="bias columns, comma-separated (default ss,seat; also crows)")
    parser.add_argument("--variants", help="configured variant order (ties rank earlier ones lower), comma-separated")
    parser.add_argument("--config", help="take the variant order from this experiment config")
    parser.add_argument("--all-metrics", action="store_true", help="per-model table: every metric, not only headline ones")
    parser.set_defaults(func=cmd_leaderboard)


def register_plot(subparsers) -> None:
    parser = subparsers.add_parser("plot", help="PNG figures: bias vs LMS per model, per-method bars with CIs")
    _add_selection(parser)
    parser.add_argument("-o", "--output", default="results/tables/figures", help="folder for the PNGs")
    parser.add_argument("--bias", help="bias columns, comma-separated (default ss,seat; also crows)")
    parser.add_argument("--variants", help="configured variant order, comma-separated")
    parser.add_argument("--config", help="take the variant order from this experiment config")
    parser.set_defaults(func=cmd_plot)


def register_check(subparsers) -> None:
    parser = subparsers.add_parser("check", help="regression check of every score against a stored baseline")
    parser.add_argument("--baseline", required=True, help="baseline JSON file")
    parser.add_argument("--results", default="results/runs", help="records folder (default results/runs)")
    parser.add_argument("--update", action="store_true", help="rewrite the baseline from the current records")
    parser.add_argument("--tolerance", type=float,
                        help="absolute tolerance (default: the baseline's 95%% CI; exact for scores without a CI)")
    parser.add_argument("--config", help="with --update: record only this experiment grid")
    parser.set_defaults(func=cmd_check)


def register_compare(subparsers) -> None:
    parser = subparsers.add_parser("compare", help="paired bootstrap comparison of two variants on the same examples")
    parser.add_argument("a", metavar="A", help="variant A, e.g. gradiend+inlp")
    parser.add_argument("b", metavar="B", help="variant B, e.g. cda+inlp")
    parser.add_argument("--metric", default="ss", help="ss, lms, icat (StereoSet) or crows (default ss)")
    _add_selection(parser)
    parser.add_argument("--model", dest="models", action="append", help="only this model (repeatable)")
    parser.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples (default 10000)")
    parser.add_argument("--seed", type=int, help="records of this seed (default: each variant's lowest seed)")
    parser.add_argument("--json", action="store_true", help="JSON output")
    parser.set_defaults(func=cmd_compare)
