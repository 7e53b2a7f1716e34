"""Render a :class:`~leaderboard.ranking.Leaderboard` as Markdown, CSV, LaTeX (booktabs) or plain text.

Every renderer is a pure function of the leaderboard: no timestamps, fixed float formatting, so identical
records give byte-identical files. A cell built on a GRADIEND that did not converge carries
:data:`~leaderboard.flags.MARK` (in LaTeX a superscript dagger), and then, and only then, the table gets the
footnote; the CSV keeps its numbers and lists such cells' column names in its last column, ``unconverged``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from leaderboard.flags import FOOTNOTE, FOOTNOTE_LATEX, MARK
from leaderboard.ranking import NA, Leaderboard, Row

DASH = "–"  # not applicable (the paper's dash)
MINUS = "−"  # typographic minus for signed differences
CHECK, CROSS = "✓", "✗"


@dataclass(frozen=True)
class Column:
    """One displayed column: ``kind`` is flag, rank, mean, delta or raw; ``key`` names the metric."""

    kind: str
    key: str
    label: str


def columns(board: Leaderboard) -> list[Column]:
    cols = [Column("flag", "weight", "ΔW"), Column("flag", "post", "PP"), Column("mean", "mean", "Mean ↑")]
    cols += [Column("rank", c.key, c.label) for c in board.bias_columns]
    for c in board.quality_columns:
        cols += [Column("delta", c.key, f"{c.label} (Δ)"), Column("raw", c.key, c.label)]
    return cols


def column_id(col: Column) -> str:
    """The CSV column name, HTML sort key and :attr:`Row.unconverged` id of a displayed column."""
    return f"{col.key}_delta" if col.kind == "delta" else col.key


def value(row: Row, col: Column) -> float | bool | str | None:
    """The raw cell: a number, a flag, ``NA`` or ``None`` (not run)."""
    if col.kind == "flag":
        return row.weight if col.key == "weight" else row.post
    if col.kind == "mean":
        return row.mean
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
    """Whether the cell shows a number built on an unconverged GRADIEND (flags and dashes are never marked)."""
    return column_id(col) in row.unconverged and isinstance(value(row, col), float)


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


def cell_text(cell, col: Column, arrows: bool = True) -> str:
    if cell is None:
        return ""
    if cell == NA:
        return DASH
    if col.kind == "flag":
        return CHECK if cell else CROSS
    if col.kind == "delta":
        text = fmt_number(cell, signed=True)
        if arrows and float(f"{cell:.2f}") != 0:
            text += " ↑" if cell > 0 else " ↓"
        return text
    return fmt_number(cell)


def best_rows(board: Leaderboard, col: Column) -> set[str]:
    """Variants holding the column's best displayed value (highest; ties all count)."""
    if col.kind == "flag":
        return set()
    shown = {r.variant: fmt_number(v) for r in board.rows if isinstance(v := value(r, col), float)}
    if not shown:
        return set()
    top = max(float(t.replace(MINUS, "-")) for t in shown.values())
    return {v for v, t in shown.items() if float(t.replace(MINUS, "-")) == top}


def notes(board: Leaderboard) -> str:
    models = ", ".join(f"`{m}`" for m in board.models) or "(none)"
    labels = [c.label for c in board.bias_columns]
    bias = " and ".join([", ".join(labels[:-1]), labels[-1]] if len(labels) > 1 else labels)
    seeds = max(board.seeds.values(), default=1)
    protocols = ("Protocol: " + next(iter(board.protocols)) + ". " if len(board.protocols) == 1 else
                 "Protocols: " + "; ".join(f"{p} ({', '.join(b)})" for p, b in board.protocols.items()) + ". ")
    return (f"Bias type `{board.bias_type}`, {len(board.models)} model(s): {models}. {bias}: proportional ranks "
            "(1 = least biased, 0 = most biased; per model, then averaged); Mean ↑ = mean over the bias columns. "
            "LMS/GLUE/SuperGLUE: score averaged over the models where the variant has it; (Δ) = mean signed change "
            "from the base model over those same models, so it can differ from the difference of the shown "
            "averages when model sets differ. ΔW = changes weights, PP = post-processing; – = not applicable; "
            "an empty cell = not run. "
            + protocols + (f"Scores averaged over up to {seeds} seeds per model before ranking." if seeds > 1
                           else "One seed per model."))


def to_rows(board: Leaderboard, arrows: bool = True) -> tuple[list[str], list[list[str]]]:
    cols = columns(board)
    headers = ["Variant", *(c.label for c in cols)]
    return headers, [[r.name, *(cell_text(value(r, c), c, arrows) + (f" {MARK}" if marked(r, c) else "")
                                for c in cols)] for r in board.rows]


def to_markdown(board: Leaderboard, per_model: str | None = None, per_model_marked: bool = False) -> str:
    """``per_model_marked``: the per-model table carries the mark (it may cover metrics the board does not)."""
    from tabulate import tabulate

    headers, rows = to_rows(board)
    text = tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True) + "\n\n" + notes(board) + "\n"
    if any_marked(board) or (per_model and per_model_marked):
        text += "\n" + footnote() + "\n"
    if per_model:
        text += "\n### Scores per model\n\n" + per_model + "\n"
    return text


def to_text(board: Leaderboard) -> str:
    from tabulate import tabulate

    headers, rows = to_rows(board)
    text = tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True) + "\n"
    return text + ("\n" + footnote() + "\n" if any_marked(board) else "")


CSV_NA = "NA"  # pandas reads it as missing; an empty field means "not run"


def to_csv(board: Leaderboard) -> str:
    """Machine-readable: full-precision numbers (6 decimals), flags as 1/0, ``NA`` = not applicable; ``unconverged``:
    the row's column names (``;``-separated, in column order) whose numbers are built on an unconverged GRADIEND."""
    cols = columns(board)
    names = ["variant", "name"] + [column_id(c) for c in cols] + ["models", "unconverged"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(names)
    for r in board.rows:
        out = [r.variant, r.name]
        for c in cols:
            v = value(r, c)
            out.append(CSV_NA if v == NA else "" if v is None else str(int(v)) if isinstance(v, bool)
                       else f"{v:.6f}")
        out.append(len({m for ms in r.models.values() for m in ms}))
        out.append(";".join(column_id(c) for c in cols if marked(r, c)))
        writer.writerow(out)
    return buf.getvalue()


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)


def to_latex(board: Leaderboard) -> str:
    """A booktabs ``tabular`` ready to ``\\input``; best value per column in bold."""
    cols = columns(board)
    n_bias = 1 + len(board.bias_columns)
    n_quality = 2 * len(board.quality_columns)
    labels = {"ΔW": r"$\Delta$W", "Mean ↑": r"Mean $\uparrow$"}
    head = [labels.get(c.label, latex_escape(c.label).replace("(Δ)", r"($\Delta$)")) for c in cols]
    best = {c: best_rows(board, c) for c in cols}
    lines = [
        "% Generated by `gradiend-bench leaderboard --format latex` from run records; do not edit by hand.",
        r"% Needs \usepackage{booktabs} and \usepackage{amssymb} (for \checkmark).",
        r"\begin{tabular}{lcc" + "r" * n_bias + "r" * n_quality + "}",
        r"\toprule",
        " & & & " + rf"\multicolumn{{{n_bias}}}{{c}}{{Prop. Rank Bias}}"
        + (rf" & \multicolumn{{{n_quality}}}{{c}}{{Language Modeling}}" if n_quality else "") + r" \\",
        rf"\cmidrule(lr){{4-{3 + n_bias}}}"
        + (rf" \cmidrule(lr){{{4 + n_bias}-{3 + n_bias + n_quality}}}" if n_quality else ""),
        "Variant & " + " & ".join(head) + r" \\",
        r"\midrule",
    ]
    for r in board.rows:
        cells = [latex_escape(r.name)]
        for c in cols:
            v = value(r, c)
            if v is None:
                text = ""
            elif v == NA:
                text = "--"
            elif c.kind == "flag":
                text = r"\checkmark" if v else r"$\times$"
            else:
                text = fmt_number(v, signed=c.kind == "delta", minus="$-$")
                if r.variant in best[c]:
                    text = rf"\textbf{{{text}}}"
                if marked(r, c):
                    text += r"$^\dagger$"
            cells.append(text)
        lines.append(" & ".join(cells) + r" \\")
    lines.append(r"\bottomrule")
    if any_marked(board):  # footnote rows inside the tabular, so that \resizebox{...}{\input{...}} keeps it
        first, second = FOOTNOTE_LATEX  # two lines: one would make the table wider than its columns
        lines += [rf"\multicolumn{{{1 + len(cols)}}}{{l}}{{\footnotesize {part}}} \\"
                  for part in (rf"$^\dagger$ {first}", f"{second}.")]
    lines.append(r"\end{tabular}")
    return "\n".join(lines) + "\n"
