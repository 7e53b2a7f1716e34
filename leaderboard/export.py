"""Render a :class:`~leaderboard.ranking.Leaderboard` as Markdown, CSV, LaTeX (booktabs) or plain text.

Every renderer is a pure function of the leaderboard: no timestamps, fixed float formatting, so identical
records give byte-identical files. A cell built on a GRADIEND that did not converge carries
:data:`~leaderboard.flags.MARK` (in LaTeX a superscript dagger), and then, and only then, the table gets the
footnote; the CSV keeps its numbers and lists such cells' column names in its column ``unconverged``.

When the board carries bootstrap intervals (``board.replicates`` set, :mod:`leaderboard.bootstrap`), cells read
``0.72 [0.55, 0.86]``, a ``P(>base)`` column follows (3 decimals: the thresholds 0.025 and 0.975 have three),
names of variants not distinguishable from the base model get :data:`SAME` and those whose verdict is borderline
(P(>base) within the Monte-Carlo guard band of a threshold) get :data:`BORDERLINE`; the notes state the rule,
the replicate counts and the largest Monte-Carlo standard error of a shown P(>base). The CSV gains
``<column>_lo``/``<column>_hi`` after every numeric column plus ``p_better_than_base``,
``distinguishable_from_base``, ``p_better_mc_se``, ``p_better_replicates`` and ``verdict`` at the end (LaTeX
only with ``intervals=True``). Without intervals every export is as it was before intervals existed.

Quality cells whose records carry a floor (GLUE/SuperGLUE: what a constant answer scores, averaged over the same
models) read ``49.35 (floor 36.97)`` in Markdown, text and HTML, and the CSV gains ``<column>_floor`` after the
column where any row has one; LaTeX shows no floors. Where a GLUE/SuperGLUE column comes from the cheap ``probe``
protocol, every format says so (notes, legend or footnote row).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass

from leaderboard.flags import FOOTNOTE, FOOTNOTE_LATEX, MARK
from leaderboard.ranking import NA, Leaderboard, Row, display_name

DASH = "–"  # not applicable (the paper's dash)
MINUS = "−"  # typographic minus for signed differences
CHECK, CROSS = "✓", "✗"
SAME = "≈"  # after a variant's name: its Mean is not distinguishable from the base model's
BORDERLINE = "?"  # after a variant's name: P(>base) lies within the Monte-Carlo guard band of a threshold
P_BETTER = "P(>base)"
P_DIGITS = 3  # decimals of a shown P(>base)
PER_MODEL_HEADING = "### Scores per model"  # the Markdown section after the board


@dataclass(frozen=True)
class Column:
    """One displayed column: ``kind`` is flag, rank, mean, delta, raw or p (P(>base)); ``key`` names the metric."""

    kind: str
    key: str
    label: str


def columns(board: Leaderboard) -> list[Column]:
    cols = [Column("flag", "weight", "ΔW"), Column("flag", "post", "PP"), Column("mean", "mean", "Mean ↑")]
    cols += [Column("rank", c.key, c.label) for c in board.bias_columns]
    for c in board.quality_columns:
        cols += [Column("delta", c.key, f"{c.label} (Δ)"), Column("raw", c.key, c.label)]
    if has_intervals(board):
        cols.append(Column("p", "p_better", P_BETTER))
    return cols


def has_intervals(board: Leaderboard) -> bool:
    return board.replicates is not None


def column_id(col: Column) -> str:
    """The CSV column name, HTML sort key and :attr:`Row.unconverged` id of a displayed column."""
    return f"{col.key}_delta" if col.kind == "delta" else col.key


def value(row: Row, col: Column) -> float | bool | str | None:
    """The raw cell: a number, a flag, ``NA`` or ``None`` (not run)."""
    if col.kind == "flag":
        return row.weight if col.key == "weight" else row.post
    if col.kind == "mean":
        return row.mean
    if col.kind == "p":
        return row.p_better
    if col.kind == "rank":
        return row.bias[col.key]
    if col.kind == "raw":
        return row.quality[col.key]
    # delta: not applicable where the raw score is, and for the base model itself
    raw = row.quality[col.key]
    if raw == NA or row.variant == "base":
        return NA
    return row.delta[col.key]


def marked(row: Row, col: Column) -> bool:
    """Whether the cell shows a number built on an unconverged GRADIEND (flags and dashes are never marked);
    P(>base) is built on the Mean."""
    return ("mean" if col.kind == "p" else column_id(col)) in row.unconverged and isinstance(value(row, col), float)


def interval(board: Leaderboard, row: Row, col: Column) -> tuple[float, float] | None:
    """The cell's bootstrap interval, where the board has intervals and the cell shows a number."""
    if not has_intervals(board) or col.kind in ("flag", "p") or not isinstance(value(row, col), float):
        return None
    return row.intervals.get(column_id(col))


def indistinct(board: Leaderboard, row: Row) -> bool:
    """Whether the row's Mean is *not* distinguishable from the base model's (False where unknown)."""
    return has_intervals(board) and row.distinguishable(board.confidence) is False


def borderline(board: Leaderboard, row: Row) -> bool:
    """Whether the row's verdict is borderline: P(>base) too close to a threshold to call (see
    :class:`leaderboard.bootstrap.VerdictRule`)."""
    return has_intervals(board) and row.verdict == "borderline"


def name_text(board: Leaderboard, row: Row) -> str:
    if indistinct(board, row):
        return f"{row.name} {SAME}"
    return f"{row.name} {BORDERLINE}" if borderline(board, row) else row.name


def any_marked(board: Leaderboard) -> bool:
    """Whether some cell of the leaderboard table is marked (then, and only then, it gets the footnote)."""
    return any(marked(r, c) for r in board.rows for c in columns(board))


def footnote() -> str:
    return f"{MARK} {FOOTNOTE}."


def fmt_number(x: float, digits: int = 2, signed: bool = False, minus: str = MINUS) -> str:
    text = f"{x:.{digits}f}"
    if float(text) == 0:
        text = f"{0:.{digits}f}"  # no "-0.00"
    if text.startswith("-"):
        return minus + text[1:]
    return ("+" + text) if signed else text


def interval_text(bounds: tuple[float, float], signed: bool = False, minus: str = MINUS) -> str:
    """``[0.55, 0.86]``; signed (for Δ columns): ``[−1.10, +1.20]``."""
    return "[" + ", ".join(fmt_number(b, signed=signed, minus=minus) for b in bounds) + "]"


def cell_text(cell, col: Column, arrows: bool = True, bounds: tuple[float, float] | None = None) -> str:
    """The shown cell; ``bounds``: its interval, written after the number (and before a Δ's arrow)."""
    if cell is None:
        return ""
    if cell == NA:
        return DASH
    if col.kind == "flag":
        return CHECK if cell else CROSS
    text = fmt_number(cell, digits=P_DIGITS if col.kind == "p" else 2, signed=col.kind == "delta")
    if bounds is not None:
        text += " " + interval_text(bounds, signed=col.kind == "delta")
    if col.kind == "delta" and arrows and float(f"{cell:.2f}") != 0:
        text += " ↑" if cell > 0 else " ↓"
    return text


PROBE_LABEL = ("a cheap stand-in: a linear probe on frozen features, not the paper's fine-tuning or zero-shot "
               "protocol and not comparable with published numbers")


def floor(row: Row, col: Column) -> float | None:
    """The floor shown beside a raw quality cell (None: the cell has no number or its records no floor)."""
    return row.floors.get(col.key) if col.kind == "raw" and isinstance(value(row, col), float) else None


def floor_text(row: Row, col: Column) -> str:
    found = floor(row, col)
    return "" if found is None else f" (floor {fmt_number(found)})"


def floored(board: Leaderboard) -> list[Column]:
    """The raw quality columns some row shows a floor for."""
    return [c for c in columns(board) if any(floor(r, c) is not None for r in board.rows)]


def best_rows(board: Leaderboard, col: Column) -> set[str]:
    """Variants holding the column's best displayed value (highest; ties all count)."""
    if col.kind in ("flag", "p"):
        return set()
    shown = {r.variant: fmt_number(v) for r in board.rows if isinstance(v := value(r, col), float)}
    if not shown:
        return set()
    top = max(float(t.replace(MINUS, "-")) for t in shown.values())
    return {v for v, t in shown.items() if float(t.replace(MINUS, "-")) == top}


def notes(board: Leaderboard) -> str:
    models = ", ".join(f"`{m}`" for m in board.models) or "(none)"
    labels = [c.label for c in board.bias_columns]
    bias = spoken_list(labels)
    protocols = ("Protocol: " + next(iter(board.protocols)) + ". " if len(board.protocols) == 1 else
                 "Protocols: " + "; ".join(f"{p} ({', '.join(b)})" for p, b in board.protocols.items()) + ". ")
    return (f"Bias type `{board.bias_type}`, {len(board.models)} model(s): {models}. {bias}: proportional ranks "
            "(1 = least biased, 0 = most biased; per model, then averaged); Mean ↑ = mean over the bias columns. "
            "LMS/GLUE/SuperGLUE: score averaged over the models where the variant has it; (Δ) = mean signed change "
            "from the base model over those same models, so it can differ from the difference of the shown "
            "averages when model sets differ. ΔW = changes weights, PP = post-processing; – = not applicable; "
            "an empty cell = not run. "
            + protocols + protocol_notes(board)
            + seed_notes(board) + floor_notes(board) + interval_notes(board))


def spoken_list(items) -> str:
    """'A', 'A and B', 'A, B and C'."""
    items = list(items)
    return " and ".join([", ".join(items[:-1]), items[-1]] if len(items) > 1 else items)


def seed_notes(board: Leaderboard) -> str:
    """How many seeds each model's cells average, and which cells have fewer than their variant's others on
    that model (a config's ``fewer_seeds``, or an unfinished grid)."""
    most = {m: max((c.seeds for (cm, _, _), c in board.scores.items() if cm == m), default=1) for m in board.models}
    if max(most.values(), default=1) <= 1:
        return "One seed per model."
    if len(set(most.values())) == 1:
        text = f"Scores averaged over up to {next(iter(most.values()))} seeds per model before ranking."
    else:
        text = ("Scores averaged over the seeds each cell has before ranking: "
                + ", ".join(f"up to {n} on `{m}`" if n > 1 else f"1 on `{m}`" for m, n in most.items()) + ".")
    labels = {c.key: c.label for c in [*board.bias_columns, *board.quality_columns]}
    groups: dict[tuple[str, int, tuple[str, ...]], list[str]] = {}
    for model in board.models:
        for variant in board.order or sorted({v for _, v, _ in board.scores}):
            cells = {k: c for (m, v, k), c in board.scores.items() if (m, v) == (model, variant)}
            top = max((c.seeds for c in cells.values()), default=0)
            fewer = [k for k in labels if k in cells and cells[k].seeds < top]
            if fewer:
                n = min(cells[k].seeds for k in fewer)
                groups.setdefault((model, n, tuple(labels[k] for k in fewer)), []).append(display_name(variant))
    for (model, n, cols), variants in groups.items():
        text += (f" {spoken_list(cols)} of "
                 f"{', '.join(variants)} on `{model}`: {n} seed{'s' if n > 1 else ''} only.")
    return text


def protocol_notes(board: Leaderboard) -> str:
    """Labels the cheap GLUE/SuperGLUE probe wherever a table shows it (empty otherwise)."""
    if "probe" not in board.protocols:
        return ""
    return f"probe = {PROBE_LABEL}. "


def floor_notes(board: Leaderboard) -> str:
    labels = [c.label for c in floored(board)]
    if not labels:
        return ""
    return (f" (floor x) after {', '.join(labels)}: the same mean over the records' tasks of what a constant answer "
            "scores (majority class; 0 for MCC and Pearson), so a score near it is at chance.")


def interval_notes(board: Leaderboard) -> str:
    """What the brackets, P(>base), its Monte-Carlo error and the marks mean (empty without intervals)."""
    if not has_intervals(board):
        return ""
    from leaderboard.compare import resampled_metrics

    text = (f" [low, high] = {board.confidence:.0%} percentile interval over {board.replicates} paired-bootstrap "
            "replicates (per model, the examples are resampled once and shared by all variants; a variant's seeds "
            "are resampled within it), in which ranks and Mean are recomputed; "
            f"{P_BETTER} = share of replicates in which the variant's Mean is above the base model's (ties count "
            f"half), {verdict_notes(board)}")
    if board.rank_input == "bootstrap-mean":
        text += " Ranks are computed from the mean of each score's replicates, not from its point estimate."
    resampled = resampled_metrics()
    own = [c.label for c in board.quality_columns if c.key not in resampled
           and any(c.key in r.intervals for r in board.rows)]
    if own:
        text += (f" {', '.join(own)}: the records' own CIs averaged over models (no per-example scores to "
                 "resample).")
    return text


def _verdict_numbers(board: Leaderboard) -> dict:
    """The replicate counts, guard band and bounds behind the verdicts (a board built without the adaptive
    stage, e.g. by hand: the replicates of the intervals and no guard band)."""
    drawn = board.p_replicates or board.replicates
    z = board.guard_z or 0.0
    low, high = (1 - board.confidence) / 2, 1 - (1 - board.confidence) / 2
    se_t = math.sqrt(low * (1 - low) / drawn)
    band = z * se_t
    shown = [r.p_se if r.p_se is not None else math.sqrt(r.p_better * (1 - r.p_better) / drawn)
             for r in board.rows if r.p_better is not None]
    return dict(first=board.replicates, drawn=drawn, most=board.max_replicates or drawn, z=z, low=low, high=high,
                se_t=se_t, band=band, se_max=max(shown, default=0.0))


def _g(x: float) -> str:
    """A probability bound: 4 decimals, trailing zeros dropped (0.025, 0.9781)."""
    return f"{x:.4f}".rstrip("0").rstrip(".")


def _se(x: float) -> str:
    """A standard error to two significant digits (0.00062, 0.0020; 0 as 0)."""
    return "0" if x <= 0 else f"{x:.{max(0, 1 - math.floor(math.log10(x)))}f}"


def verdict_notes(board: Leaderboard) -> str:
    """How many replicates P(>base) rests on, its Monte-Carlo error, and what ≈, ? and no mark mean."""
    n = _verdict_numbers(board)
    low, high, band, z = n["low"], n["high"], n["band"], n["z"]
    if n["most"] > n["first"]:
        drawn = (f"over {n['drawn']} replicates (the first {n['first']}, doubled while some variant's {P_BETTER} "
                 f"lay within {z:g} Monte-Carlo standard errors of {_g(low)} or {_g(high)}, at most {n['most']})")
    else:
        drawn = f"over the same {n['drawn']} replicates"
    text = (f"{drawn}; its Monte-Carlo standard error sqrt(P(1 − P)/B) is at most {_se(n['se_max'])} here "
            f"({_se(n['se_t'])} at a threshold). ")
    if z:
        text += (f"Verdicts against the base model, with a guard band of {z:g} × {_se(n['se_t'])} = {band:.4f}: "
                 f"no mark = distinguishable ({P_BETTER} ≥ {_g(high + band)} or ≤ {_g(low - band)}); {SAME} after a "
                 f"name = not distinguishable ({P_BETTER} between {_g(low + band)} and {_g(high - band)}); "
                 f"{BORDERLINE} = borderline: {P_BETTER} within the guard band of {_g(low)} or {_g(high)}, too close "
                 "to the threshold to call at this Monte-Carlo precision (such a verdict would depend on the "
                 "bootstrap seed).")
    else:
        text += (f"{SAME} after a name = not distinguishable from the base model ({P_BETTER} between {_g(low)} and "
                 f"{_g(high)}; no Monte-Carlo guard band).")
    return text


def to_rows(board: Leaderboard, arrows: bool = True) -> tuple[list[str], list[list[str]]]:
    cols = columns(board)
    headers = ["Variant", *(c.label for c in cols)]
    return headers, [[name_text(board, r), *(cell_text(value(r, c), c, arrows, interval(board, r, c))
                                             + floor_text(r, c) + (f" {MARK}" if marked(r, c) else "")
                                             for c in cols)]
                     for r in board.rows]


def to_markdown(board: Leaderboard, per_model: str | None = None, per_model_marked: bool = False) -> str:
    """``per_model_marked``: the per-model table carries the mark (it may cover metrics the board does not)."""
    from tabulate import tabulate

    headers, rows = to_rows(board)
    text = tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True) + "\n\n" + notes(board) + "\n"
    if any_marked(board) or (per_model and per_model_marked):
        text += "\n" + footnote() + "\n"
    if per_model:
        text += f"\n{PER_MODEL_HEADING}\n\n{per_model}\n"
    return text


def to_text(board: Leaderboard) -> str:
    from tabulate import tabulate

    headers, rows = to_rows(board)
    text = tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True) + "\n"
    legend = (["(floor x): what a constant answer scores on the same tasks."] if floored(board) else []) + (
        [f"{', '.join(board.protocols['probe'])}: probe = {PROBE_LABEL}."] if "probe" in board.protocols else [])
    text += "".join(f"\n{line}\n" for line in legend)
    if has_intervals(board):
        n = _verdict_numbers(board)
        text += (f"\n[low, high]: {board.confidence:.0%} intervals over {board.replicates} paired-bootstrap "
                 f"replicates; {P_BETTER} over {n['drawn']} (Monte-Carlo SE ≤ {_se(n['se_max'])}); {SAME}: not "
                 f"distinguishable from the base model"
                 + (f"; {BORDERLINE}: borderline (within {n['z']:g} Monte-Carlo SE of a threshold)" if n["z"] else "")
                 + ".\n")
    return text + ("\n" + footnote() + "\n" if any_marked(board) else "")


CSV_NA = "NA"  # pandas reads it as missing; an empty field means "not run"


def _csv_number(x: float | None) -> str:
    return "" if x is None else f"{x:.6f}"


def to_csv(board: Leaderboard) -> str:
    """Machine-readable: full-precision numbers (6 decimals), flags as 1/0, ``NA`` = not applicable; ``unconverged``:
    the row's column names (``;``-separated, in column order) whose numbers are built on an unconverged GRADIEND.

    With intervals, every numeric column is followed by ``<column>_lo`` and ``<column>_hi`` (empty where the cell
    has none: the header does not depend on the data), and the row ends with ``p_better_than_base``,
    ``distinguishable_from_base`` (1/0; empty for a borderline verdict), ``p_better_mc_se`` (its Monte-Carlo
    standard error), ``p_better_replicates`` (the replicates behind it) and ``verdict`` (distinguishable,
    indistinguishable or borderline) — all empty for the base model and where there is no Mean. A quality column
    with floors (:func:`floored`) is followed by ``<column>_floor``."""
    with_bounds = has_intervals(board)
    cols = [c for c in columns(board) if c.kind != "p"]
    with_floor = floored(board)
    names = ["variant", "name"]
    for c in cols:
        names += [column_id(c)] + ([f"{column_id(c)}_lo", f"{column_id(c)}_hi"]
                                   if with_bounds and c.kind != "flag" else [])
        names += [f"{column_id(c)}_floor"] if c in with_floor else []
    names += ["models", "unconverged"] + (["p_better_than_base", "distinguishable_from_base", "p_better_mc_se",
                                           "p_better_replicates", "verdict"] if with_bounds else [])
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(names)
    for r in board.rows:
        out = [r.variant, r.name]
        for c in cols:
            v = value(r, c)
            out.append(CSV_NA if v == NA else "" if v is None else str(int(v)) if isinstance(v, bool)
                       else f"{v:.6f}")
            if with_bounds and c.kind != "flag":
                bounds = interval(board, r, c)
                out += [_csv_number(bounds[0]), _csv_number(bounds[1])] if bounds else ["", ""]
            if c in with_floor:
                out.append(_csv_number(floor(r, c)))
        out.append(len({m for ms in r.models.values() for m in ms}))
        out.append(";".join(column_id(c) for c in cols if marked(r, c)))
        if with_bounds:
            verdict = r.distinguishable(board.confidence)
            out += [_csv_number(r.p_better), "" if verdict is None else str(int(verdict))]
            out += _csv_verdict(board, r)
        writer.writerow(out)
    return buf.getvalue()


def _csv_verdict(board: Leaderboard, row: Row) -> list[str]:
    """``p_better_mc_se``, ``p_better_replicates`` and ``verdict`` (all empty where there is no P(>base))."""
    if row.p_better is None:
        return ["", "", ""]
    n = _verdict_numbers(board)
    se = row.p_se if row.p_se is not None else math.sqrt(row.p_better * (1 - row.p_better) / n["drawn"])
    verdict = row.verdict or ("distinguishable" if row.distinguishable(board.confidence) else "indistinguishable")
    return [_csv_number(se), str(n["drawn"]), verdict]


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)


def to_latex(board: Leaderboard, intervals: bool = False) -> str:
    """A booktabs ``tabular`` ready to ``\\input``; best value per column in bold. ``intervals`` (where the board
    has them): cells ``0.72\\,[0.55, 0.86]``, a P($>$base) column, $\\approx$ after names not distinguishable from
    the base model, and footnote rows saying what they mean."""
    show = intervals and has_intervals(board)
    cols = [c for c in columns(board) if show or c.kind != "p"]
    n_bias = 1 + len(board.bias_columns)
    n_quality = 2 * len(board.quality_columns)
    labels = {"ΔW": r"$\Delta$W", "Mean ↑": r"Mean $\uparrow$", P_BETTER: r"P($>$base)"}
    head = [labels.get(c.label, latex_escape(c.label).replace("(Δ)", r"($\Delta$)")) for c in cols]
    best = {c: best_rows(board, c) for c in cols}
    lines = [
        "% Generated by `gradiend-bench leaderboard --format latex` from run records; do not edit by hand.",
        r"% Needs \usepackage{booktabs} and \usepackage{amssymb} (for \checkmark).",
        r"\begin{tabular}{lcc" + "r" * n_bias + "r" * n_quality + ("r" if show else "") + "}",
        r"\toprule",
        " & & & " + rf"\multicolumn{{{n_bias}}}{{c}}{{Prop. Rank Bias}}"
        + (rf" & \multicolumn{{{n_quality}}}{{c}}{{Language Modeling}}" if n_quality else "")
        + (" &" if show else "") + r" \\",
        rf"\cmidrule(lr){{4-{3 + n_bias}}}"
        + (rf" \cmidrule(lr){{{4 + n_bias}-{3 + n_bias + n_quality}}}" if n_quality else ""),
        "Variant & " + " & ".join(head) + r" \\",
        r"\midrule",
    ]
    for r in board.rows:
        cells = [latex_escape(r.name) + (r" $\approx$" if show and indistinct(board, r) else "")
                 + (f" {BORDERLINE}" if show and borderline(board, r) else "")]
        for c in cols:
            v = value(r, c)
            if v is None:
                text = ""
            elif v == NA:
                text = "--"
            elif c.kind == "flag":
                text = r"\checkmark" if v else r"$\times$"
            else:
                text = fmt_number(v, digits=P_DIGITS if c.kind == "p" else 2, signed=c.kind == "delta", minus="$-$")
                if r.variant in best[c]:
                    text = rf"\textbf{{{text}}}"
                if show and (bounds := interval(board, r, c)) is not None:
                    text += r"\," + interval_text(bounds, signed=c.kind == "delta", minus="$-$")
                if marked(r, c):
                    text += r"$^\dagger$"
            cells.append(text)
        lines.append(" & ".join(cells) + r" \\")
    lines.append(r"\bottomrule")
    # footnote rows inside the tabular, so that \resizebox{...}{\input{...}} keeps them; several short rows,
    # because one long row would make the table wider than its columns
    notes_rows = list(_latex_interval_notes(board)) if show else []
    if "probe" in board.protocols:
        notes_rows += [f"{', '.join(board.protocols['probe'])}: probe, a cheap stand-in (linear probe on frozen "
                       "features), not the paper's protocol."]
    if any_marked(board):
        first, second = FOOTNOTE_LATEX
        notes_rows += [rf"$^\dagger$ {first}", f"{second}."]
    lines += [rf"\multicolumn{{{1 + len(cols)}}}{{l}}{{\footnotesize {part}}} \\" for part in notes_rows]
    lines.append(r"\end{tabular}")
    return "\n".join(lines) + "\n"


def _latex_interval_notes(board: Leaderboard) -> list[str]:
    n = _verdict_numbers(board)
    low, high, band = n["low"], n["high"], n["band"]
    error = rf"Monte-Carlo SE $\sqrt{{P(1-P)/B}}$ $\leq$ {_se(n['se_max'])} ({_se(n['se_t'])} at a threshold)."
    rows = [rf"[low, high]: {board.confidence * 100:.0f}\% percentile intervals over {board.replicates} "
            "paired-bootstrap replicates (per model, examples resampled once",
            "and shared by all variants; a variant's seeds resampled within it), ranks and Mean recomputed in each.",
            r"P($>$base): share of replicates in which the variant's Mean is above the base model's, over "
            f"{n['drawn']} replicates"]
    if n["most"] > n["first"]:
        rows.append(f"(the first {n['first']}, doubled while a verdict was borderline, at most {n['most']}); "
                    + error)
    else:
        rows[-1] += "; " + error
    if n["z"]:
        rows += [r"No mark: distinguishable from the base model (P($>$base) $\geq$ "
                 rf"{_g(high + band)} or $\leq$ {_g(low - band)}: a guard band of {n['z']:g} SE = {band:.4f});",
                 rf"$\approx$: not distinguishable (between {_g(low + band)} and {_g(high - band)}); "
                 f"{BORDERLINE}: borderline, within the guard band of {_g(low)} or {_g(high)}."]
    else:
        rows.append(rf"$\approx$: not distinguishable from the base model (P($>$base) between {_g(low)} and "
                    f"{_g(high)}).")
    if board.rank_input == "bootstrap-mean":
        rows.append("Ranks are computed from the mean of each score's replicates, not from its point estimate.")
    return rows
