"""PNG figures of a leaderboard (matplotlib, Agg backend): bias vs LMS per model, per-method bars with CIs."""

from __future__ import annotations

from pathlib import Path

from harness.records import slug
from leaderboard.ranking import Leaderboard, label_slots, pareto_front

# fixed metadata, so identical records give identical PNG bytes
_METADATA = {"Software": None}


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: Path) -> None:
    import io

    from harness.atomic import write_bytes_atomic

    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata=_METADATA)
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())


def scatter(board: Leaderboard, model: str, path: Path) -> bool:
    """|bias − ideal| (first bias column) against LMS; Pareto-front points in red, joined by a line."""
    if not board.bias_columns or not board.quality_columns:
        return False
    bias, lms = board.bias_columns[0], board.quality_columns[0]
    names = {r.variant: r.name for r in board.rows}
    points = [(v, bias.distance(board.scores[(model, v, bias.key)].value),
               board.scores[(model, v, lms.key)].value * lms.scale)
              for v in names if (model, v, bias.key) in board.scores and (model, v, lms.key) in board.scores]
    if not points:
        return False
    front = set(pareto_front(points))
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=110)
    slots = label_slots(points)
    for v, x, y in points:
        ax.scatter([x], [y], color="#c0392b" if v in front else "#7f8c8d", zorder=3)
        ax.annotate(names[v], (x, y), textcoords="offset points", xytext=(5, 4 - 10 * slots[v]), fontsize=8)
    line = sorted((p for p in points if p[0] in front), key=lambda p: p[1])
    if len(line) > 1:
        ax.plot([p[1] for p in line], [p[2] for p in line], "--", color="#c0392b", lw=1, zorder=2)
    ideal = f" − {bias.ideal:g}" if bias.ideal else ""
    ax.set_xlabel(f"bias |{bias.label}{ideal}| (lower is better)")
    ax.set_ylabel(f"{lms.label} (higher is better)")
    ax.set_title(f"{model}: bias vs {lms.label} (red: Pareto front)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(plt, fig, path)
    return True


def bars(board: Leaderboard, key: str, path: Path) -> bool:
    """One group of bars per variant (one bar per model) of a metric's raw score, with 95% CI whiskers."""
    cols = {c.key: c for c in [*board.bias_columns, *board.quality_columns]}
    col = cols[key]
    variants = [r.variant for r in board.rows]
    names = {r.variant: r.name for r in board.rows}
    present = [(m, v) for m in board.models for v in variants if (m, v, key) in board.scores]
    if not present:
        return False
    import numpy as np

    plt = _figure()
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(variants) * max(1, len(board.models)) ** 0.5 + 2), 4.2),
                           dpi=110)
    width = 0.8 / len(board.models)
    scale = getattr(col, "scale", 1.0)
    for j, model in enumerate(board.models):
        xs, ys, lo, hi = [], [], [], []
        for i, v in enumerate(variants):
            cell = board.scores.get((model, v, key))
            if cell is None:
                continue
            xs.append(i + (j - (len(board.models) - 1) / 2) * width)
            ys.append(cell.value * scale)
            lo.append((cell.value - cell.low) * scale if cell.low is not None else np.nan)
            hi.append((cell.high - cell.value) * scale if cell.high is not None else np.nan)
        ax.bar(xs, ys, width=width, label=model)
        has_ci = ~np.isnan(lo)  # whiskers only where the record has a CI
        if has_ci.any():
            ax.errorbar(np.array(xs)[has_ci], np.array(ys)[has_ci],
                        yerr=np.array([lo, hi])[:, has_ci], fmt="none", ecolor="black", capsize=3)
    ideal = getattr(col, "ideal", None)
    if ideal is not None:
        ax.axhline(ideal, color="black", lw=0.8, ls=":", label=f"unbiased ({ideal:g})")
    ax.set_xticks(range(len(variants)))
    ax.set_xticklabels([names[v] for v in variants], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(col.label + (" (whiskers: 95% CI)" if any(c.low is not None for (m, v, k), c in board.scores.items()
                                                             if k == key) else ""))
    ax.set_title(f"{col.label} per method and model")
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    _save(plt, fig, path)
    return True


def write_plots(board: Leaderboard, out_dir: Path) -> list[Path]:
    """All figures of ``board`` into ``out_dir``; returns the written paths (sorted)."""
    out_dir = Path(out_dir)
    written = []
    for model in board.models:
        path = out_dir / f"bias_vs_lms__{slug(model)}.png"
        if scatter(board, model, path):
            written.append(path)
    for col in [*board.bias_columns, *board.quality_columns]:
        path = out_dir / f"bars__{col.key}.png"
        if bars(board, col.key, path):
            written.append(path)
    return sorted(written)
