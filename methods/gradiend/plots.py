"""GRADIEND figures: the headless pyplot and the one way a figure is written, and the training-convergence figure."""

from __future__ import annotations

import io
from pathlib import Path

from harness.atomic import write_bytes_atomic
from methods.gradiend.convergence import ConvergenceRule
from methods.gradiend.training import TrainResult


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: Path, dpi: int) -> None:
    """Write ``fig`` as a PNG atomically (a crash never leaves half a file) and close it."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())


def plot_convergence(result: TrainResult, path: Path, rule: ConvergenceRule) -> None:
    """Per seed against steps: training loss, validation r, and the two class means (with the rule's lines)."""
    plt = pyplot()
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 3.4))
    for seed, entries in result.history.items():
        losses = [(e["step"], e["loss"]) for e in entries if "loss" in e]
        evals = [e for e in entries if "correlation" in e]
        if losses:
            ax1.plot(*zip(*losses), label=f"seed {seed}", lw=0.8)
        if evals:
            steps = [e["step"] for e in evals]
            line, = ax2.plot(steps, [abs(e["correlation"]) for e in evals], marker="o", ms=3, label=f"seed {seed}")
            sign = 1.0 if evals[-1]["mean_first"] >= evals[-1]["mean_second"] else -1.0
            ax3.plot(steps, [sign * e["mean_first"] for e in evals], color=line.get_color(), marker="^", ms=3,
                     label=f"seed {seed} first class")
            ax3.plot(steps, [sign * e["mean_second"] for e in evals], color=line.get_color(), marker="v", ms=3,
                     ls="--", label=f"seed {seed} second class")
    ax1.set_yscale("log")
    ax1.set(xlabel="step", ylabel="MSE loss", title="training loss")
    ax2.axhline(rule.score_threshold, color="grey", ls=":")
    ax2.set(xlabel="step", ylabel="|Pearson r| (validation)", title=f"convergence rule: {rule.name}", ylim=(0, 1.02))
    if rule.mean_threshold is not None:
        for y in (rule.mean_threshold, -rule.mean_threshold):
            ax3.axhline(y, color="grey", ls=":")
    ax3.axhline(0, color="black", lw=0.5)
    ax3.set(xlabel="step", ylabel="mean encoding (validation)", title="class means", ylim=(-1.02, 1.02))
    for ax in (ax1, ax2, ax3):
        ax.legend(fontsize=6)
    fig.tight_layout()
    save_png(fig, path, dpi=100)
