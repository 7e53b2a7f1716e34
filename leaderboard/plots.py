"""PNG figures of a leaderboard (matplotlib, Agg backend): bias vs LMS per model, per-method bars with CIs.

Whiskers are the bootstrap's 95 % intervals (``board.score_intervals``, :mod:`leaderboard.bootstrap`) where the
board has them; the bars fall back on the records' own CIs. Scatter labels never overlap
(:mod:`leaderboard.labels`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.records import slug
from leaderboard.labels import Box, place_labels
from leaderboard.ranking import Leaderboard, pareto_front

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


def distance_interval(low: float, high: float, ideal: float) -> tuple[float, float]:
    """The interval of |score − ideal| over a score interval [low, high]: [0, farther end] when it contains the
    ideal, else [nearer end, farther end]."""
    near, far = sorted((abs(low - ideal), abs(high - ideal)))
    return (0.0, far) if low <= ideal <= high else (near, far)


@dataclass(frozen=True)
class ScatterPoint:
    variant: str
    name: str
    x: float  # |bias − ideal| of the first bias column
    y: float  # the first quality column (LMS), scaled
    x_interval: tuple[float, float] | None  # 95 % interval of x (from the bootstrap's score interval)
    y_interval: tuple[float, float] | None


def scatter_points(board: Leaderboard, model: str) -> list[ScatterPoint]:
    """The variants of ``model`` with both a first-bias and a first-quality score, in row order."""
    if not board.bias_columns or not board.quality_columns:
        return []
    bias, lms = board.bias_columns[0], board.quality_columns[0]
    out = []
    for row in board.rows:
        b, q = board.scores.get((model, row.variant, bias.key)), board.scores.get((model, row.variant, lms.key))
        if b is None or q is None:
            continue
        raw = board.score_intervals.get((model, row.variant, bias.key))
        out.append(ScatterPoint(row.variant, row.name, bias.distance(b.value), q.value * lms.scale,
                                None if raw is None else distance_interval(*raw, bias.ideal),
                                board.score_intervals.get((model, row.variant, lms.key))))
    return out


def axis_range(values: list[float], intervals: list[tuple[float, float] | None],
               floor: float | None = None) -> tuple[float, float]:
    """[low, high] of the values and their whiskers, padded by 8 % (at least ``floor`` when given)."""
    lows = values + [i[0] for i in intervals if i is not None]
    highs = values + [i[1] for i in intervals if i is not None]
    low, high = min(lows), max(highs)
    pad = (high - low) * 0.08 or max(abs(low) * 0.1, 0.5)
    return (low - pad if floor is None else max(floor, low - pad)), high + pad


def scatter_figure(board: Leaderboard, model: str):
    """(pyplot, figure) of |bias − ideal| (first bias column) against LMS, or None when nothing is scored;
    Pareto-front points in red, joined by a line; 95 % interval whiskers where the board has them."""
    points = scatter_points(board, model)
    if not points:
        return None
    bias, lms = board.bias_columns[0], board.quality_columns[0]
    front = set(pareto_front([(p.variant, p.x, p.y) for p in points]))
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=110)
    for p in points:
        color = "#c0392b" if p.variant in front else "#7f8c8d"
        whisker = dict(color=color, alpha=0.45, lw=0.8, zorder=1)
        if p.x_interval:
            ax.plot(p.x_interval, [p.y, p.y], **whisker)
        if p.y_interval:
            ax.plot([p.x, p.x], p.y_interval, **whisker)
        ax.scatter([p.x], [p.y], color=color, zorder=3)
    line = sorted((p for p in points if p.variant in front), key=lambda p: p.x)
    if len(line) > 1:
        ax.plot([p.x for p in line], [p.y for p in line], "--", color="#c0392b", lw=1, zorder=2)
    ax.set_xlim(*axis_range([p.x for p in points], [p.x_interval for p in points], floor=0.0))
    ax.set_ylim(*axis_range([p.y for p in points], [p.y_interval for p in points]))
    ideal = f" − {bias.ideal:g}" if bias.ideal else ""
    whiskers = " (whiskers: 95% intervals)" if any(p.x_interval or p.y_interval for p in points) else ""
    ax.set_xlabel(f"bias |{bias.label}{ideal}| (lower is better)")
    ax.set_ylabel(f"{lms.label} (higher is better)")
    ax.set_title(f"{model}: bias vs {lms.label} (red: Pareto front){whiskers}",
                 **({"fontsize": 10} if whiskers else {}))  # the longer title still fits
    ax.grid(alpha=0.3)
    fig.tight_layout()  # before the labels: they are placed in the final pixel coordinates
    _label_points(fig, ax, points)
    return plt, fig


def _label_points(fig, ax, points: list[ScatterPoint], fontsize: float = 8) -> None:
    """Annotate every point so that no two labels overlap (:func:`leaderboard.labels.place_labels`), sizes
    measured by the renderer; pixel coordinates flipped to y-down for the placement and back."""
    renderer = fig.canvas.get_renderer()
    height = fig.bbox.height
    xy = [tuple(ax.transData.transform((p.x, p.y))) for p in points]
    sizes = []
    for p in points:
        probe = ax.annotate(p.name, (p.x, p.y), fontsize=fontsize)
        extent = probe.get_window_extent(renderer)
        sizes.append((extent.width + 2, extent.height + 2))
        probe.remove()
    area = ax.get_window_extent(renderer)
    radius = (36 ** 0.5 / 2) * fig.dpi / 72  # default marker: s = 36 pt², i.e. 3 pt radius
    placements = place_labels([(x, height - y) for x, y in xy], sizes, radius=radius, gap=2.0,
                              bounds=Box(area.x0, height - area.y1, area.width, area.height))
    for p, (x, y), placed in zip(points, xy, placements):
        box = placed.box
        offset = (box.x + 1 - x, (height - box.y - box.h) + 1 - y)  # box bottom-left (y up), 1 px inside
        ax.annotate(p.name, (p.x, p.y), xytext=offset, textcoords="offset pixels", ha="left", va="bottom",
                    fontsize=fontsize, annotation_clip=False,
                    arrowprops=dict(arrowstyle="-", lw=0.5, color="#555", shrinkA=0, shrinkB=radius * 72 / fig.dpi)
                    if placed.leader else None)


def scatter(board: Leaderboard, model: str, path: Path) -> bool:
    """Write :func:`scatter_figure` as a PNG; False (nothing written) when the model has no point."""
    made = scatter_figure(board, model)
    if made is None:
        return False
    _save(*made, path)
    return True


def bar_interval(board: Leaderboard, model: str, variant: str, key: str, scale: float) -> tuple[float, float] | None:
    """The displayed (scaled) 95 % interval of one bar: the bootstrap's where the board has it (already scaled),
    else the seed-averaged record CI, else None."""
    if (found := board.score_intervals.get((model, variant, key))) is not None:
        return found
    cell = board.scores.get((model, variant, key))
    if cell is None or cell.low is None or cell.high is None:
        return None
    return cell.low * scale, cell.high * scale


def bars(board: Leaderboard, key: str, path: Path) -> bool:
    """One group of bars per variant (one bar per model) of a metric's raw score, with 95% interval whiskers
    (:func:`bar_interval`)."""
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
    any_whisker = False
    for j, model in enumerate(board.models):
        xs, ys, lo, hi = [], [], [], []
        for i, v in enumerate(variants):
            cell = board.scores.get((model, v, key))
            if cell is None:
                continue
            xs.append(i + (j - (len(board.models) - 1) / 2) * width)
            ys.append(cell.value * scale)
            interval = bar_interval(board, model, v, key, scale)
            # a percentile interval need not contain the point estimate: never a negative whisker
            lo.append(max(0.0, ys[-1] - interval[0]) if interval else np.nan)
            hi.append(max(0.0, interval[1] - ys[-1]) if interval else np.nan)
        ax.bar(xs, ys, width=width, label=model)
        has_ci = ~np.isnan(lo)  # whiskers only where there is an interval
        if has_ci.any():
            any_whisker = True
            ax.errorbar(np.array(xs)[has_ci], np.array(ys)[has_ci],
                        yerr=np.array([lo, hi])[:, has_ci], fmt="none", ecolor="black", capsize=3)
    ideal = getattr(col, "ideal", None)
    if ideal is not None:
        ax.axhline(ideal, color="black", lw=0.8, ls=":", label=f"unbiased ({ideal:g})")
    ax.set_xticks(range(len(variants)))
    ax.set_xticklabels([names[v] for v in variants], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(col.label + (" (whiskers: 95% CI)" if any_whisker else ""))
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
