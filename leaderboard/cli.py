"""`gradiend-bench leaderboard`: registered into the harness CLI through an entry point."""

from __future__ import annotations

from pathlib import Path

from harness.atomic import write_text_atomic


def cmd_leaderboard(args) -> int:
    from leaderboard.table import render

    text = render(args.results, args.format, all_metrics=args.all_metrics)
    if args.output:
        write_text_atomic(Path(args.output), text if text.endswith("\n") else text + "\n")
        print(f"wrote {args.output}")
    else:
        print(text)
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("leaderboard", help="tabulate run records")
    parser.add_argument("--results", default="results/runs", help="records folder (default results/runs)")
    parser.add_argument("--format", choices=["markdown", "csv", "text"], default="markdown")
    parser.add_argument("-o", "--output", help="write to this file instead of stdout")
    parser.add_argument("--all-metrics", action="store_true", help="every metric, not only each benchmark's headline ones")
    parser.set_defaults(func=cmd_leaderboard)
