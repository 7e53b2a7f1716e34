"""Encoder evaluation (per-example encodings) and the decoder grid (h* × α) with selection.

**Encoder.** For example i with factual loss ℓ_i, h_i = tanh(W_e·∇ℓ_i + b_e). ``W_e·∇ℓ_i`` is a
directional derivative, so a whole batch of examples is encoded with one forward-mode pass
(:meth:`GradientEngine.directional`) instead of one backward each. Labels: first class +1, second −1,
neutral text 0. Reported: Pearson r over the class examples and over class+neutral examples, the class
means, and accuracy with ±0.5 boundaries (h > 0.5 → +1, h < −0.5 → −1, otherwise neutral).

**Decoder.** A candidate is W̃ = W + α·dec(h*). On the val prompts (val templates × val names, both
classes) p₁,ᵢ and p₂,ᵢ are the probabilities of the two classes' target words at prompt i; then

    BPI = mean_i (p₁,ᵢ + p₂,ᵢ)·(1 − |p₁,ᵢ − p₂,ᵢ|)     balanced: both words likely and equally likely
    FPI = mean_i p₂,ᵢ·(1 − p₁,ᵢ)                       second class (gender: female) strengthened
    MPI = mean_i p₁,ᵢ·(1 − p₂,ᵢ)                       first class (gender: male) strengthened

and LMS on neutral text (masked LM: top-1 accuracy on a seeded 15% of tokens; causal LM: 1/(1 + mean
next-token NLL), the reference's mapping). Selection: argmax metric·LMS (the paper), or the best metric
among candidates with LMS ≥ 0.99·LMS(base) (the reference's threshold policy). Candidates are applied in
place to the engine's flat weight buffer and undone, so no model copy is made per candidate.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from harness.atomic import write_bytes_atomic
from harness.progress import progress as progress_bar
from methods.gradiend.data import WORD, GradiendData
from methods.gradiend.gradients import SLOT, GradientEngine, TargetBatch, make_batch
from methods.gradiend.model import Gradiend
from methods.gradiend.training import label_of

METRICS = ("bpi", "fpi", "mpi")


@dataclass
class Examples:
    texts: list[str]
    factual: list[str]
    counterfactual: list[str]
    labels: list[float]


def class_examples(data: GradiendData, split: str, seed: int, limit: int | None = None) -> Examples:
    """Each template of ``split`` rendered for each class (with one of the split's names of that class)."""
    rng = random.Random(f"{seed}-{split}-examples")
    templates = data.split(split)
    out = Examples([], [], [], [])
    for cls in (0, 1):
        names = data.names_of(split, cls) if not data.names.empty else []
        rows = templates if names else templates[templates["cls"] == cls]
        for _, row in rows.iterrows():
            text = row[f"text_{cls}"]
            out.texts.append(text.replace("[NAME]", rng.choice(names)) if names else text)
            out.factual.append(row[f"target_{cls}"])
            out.counterfactual.append(row[f"target_{1 - cls}"])
            out.labels.append(label_of(cls))
    if limit is not None and len(out.texts) > limit:
        keep = sorted(random.Random(f"{seed}-{split}-limit").sample(range(len(out.texts)), limit))
        out = Examples(*([getattr(out, f)[i] for i in keep] for f in ("texts", "factual", "counterfactual", "labels")))
    return out


def neutral_examples(sentences: list[str], seed: int, limit: int) -> Examples:
    """A random later word of each neutral sentence becomes the target (its own word is the label)."""
    rng = random.Random(f"{seed}-neutral-examples")
    out = Examples([], [], [], [])
    for sent in sentences[:limit]:
        words = list(WORD.finditer(sent))[2:]
        if not words:
            continue
        m = rng.choice(words)
        out.texts.append(sent[:m.start()] + SLOT + sent[m.end():])
        out.factual.append(m.group(0))
        out.counterfactual.append(m.group(0))
        out.labels.append(0.0)
    return out


class EncoderProbe:
    """Pre-tokenised examples whose per-example encodings are computed by JVP for any seed row."""

    def __init__(self, engine: GradientEngine, examples: Examples, batch_size: int = 64):
        self.engine, self.labels = engine, torch.tensor(examples.labels)
        self.batches: list[TargetBatch] = []
        for lo in range(0, len(examples.texts), batch_size):
            sl = slice(lo, lo + batch_size)
            self.batches.append(make_batch(engine.lm, examples.texts[sl], examples.factual[sl],
                                           examples.counterfactual[sl]))

    def encode(self, model: Gradiend, row: int = 0, progress: bool = False) -> torch.Tensor:
        parts = [self.engine.directional(b, model.w_e[row]) for b in progress_bar(self.batches, progress, "encoding")]
        return torch.tanh(torch.cat(parts) + model.b_e[row]).float()

    def correlations(self, model: Gradiend) -> list[tuple[float, float, float]]:
        """(Pearson r, mean h of the first class, mean h of the second) for every seed row."""
        out = []
        for row in range(len(model.seeds)):
            h = self.encode(model, row)
            out.append((pearson(h, self.labels), float(h[self.labels > 0].mean()), float(h[self.labels < 0].mean())))
        return out


def pearson(x: torch.Tensor, y: torch.Tensor) -> float:
    x, y = x.double() - x.double().mean(), y.double() - y.double().mean()
    denom = float(x.norm() * y.norm())
    return float((x @ y) / denom) if denom > 0 else 0.0


def encoder_metrics(h: torch.Tensor, labels: torch.Tensor) -> dict:
    classes = labels != 0
    predicted = torch.where(h > 0.5, 1.0, torch.where(h < -0.5, -1.0, 0.0))
    return {"pearson": pearson(h[classes], labels[classes]),
            "pearson_with_neutral": pearson(h, labels) if (~classes).any() else None,
            "mean_first": float(h[labels > 0].mean()), "mean_second": float(h[labels < 0].mean()),
            "mean_neutral": float(h[~classes].mean()) if (~classes).any() else None,
            "accuracy": float((predicted == labels).double().mean()),
            "accuracy_classes": float((predicted[classes] == labels[classes]).double().mean()),
            "n": int(len(h)), "n_neutral": int((~classes).sum())}


def plot_distribution(h: torch.Tensor, labels: torch.Tensor, names: tuple[str, str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import io

    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    bins = np.linspace(-1, 1, 41)
    for value, name in ((1.0, names[0]), (-1.0, names[1]), (0.0, "neutral")):
        sel = (labels == value).numpy()
        if sel.any():
            ax.hist(h.numpy()[sel], bins=bins, alpha=0.55, label=f"{name} (n={int(sel.sum())})")
    ax.axvline(0.5, color="grey", ls=":")
    ax.axvline(-0.5, color="grey", ls=":")
    ax.set_xlabel("encoded value h")
    ax.set_ylabel("examples")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())


# -- decoder grid ----------------------------------------------------------------------------------
class DecoderGrid:
    """Scores candidate rewrites W + α·dec(h*) on class prompts (BPI/FPI/MPI) and neutral text (LMS)."""

    def __init__(self, engine: GradientEngine, prompts: Examples, neutral: list[str], seed: int,
                 batch_size: int = 64):
        lm = engine.lm
        self.engine = engine
        first = [f if lab > 0 else c for f, c, lab in zip(prompts.factual, prompts.counterfactual, prompts.labels)]
        second = [c if lab > 0 else f for f, c, lab in zip(prompts.factual, prompts.counterfactual, prompts.labels)]
        self.prompt_batches = [make_batch(lm, prompts.texts[i:i + batch_size], first[i:i + batch_size],
                                          second[i:i + batch_size]) for i in range(0, len(prompts.texts), batch_size)]
        self.neutral_batches = [self._lms_batch(neutral[i:i + batch_size], seed + i)
                                for i in range(0, len(neutral), batch_size)]

    def _lms_batch(self, texts: list[str], seed: int) -> tuple[dict, torch.Tensor, torch.Tensor]:
        lm = self.engine.lm
        batch = lm.tokenize(texts, max_length=128)
        ids, mask = batch["input_ids"], batch["attention_mask"]
        if lm.kind == "masked":
            gen = torch.Generator().manual_seed(seed)
            eligible = mask.bool() & (ids != lm.tokenizer.cls_token_id) & (ids != lm.tokenizer.sep_token_id)
            chosen = eligible & (torch.rand(ids.shape, generator=gen) < 0.15)
            targets = ids[chosen]
            masked = ids.clone()
            masked[chosen] = lm.tokenizer.mask_token_id
            return {"input_ids": masked, "attention_mask": mask}, chosen, targets
        chosen = mask.bool().clone()
        chosen[:, -1] = False
        lengths = mask.sum(1)
        chosen[torch.arange(len(ids)), lengths - 1] = False  # the last real token predicts nothing here
        return batch, chosen, ids

    @torch.no_grad()
    def score(self) -> dict:
        lm = self.engine.lm
        p1, p2 = [], []
        for b in self.prompt_batches:
            logp = torch.log_softmax(lm.logits(b.input_ids, b.attention_mask, (b.rows, b.cols)).float(), -1)
            p1.append(logp.gather(1, b.factual[:, None]).squeeze(1).exp())
            p2.append(logp.gather(1, b.counterfactual[:, None]).squeeze(1).exp())
        a, b_ = torch.cat(p1).double(), torch.cat(p2).double()
        correct = total = 0
        nll_sum = 0.0
        for batch, chosen, targets in self.neutral_batches:
            rows, cols = chosen.nonzero(as_tuple=True)
            if rows.numel() == 0:
                continue
            logits = lm.logits(batch["input_ids"], batch["attention_mask"], (rows, cols)).float()
            if lm.kind == "masked":
                correct += int((logits.argmax(-1) == targets).sum())
                total += int(rows.numel())
            else:
                nxt = targets[rows, cols + 1]
                nll_sum += float((torch.logsumexp(logits, -1) - logits.gather(1, nxt[:, None]).squeeze(1)).sum())
                total += int(rows.numel())
        lms = correct / max(total, 1) if lm.kind == "masked" else 1.0 / (1.0 + nll_sum / max(total, 1))
        return {"p_first": float(a.mean()), "p_second": float(b_.mean()),
                "bpi": float(((a + b_) * (1 - (a - b_).abs())).mean()),
                "fpi": float((b_ * (1 - a)).mean()), "mpi": float((a * (1 - b_)).mean()), "lms": lms}

    def run(self, model: Gradiend, row: int, feature_factors: list[float], alphas: list[float],
            progress: bool = False) -> pd.DataFrame:
        engine = self.engine
        index = engine.map.index
        base = self.score()
        records = [{"h": None, "alpha": 0.0, **base}]
        saved = engine.flat.clone() if index is None else engine.flat[index].clone()
        grid = [(h, a) for h in feature_factors for a in alphas]
        with torch.no_grad():
            for h, alpha in progress_bar(grid, progress, "decoder grid"):
                delta = (alpha * model.decode(h, row)).to(engine.flat.dtype)
                if index is None:
                    engine.flat.add_(delta)
                else:
                    engine.flat.index_add_(0, index, delta)
                try:
                    records.append({"h": h, "alpha": alpha, **self.score()})
                finally:
                    if index is None:
                        engine.flat.copy_(saved)
                    else:
                        engine.flat[index] = saved
        return pd.DataFrame(records)


def select(table: pd.DataFrame, metric: str, rule: str = "product", ratio: float = 0.99) -> dict:
    """The chosen candidate for ``metric``: argmax metric·LMS, or the best metric with LMS ≥ ratio·base."""
    base = table[table["h"].isna()].iloc[0]
    cands = table[table["h"].notna()]
    if rule == "product":
        best = cands.loc[(cands[metric] * cands["lms"]).idxmax()]
    else:
        passing = cands[cands["lms"] >= ratio * base["lms"]]
        best = passing.loc[passing[metric].idxmax()] if not passing.empty else cands.loc[cands["alpha"].abs().idxmin()]
    return {"metric": metric, "rule": rule, "h": float(best["h"]), "alpha": float(best["alpha"]),
            "value": float(best[metric]), "lms": float(best["lms"]), "base_value": float(base[metric]),
            "base_lms": float(base["lms"])}


def plot_grid(table: pd.DataFrame, path: Path, title: str) -> None:
    """Heatmaps of BPI·LMS, FPI·LMS, MPI·LMS and LMS over (h*, α)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cands = table[table["h"].notna()].copy()
    panels = [(f"{m}·lms", cands[m] * cands["lms"]) for m in METRICS] + [("lms", cands["lms"])]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2))
    for ax, (name, values) in zip(axes, panels):
        pivot = cands.assign(v=values).pivot_table(index="h", columns="alpha", values="v")
        im = ax.imshow(pivot.values, aspect="auto", cmap="viridis")
        ax.set_xticks(range(len(pivot.columns)), [f"{a:g}" for a in pivot.columns], rotation=90, fontsize=7)
        ax.set_yticks(range(len(pivot.index)), [f"{h:g}" for h in pivot.index], fontsize=8)
        ax.set_xlabel("α")
        ax.set_ylabel("h*")
        ax.set_title(name, fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())
