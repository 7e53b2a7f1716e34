"""Comparing GRADIEND runs: overlap of the decoder's top-k weights, across features, seeds and runs.

For runs A and B, T_k(A) is the set of the k weights (identified by parameter name and position) with the
largest importance; overlap(A, B) = |T_k(A) ∩ T_k(B)| / k and Jaccard(A, B) = |T_k(A) ∩ T_k(B)| / |T_k(A) ∪ T_k(B)|.
Weights are named by parameter and position in the unpruned model, so runs with different parameter selections
or pre-pruning (a gender and a number GRADIEND of one model, two seeds) are comparable, as in the gradiend package
(aieng-lab/gradiend ``gradiend/model/model_with_gradiend.py`` ``get_topk_weights``: base-global indices).

Importance:

* ``weight`` — the package's ``decoder-weight``: |W_d|, the decoder's weight vector (dec(1) − dec(0)).
* ``change`` (default) — what training learned: |W_d − W_d⁰|, with W_d⁰ the seed's initialisation (recomputed
  from its seed, :meth:`Gradiend.init`) and the sign normalisation undone. After a short training (the ``cpu``
  protocol: 20-80 steps, W_d moves 10-27 % of its initial norm) |W_d| is mostly the random initialisation, so two
  runs that share an initialisation seed overlap more than two runs of one feature (docs/gradiend-features.md).

**Seed stability** (the package's ``summarize_topk_stability``, ``gradiend/trainer/core/stats.py``): over the
converged seeds of one run — and over the runs of one feature and model — the mean, population std, min and max
of the pairwise overlap, the mean pairwise Jaccard, and the sizes of the intersection and union of all top-k sets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
import torch

from harness.atomic import write_bytes_atomic, write_json_atomic
from harness.errors import HarnessError
from methods.gradiend.gradients import ParamMap
from methods.gradiend.model import Gradiend
from methods.gradiend.plots import pyplot, save_png

IMPORTANCES = ("change", "weight")


def learned_change(model: Gradiend, row: int = 0) -> torch.Tensor:
    """W_d − W_d⁰ of one seed row: its decoder weights minus their initialisation, in the trained sign."""
    w = model.w_d[row]
    init = Gradiend.init(model.dim, [model.seeds[row]]).w_d[0].to(w.device, w.dtype)
    kept, flipped = float((w - init).norm()), float((w + init).norm())
    if min(kept, flipped) > 0.5 * max(kept, flipped):
        raise HarnessError(f"GRADIEND seed {model.seeds[row]} moved too far from its initialisation to tell whether "
                           "its sign was flipped", "compare with --importance weight")
    return w - init if kept <= flipped else -w - init


def top_k_keys(model: Gradiend, param_map: ParamMap, k: int, row: int = 0,
               importance: str = "weight") -> set[tuple[str, int]]:
    """(parameter name, position inside it) of the k most important weights of seed row ``row``."""
    if k > model.dim:
        raise HarnessError(f"top-k {k} exceeds the GRADIEND's {model.dim} weights", f"use --top-k ≤ {model.dim}")
    if importance not in IMPORTANCES:
        raise HarnessError(f"importance '{importance}' is not known", f"use one of {', '.join(IMPORTANCES)}")
    scores = model.w_d[row] if importance == "weight" else learned_change(model, row)
    local = torch.topk(scores.abs(), k).indices.cpu()  # keys are compared on the CPU, where the map's index lives
    flat = local if param_map.index is None else param_map.index[local]
    offsets = torch.tensor(param_map.offsets())
    owners = torch.searchsorted(offsets, flat, right=True) - 1
    return {(param_map.names[o], int(f - offsets[o])) for o, f in zip(owners.tolist(), flat.tolist())}


def overlap_matrix(runs: list[tuple[Gradiend, ParamMap]], k: int) -> np.ndarray:
    keys = [top_k_keys(m, pm, k) for m, pm in runs]
    return overlap_of_sets(keys, k)


def overlap_of_sets(keys: list[set], k: int) -> np.ndarray:
    return np.array([[len(a & b) / k for b in keys] for a in keys])


def stability(keys: list[set], k: int) -> dict | None:
    """Pairwise top-k agreement of several sets (seeds or runs of one feature); None for fewer than two."""
    if len(keys) < 2:
        return None
    pairs = list(combinations(keys, 2))
    overlaps = np.array([len(a & b) / k for a, b in pairs])
    jaccard = np.array([len(a & b) / len(a | b) for a, b in pairs])
    return {"n": len(keys), "mean_pairwise_overlap": float(overlaps.mean()),
            "pairwise_overlap_std": float(overlaps.std()), "min_pairwise_overlap": float(overlaps.min()),
            "max_pairwise_overlap": float(overlaps.max()), "mean_pairwise_jaccard": float(jaccard.mean()),
            "intersection_size": len(set.intersection(*keys)), "union_size": len(set.union(*keys))}


@dataclass
class Run:
    """One GRADIEND folder (a CLI folder or a cached workflow entry) and what identifies it."""

    folder: Path
    label: str
    model: Gradiend
    param_map: ParamMap
    identity: dict

    @classmethod
    def load(cls, folder: Path, label: str | None = None) -> "Run":
        from methods.gradiend.workflow import load_trained

        folder = Path(folder)
        if not (folder / "gradiend.safetensors").is_file():
            raise HarnessError(f"{folder} has no gradiend.safetensors",
                               f"train it first (`gradiend-bench gradiend train --dir {folder}`)")
        model, param_map = load_trained(folder)
        settings = model.meta.get("settings", {})
        saved = _json(folder / "settings.json") or {}
        encoder = _json(folder / "encoder.json") or (_json(folder / "done.json") or {}).get("encoder") or {}
        training = _json(folder / "training.json") or {}
        feature = settings.get("feature") or settings.get("bias_type")
        model_spec = saved.get("model") or model.meta.get("model")
        identity = {"folder": str(folder), "model": model_spec, "feature": feature,
                    "run_seed": settings.get("seed"), "training_seed": model.seeds[0],
                    "converged": training.get("converged"), "protocol": settings.get("protocol"),
                    "checkpoint_sha256": (_json(folder / "gradiend.json") or {}).get("sha256"),
                    "trained_weights": model.dim, "encoder_test_pearson": encoder.get("pearson"),
                    "encoder_test_means": [encoder.get("mean_first"), encoder.get("mean_second")]}
        short = (model_spec or "?").split(":")[-1]
        return cls(folder, label or f"{feature}/{short}/s{settings.get('seed', '?')}", model, param_map, identity)

    def keys(self, k: int, importance: str = "change") -> set[tuple[str, int]]:
        if importance == "change" and (self.model.meta.get("settings") or {}).get("post_prune") is not None:
            raise HarnessError(f"{self.folder} was post-pruned, so its initialisation cannot be recomputed",
                               "compare with --importance weight")
        return top_k_keys(self.model, self.param_map, k, importance=importance)

    def seed_keys(self, k: int, importance: str = "change") -> list[set[tuple[str, int]]]:
        """Top-k sets of every converged seed this run trained (``all_seeds.safetensors``; none if absent)."""
        path = self.folder / "all_seeds.safetensors"
        training = _json(self.folder / "training.json") or {}
        converged = {s["seed"] for s in training.get("seeds", []) if s.get("converged")}
        if not path.is_file() or len(converged) < 2:
            return []
        every, _ = Gradiend.load(path)
        return [top_k_keys(every, self.param_map, k, row, importance) for row, seed in enumerate(every.seeds)
                if seed in converged]


def _json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def compare_runs(runs: list[Run], k: int, importance: str = "change") -> dict:
    """The overlap and Jaccard matrices, per-run seed stability and per-(model, feature) run stability."""
    shapes = [dict(zip(r.param_map.names, r.param_map.shapes)) for r in runs]
    for (i, a), (j, b) in combinations(enumerate(shapes), 2):
        clash = next((n for n in a.keys() & b.keys() if tuple(a[n]) != tuple(b[n])), None)
        if clash is not None:
            raise HarnessError(f"runs {runs[i].folder} and {runs[j].folder} have different shapes for {clash} "
                               "(models of different architectures)", "compare runs of models of one architecture")
    keys = [r.keys(k, importance) for r in runs]
    jaccard = [[len(a & b) / len(a | b) for b in keys] for a in keys]
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(runs):
        groups.setdefault(f"{r.identity['feature']} on {r.identity['model']}", []).append(i)
    return {"top_k": k, "importance": importance, "labels": [r.label for r in runs], "runs": [r.identity for r in runs],
            "overlap": overlap_of_sets(keys, k).tolist(), "jaccard": jaccard,
            "seed_stability": {r.label: stability(r.seed_keys(k, importance), k) for r in runs},
            "run_stability": {g: stability([keys[i] for i in idx], k) for g, idx in groups.items() if len(idx) > 1}}


def write_comparison(result: dict, prefix: Path) -> list[Path]:
    """``prefix``.csv (overlap matrix), .json (everything, with the runs' identities) and .png (heatmap)."""
    import pandas as pd

    prefix = Path(prefix)
    frame = pd.DataFrame(result["overlap"], index=result["labels"], columns=result["labels"])
    paths = [prefix.with_suffix(".csv"), prefix.with_suffix(".json"), prefix.with_suffix(".png")]
    write_bytes_atomic(paths[0], frame.to_csv(index_label="run", float_format="%.4f").encode())
    write_json_atomic(paths[1], result)
    plot_overlap(np.array(result["overlap"]), result["labels"], paths[2], result["top_k"], result["importance"])
    return paths


def plot_overlap(matrix: np.ndarray, labels: list[str], path: Path, k: int, importance: str = "weight") -> None:
    plt = pyplot()
    size = 1.2 + 0.9 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(matrix, vmin=0, vmax=1, cmap="magma")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="black" if matrix[i, j] > 0.5 else "white")
    what = "|W_d − W_d⁰| (learned change)" if importance == "change" else "|W_d|"
    ax.set_title(f"top-{k} overlap |A∩B|/k of {what}", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    save_png(fig, path, dpi=110)


def format_stability(s: dict | None) -> str:
    if s is None:
        return "fewer than two converged seeds"
    return (f"{s['n']} sets: overlap {s['mean_pairwise_overlap']:.3f} ± {s['pairwise_overlap_std']:.3f} "
            f"[{s['min_pairwise_overlap']:.3f}, {s['max_pairwise_overlap']:.3f}], Jaccard "
            f"{s['mean_pairwise_jaccard']:.3f}, in all {s['intersection_size']} of {s['union_size']}")
