"""Inter-model comparison: overlap of the decoder's top-k weights between GRADIEND runs.

For runs A and B, T_k(A) is the set of the k weights (identified by parameter name and position) with the
largest |W_d| (the decoder's weight vector, i.e. dec(1) − dec(0)); overlap(A, B) = |T_k(A) ∩ T_k(B)| / k.
Runs trained on different parameter selections are compared on the weights' names, so e.g. a gender and a
race GRADIEND of the same model, or two seeds, can be compared.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from harness.atomic import write_bytes_atomic
from harness.errors import HarnessError
from methods.gradiend.gradients import ParamMap
from methods.gradiend.model import Gradiend


def top_k_keys(model: Gradiend, param_map: ParamMap, k: int, row: int = 0) -> set[tuple[str, int]]:
    """(parameter name, position inside it) of the k largest |W_d| entries."""
    if k > model.dim:
        raise HarnessError(f"top-k {k} exceeds the GRADIEND's {model.dim} weights", f"use --top-k ≤ {model.dim}")
    local = torch.topk(model.w_d[row].abs(), k).indices
    flat = local if param_map.index is None else param_map.index[local]
    offsets = torch.tensor(param_map.offsets())
    owners = torch.searchsorted(offsets, flat, right=True) - 1
    return {(param_map.names[o], int(f - offsets[o])) for o, f in zip(owners.tolist(), flat.tolist())}


def overlap_matrix(runs: list[tuple[Gradiend, ParamMap]], k: int) -> np.ndarray:
    keys = [top_k_keys(m, pm, k) for m, pm in runs]
    return np.array([[len(a & b) / k for b in keys] for a in keys])


def plot_overlap(matrix: np.ndarray, labels: list[str], path: Path, k: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = 1.2 + 0.9 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(matrix, vmin=0, vmax=1, cmap="magma")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="black" if matrix[i, j] > 0.5 else "white")
    ax.set_title(f"top-{k} decoder weight overlap", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())
