"""Score tables from run records: one row per (model, variant), one column per benchmark metric.

Scores are averaged over seeds; a metric with a confidence interval is shown as ``value ± margin``, followed by
:data:`~leaderboard.flags.MARK` when a record that entered it is built on a GRADIEND that did not converge.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from statistics import mean

import pandas as pd

from harness.records import STATUS_NOT_APPLICABLE, RunRecord, load_records, slug
from leaderboard.flags import MARK, unconverged

NOT_APPLICABLE = "–"


def latest_records(records: list[RunRecord]) -> list[RunRecord]:
    """One record per (model, variant, benchmark, seed): the newest, when configs changed between runs."""
    latest: dict[tuple, RunRecord] = {}
    for rec in records:
        key = (rec.model, rec.variant, rec.benchmark, rec.seed)
        if key not in latest or rec.started_at >= latest[key].started_at:
            latest[key] = rec
    return [rec for rec in records if latest[(rec.model, rec.variant, rec.benchmark, rec.seed)] is rec]


def score_frame(records: list[RunRecord]) -> pd.DataFrame:
    """Long format: model, variant, benchmark, metric, seed, value, margin, protocol, unconverged (the record is
    built on a GRADIEND that did not converge)."""
    rows = []
    for rec in records:
        flag = unconverged(rec)
        if rec.status == STATUS_NOT_APPLICABLE:
            rows.append(dict(model=rec.model, variant=rec.variant, benchmark=rec.benchmark, metric=None,
                             seed=rec.seed, value=None, margin=None, protocol=rec.protocol, unconverged=flag))
        for metric, score in rec.scores.items():
            rows.append(dict(model=rec.model, variant=rec.variant, benchmark=rec.benchmark, metric=metric,
                             seed=rec.seed, value=score.value, margin=score.margin, protocol=rec.protocol,
                             unconverged=flag))
    return pd.DataFrame(rows, columns=["model", "variant", "benchmark", "metric", "seed", "value", "margin",
                                       "protocol", "unconverged"])


def headline_metrics(benchmark: str) -> tuple[str, ...]:
    """The metrics a benchmark marks for summary tables (empty: show all)."""
    from harness.errors import HarnessError
    from harness.registry import get_benchmark

    try:
        return tuple(get_benchmark(benchmark).headline)
    except HarnessError:  # records of a benchmark that is not installed here
        return ()


def summary_table(records: list[RunRecord], digits: int = 2,
                  all_metrics: bool = False) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the seed-averaged table, in first-seen model/variant order."""
    cells: dict[tuple[str, str], dict[str, list[tuple[float, float | None]]]] = defaultdict(lambda: defaultdict(list))
    columns: dict[str, None] = {}
    flagged: set[tuple[str, str, str]] = set()  # (model, variant, column) built on an unconverged GRADIEND
    for rec in records:
        key = (rec.model, rec.variant)
        cells[key]  # keep the row even when nothing applies
        flag = unconverged(rec)
        shown = () if all_metrics else headline_metrics(rec.benchmark)
        for metric, score in rec.scores.items():
            if shown and metric not in shown:
                continue
            column = f"{rec.benchmark}:{metric}"
            columns.setdefault(column, None)
            cells[key][column].append((score.value, score.margin))
            if flag:
                flagged.add((*key, column))
    bench_order = list(dict.fromkeys(c.split(":", 1)[0] for c in columns))

    def position(column: str) -> tuple[int, int, str]:
        bench, metric = column.split(":", 1)
        order = headline_metrics(bench)
        return bench_order.index(bench), order.index(metric) if metric in order else len(order), metric

    columns = dict.fromkeys(sorted(columns, key=position))
    headers = ["model", "variant", *columns]
    rows = []
    for (model, variant), by_column in cells.items():
        row = [model, variant]
        for column in columns:
            values = by_column.get(column)
            if not values:
                row.append(NOT_APPLICABLE)
                continue
            value = mean(v for v, _ in values)
            margins = [m for _, m in values if m is not None]
            row.append(f"{value:.{digits}f}" + (f" ± {mean(margins):.{digits}f}" if margins else "")
                       + (f" {MARK}" if (model, variant, column) in flagged else ""))
        rows.append(row)
    return headers, rows


FORMATS = ("markdown", "csv", "latex", "html", "text", "scores", "long-csv")
EXTENSIONS = {"csv": "csv", "markdown": "md", "latex": "tex", "html": "html"}


def requested_protocol(rec: RunRecord) -> str:
    """The protocol the grid asked for (a benchmark may record the one it actually ran, e.g. a GLUE probe)."""
    return str(rec.config.get("protocol", rec.protocol))


def grid_records(records: list[RunRecord], config: str | Path, results_dir: str | Path) -> list[RunRecord]:
    """The records of the grid ``config`` describes: those whose config hash is one of its expanded runs'."""
    from harness.config import expand, load_config
    from harness.errors import HarnessError

    grid = load_config(config)
    hashes = {spec.config_hash for spec in expand(grid)}
    chosen = [r for r in records if r.config_hash in hashes]
    if not chosen:
        raise HarnessError(f"no records of config {config} ({grid.name}) under {results_dir}",
                           f"run it first (gradiend-bench run {config} --results {results_dir}) or pass the "
                           "config of the grid that wrote the records")
    return chosen


def record_file(rec: RunRecord) -> str:
    """Where ``rec`` lies inside its results folder (as harness.records.record_path names it)."""
    return f"{slug(rec.model)}/{slug(rec.variant)}/{slug(rec.benchmark)}__seed{rec.seed}__{rec.config_hash[:12]}.json"


def check_one_config_per_cell(records: list[RunRecord], results_dir: str | Path) -> None:
    """Refuse records of several configs for one (model, variant, benchmark, seed): which of them a table or a
    comparison should use is the user's choice (``--config``), not the newest file's."""
    from harness.errors import HarnessError

    cells: dict[tuple, dict[str, RunRecord]] = defaultdict(dict)
    for rec in records:
        cells[(rec.model, rec.variant, rec.benchmark, rec.seed)].setdefault(rec.config_hash, rec)
    conflicts = [(cell, list(found.values())) for cell, found in cells.items() if len(found) > 1]
    if not conflicts:
        return
    (model, variant, benchmark, seed), clashing = conflicts[0]
    named = [f"{record_file(r)} (config {r.config.get('experiment', '?')})" for r in clashing]
    named = ", ".join(named[:-1]) + " and " + named[-1]
    more = f"; {len(conflicts) - 1} more cell(s) like it" if len(conflicts) > 1 else ""
    raise HarnessError(f"{results_dir} holds records of {len(clashing)} different configs for {model} / {variant} / "
                       f"{benchmark} / seed {seed}: {named}{more}",
                       "pass --config CONFIG to use only the records of that grid (or delete the records you no "
                       "longer want)")


def select_records(results_dir: str | Path, bias_type: str = "gender", models: list[str] | None = None,
                   protocol: str | None = None, config: str | Path | None = None) -> list[RunRecord]:
    """The records of one bias type (and requested protocol, and models, when given), one per cell: those of the
    grid ``config`` when given, else all of them, which must then hold one config per cell."""
    from harness.errors import HarnessError

    records = load_records(Path(results_dir))
    if not records:
        raise HarnessError(f"no run records under {results_dir}", "run a grid first: gradiend-bench run CONFIG")
    if config is not None:
        records = grid_records(records, config, results_dir)
    chosen = [r for r in records if r.bias_type == bias_type and (not models or r.model in models)
              and (protocol is None or requested_protocol(r) == protocol)]
    if not chosen:
        have = sorted({(r.model, r.bias_type, requested_protocol(r)) for r in records})
        raise HarnessError(f"no records for bias type '{bias_type}'" + (f", protocol '{protocol}'" if protocol else "")
                           + (f" and models {', '.join(models)}" if models else "") + f" under {results_dir}",
                           "records exist for: " + ", ".join(f"{m} ({b}, {p})" for m, b, p in have))
    check_one_config_per_cell(chosen, results_dir)
    return latest_records(chosen)  # one record per cell even where a record file was copied under another name


def check_variants(records: list[RunRecord], variants: list[str], flag: str = "--variants") -> None:
    """Every variant of a ``--variants`` order must be one the records have (a typo would silently be ignored)."""
    from harness.errors import HarnessError

    have = list(dict.fromkeys(r.variant for r in records))
    unknown = [v for v in variants if v not in have]
    if unknown:
        raise HarnessError(f"{flag} names variant(s) {', '.join(repr(v) for v in unknown)} that no selected record "
                           "has", f"use the records' variants: {', '.join(sorted(have))}")


def render(results_dir: str | Path, fmt: str = "markdown", all_metrics: bool = False, *, bias_type: str = "gender",
           models: list[str] | None = None, bias: tuple[str, ...] | None = None, order: list[str] | None = None,
           protocol: str | None = None, intervals: bool = True, replicates: int = 1000, seed: int = 0,
           rank_input: str = "point", latex_intervals: bool = False, config: str | Path | None = None,
           max_replicates: int | None = None, guard_z: float | None = None) -> str:
    """The leaderboard of the records under ``results_dir`` in one of :data:`FORMATS` (with bootstrap intervals
    unless ``intervals`` is off; see :mod:`leaderboard.bootstrap`); ``config``: only that grid's records;
    ``max_replicates``/``guard_z``: the verdict rule (default: :mod:`leaderboard.bootstrap`'s)."""
    from tabulate import tabulate

    from leaderboard import export, html
    from leaderboard.bootstrap import build_board
    from leaderboard.ranking import DEFAULT_BIAS

    records = select_records(results_dir, bias_type, models, protocol, config)
    if fmt == "long-csv":
        return score_frame(records).to_csv(index=False)
    from leaderboard.ranking import variant_order

    variants = variant_order((r.variant for r in records), order)
    model_rank = {m: i for i, m in enumerate(models or sorted({r.model for r in records}))}
    records = sorted(records, key=lambda r: (model_rank.get(r.model, len(model_rank)), r.model,
                                             variants.index(r.variant)))  # stable: benchmarks keep file order
    headers, rows = summary_table(records, all_metrics=all_metrics)
    per_model = tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
    per_model_marked = any(cell.endswith(f" {MARK}") for row in rows for cell in row[2:])
    if fmt == "scores":
        return per_model + "\n" + ("\n" + export.footnote() + "\n" if per_model_marked else "")
    verdicts = {k: v for k, v in (("max_replicates", max_replicates), ("guard_z", guard_z)) if v is not None}
    board = build_board(records, bias=bias or DEFAULT_BIAS, order=order, models=models, bias_type=bias_type,
                        intervals=intervals, replicates=replicates, seed=seed, rank_input=rank_input, **verdicts)
    if fmt == "markdown":
        return export.to_markdown(board, per_model, per_model_marked)
    if fmt == "csv":
        return export.to_csv(board)
    if fmt == "latex":
        return export.to_latex(board, intervals=latex_intervals)
    if fmt == "html":
        return html.to_html(board)
    return export.to_text(board)
