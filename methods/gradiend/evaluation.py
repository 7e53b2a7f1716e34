"""Encoder evaluation (per-example encodings) and the decoder grid (h* × α) with selection.

**Encoder.** For example i with factual loss ℓ_i, h_i = tanh(W_e·∇ℓ_i + b_e). ``W_e·∇ℓ_i`` is a
directional derivative, so a whole batch of examples is encoded with one forward-mode pass
(:meth:`GradientEngine.directional`) instead of one backward each. Labels: first class +1, second −1,
neutral text 0. Reported: Pearson r over the class examples and over class+neutral examples, the class
means, and accuracy with ±0.5 boundaries (h > 0.5 → +1, h < −0.5 → −1, otherwise neutral).

**Decoder.** A candidate is W̃ = W + α·dec(h*). A selection objective gives per-prompt probabilities
P₁,ᵢ, P₂,ᵢ of the two classes (:mod:`methods.gradiend.name_prediction`): for gender the paper's name
prediction on GENTypes-style prompts, for race/religion the class words on validation templates; then

    BPI = mean_i (P₁,ᵢ + P₂,ᵢ)·(1 − |P₁,ᵢ − P₂,ᵢ|)     balanced: both classes likely and equally likely
    FPI = mean_i P₂,ᵢ·(1 − P₁,ᵢ)                       second class (gender: female) strengthened
    MPI = mean_i P₁,ᵢ·(1 − P₂,ᵢ)                       first class (gender: male) strengthened

and LMS on neutral text (masked LM: top-1 accuracy on a seeded 15% of tokens; causal LM: 1/(1 + mean
next-token NLL), the reference's mapping; an instruction-tuned model reads each sentence as the user turn of the
reference's chat prompt and every token of that prompt is scored, as in the reference's ``evaluate_clm_perplexity``
— :mod:`methods.gradiend.instruct`). Selection: argmax metric·LMS over the candidates **and the
unchanged model** (the paper), or the best metric among rows with LMS ≥ 0.99·LMS(base) (the reference
package's threshold policy). Grids: ``paper`` (15 h* × 16 α = 240) and ``package`` (the 1-2-5 grid).
Candidates are applied in place to the engine's flat weight buffer and undone, so no model copy is made.

Device: the model runs, the candidates are applied and the scores are computed on the engine's device; the
per-example encodings and every reported number come back to the CPU.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from harness.progress import progress as progress_bar
from methods.gradiend.data import WORD, GradiendData
from methods.gradiend.gradients import SLOT, GradientEngine, TargetBatch, make_batch
from methods.gradiend.instruct import chat_format
from methods.gradiend.model import Gradiend
from methods.gradiend.name_prediction import preference_scores
from methods.gradiend.plots import pyplot, save_png
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
        """h per example [N], on the CPU (a result: correlations, metrics, CSV and plots read it there)."""
        parts = [self.engine.directional(b, model.w_e[row]) for b in progress_bar(self.batches, progress, "encoding")]
        encoded = torch.cat(parts)
        return torch.tanh(encoded + model.b_e[row].to(encoded.device)).float().cpu()

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


def weighted_pearson(arrays, w: np.ndarray) -> np.ndarray:
    """Pearson r of ``h`` and ``label`` under bootstrap weights ``w`` [B, n] (one r per replicate)."""
    x, y = arrays["h"], arrays["label"]
    total = w.sum(1)
    mx, my = w @ x / total, w @ y / total
    cov = w @ (x * y) / total - mx * my
    var_x, var_y = w @ (x * x) / total - mx ** 2, w @ (y * y) / total - my ** 2
    return cov / np.sqrt(np.clip(var_x * var_y, 1e-300, None))


def encoder_intervals(h: torch.Tensor, labels: torch.Tensor, resamples: int = 1000) -> dict:
    """95 % percentile intervals of r and the class means over the class examples, resampled within each
    class (so both classes keep their sizes; harness.stats, seeded)."""
    from harness.stats import bootstrap_score, ratio

    classes = labels != 0
    arrays = {"h": h[classes].double().numpy(), "label": labels[classes].double().numpy()}
    n = int(classes.sum())
    first, second = (arrays["label"] == 1.0).astype(float), (arrays["label"] == -1.0).astype(float)
    out = {}
    for key, statistic in (("pearson", weighted_pearson), ("mean_first", ratio(arrays["h"] * first, first)),
                           ("mean_second", ratio(arrays["h"] * second, second))):
        score = bootstrap_score(statistic, arrays, n, resamples=resamples, seed=0, strata=arrays["label"])
        out[key] = [score.low, score.high]
    return out


def encoder_metrics(h: torch.Tensor, labels: torch.Tensor) -> dict:
    classes = labels != 0
    predicted = torch.where(h > 0.5, 1.0, torch.where(h < -0.5, -1.0, 0.0))
    return {"pearson": pearson(h[classes], labels[classes]), "ci95": encoder_intervals(h, labels),
            "pearson_with_neutral": pearson(h, labels) if (~classes).any() else None,
            "mean_first": float(h[labels > 0].mean()), "mean_second": float(h[labels < 0].mean()),
            "mean_neutral": float(h[~classes].mean()) if (~classes).any() else None,
            "accuracy": float((predicted == labels).double().mean()),
            "accuracy_classes": float((predicted[classes] == labels[classes]).double().mean()),
            "n": int(len(h)), "n_neutral": int((~classes).sum())}


def plot_distribution(h: torch.Tensor, labels: torch.Tensor, names: tuple[str, str], path: Path, title: str) -> None:
    fig, ax = pyplot().subplots(figsize=(6, 3.2))
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
    save_png(fig, path, dpi=110)


# -- decoder grid ----------------------------------------------------------------------------------
# The paper's grid (aieng-lab/gradiend-bias gradiend/evaluation/analyze_decoder.py:
# default_evaluation_feature_factors × default_evaluation_lrs): 15 × 16 = 240 candidates, plus the base model.
PAPER_FEATURE_FACTORS = [-10.0, -2.0, -1.0, -0.8, -0.6, -0.4, -0.2, 0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 10.0]
PAPER_ALPHAS = sorted(s * a for s in (-1, 1) for a in (0.5, 0.1, 0.05, 0.01, 0.005, 0.001, 0.0005, 0.0001))
# The gradiend package's 1-2-5 grid: α ∈ ±{1, 2, 5}·10^k ≤ 100 (k ≥ −3) with one feature factor per class.
PACKAGE_FEATURE_FACTORS = [-1.0, 0.0, 1.0]
PACKAGE_ALPHAS = sorted({s * m * 10.0 ** e for s in (-1, 1) for e in range(-3, 3) for m in (1, 2, 5)
                         if m * 10.0 ** e <= 100})
GRIDS = {"paper": (PAPER_FEATURE_FACTORS, PAPER_ALPHAS), "package": (PACKAGE_FEATURE_FACTORS, PACKAGE_ALPHAS)}


class DecoderGrid:
    """Scores candidate rewrites W + α·dec(h*) with a selection objective (per-prompt class probabilities →
    BPI/FPI/MPI) and LMS on neutral text. The base model is row 0 of every table."""

    def __init__(self, engine: GradientEngine, objective, neutral: list[str], seed: int, batch_size: int = 64):
        self.engine, self.objective = engine, objective
        # causal: sorted by length for little padding (LMS is a total over tokens, order is free); masked LMs
        # keep their order, because the seeded 15 % mask is drawn per batch
        ordered = sorted(neutral, key=len) if engine.lm.kind == "causal" else list(neutral)
        self.neutral_batches = [self._lms_batch(ordered[i:i + batch_size], seed + i)
                                for i in range(0, len(ordered), batch_size)]
        self.n_neutral = len(neutral)

    def _lms_batch(self, texts: list[str], seed: int) -> tuple[dict, torch.Tensor, torch.Tensor]:
        lm = self.engine.lm
        chat = chat_format(lm)
        if chat.used:  # 128 tokens for the sentence, as below, plus the prompt around it
            prompt = len(lm.token_ids([chat.wrap("")], add_special_tokens=False)[0])
            batch = lm.tokenize([chat.wrap(t) for t in texts], max_length=128 + prompt, add_special_tokens=False)
        else:
            batch = lm.tokenize(texts, max_length=128)
        ids, mask = batch["input_ids"], batch["attention_mask"]
        if lm.kind == "masked":
            gen = torch.Generator().manual_seed(seed)  # drawn on the CPU: the same mask on every device
            eligible = mask.bool() & (ids != lm.tokenizer.cls_token_id) & (ids != lm.tokenizer.sep_token_id)
            chosen = eligible & (torch.rand(ids.shape, generator=gen) < 0.15).to(ids.device)
            targets = ids[chosen]
            masked = ids.clone()
            masked[chosen] = lm.tokenizer.mask_token_id
            return {"input_ids": masked, "attention_mask": mask}, chosen, targets
        chosen = mask.bool().clone()
        chosen[:, -1] = False
        lengths = mask.sum(1)
        rows = torch.arange(len(ids), device=ids.device)
        chosen[rows, lengths - 1] = False  # the last real token predicts nothing here
        return batch, chosen, ids

    @torch.no_grad()
    def lms(self) -> float:
        """Masked LM: top-1 accuracy on a seeded 15% of tokens; causal: 1/(1 + mean NLL) (the reference's)."""
        lm = self.engine.lm
        correct = total = 0
        nll_sum = 0.0
        for batch, chosen, targets in self.neutral_batches:
            rows, cols = chosen.nonzero(as_tuple=True)
            if rows.numel() == 0:
                continue
            logits = lm.logits(batch["input_ids"], batch["attention_mask"], (rows, cols)).float()
            if lm.kind == "masked":
                correct += int((logits.argmax(-1) == targets).sum())
            else:
                nxt = targets[rows, cols + 1]
                nll_sum += float((torch.logsumexp(logits, -1) - logits.gather(1, nxt[:, None]).squeeze(1)).sum())
            total += int(rows.numel())
        return correct / max(total, 1) if lm.kind == "masked" else 1.0 / (1.0 + nll_sum / max(total, 1))

    def score(self) -> dict:
        p_first, p_second = self.objective.probabilities(self.engine.lm)
        return {**preference_scores(p_first, p_second), "lms": self.lms()}

    def run(self, model: Gradiend, row: int, feature_factors: list[float], alphas: list[float],
            progress: bool = False) -> pd.DataFrame:
        return self.run_pairs(model, row, [(h, a) for h in feature_factors for a in alphas], progress)

    def run_pairs(self, model: Gradiend, row: int, pairs: list[tuple[float, float]], progress: bool = False,
                  label: str = "decoder grid") -> pd.DataFrame:
        """The base model (row 0, h = NaN) and each (h*, α) of ``pairs``."""
        engine = self.engine
        index = engine.map.index_on(engine.flat.device)
        records = [{"h": None, "alpha": 0.0, **self.score()}]
        saved = engine.flat.clone() if index is None else engine.flat[index].clone()
        with torch.no_grad():
            for h, alpha in progress_bar(pairs, progress, label):
                delta = (alpha * model.decode(h, row)).to(engine.flat.device, engine.flat.dtype)
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


def screened_grid(full: DecoderGrid, screen: DecoderGrid, model: Gradiend, row: int, feature_factors: list[float],
                  alphas: list[float], finalists: int = 8, progress: bool = False) -> pd.DataFrame:
    """Two stages: every candidate on the ``screen`` subset of prompts and LMS sentences, then the
    ``finalists`` best per metric — by metric·LMS and by metric among rows with LMS ≥ 0.97·base (looser than
    the selection's 0.99, so near-misses reach the final) — and the base model on the full sets. The table
    has every candidate; ``scored_on`` says which set its numbers come from, and :func:`select` only
    compares rows scored on the full sets. Whether this changes the selected candidate is measured by
    ``perf/gradiend_grid.py`` (full vs screened, same GRADIEND)."""
    pairs = [(h, a) for h in feature_factors for a in alphas]
    first = screen.run_pairs(model, row, pairs, progress, "decoder grid (screen)")
    base, cands = first.iloc[0], first.iloc[1:]
    keep: set[int] = set()
    for metric in METRICS:
        keep |= set((cands[metric] * cands["lms"]).nlargest(finalists).index)
        passing = cands[cands["lms"] >= 0.97 * base["lms"]]
        keep |= set(passing[metric].nlargest(finalists).index)
    chosen = sorted(keep)
    final = full.run_pairs(model, row, [pairs[i - 1] for i in chosen], progress, "decoder grid (finalists)")
    table = first.assign(scored_on="screen")
    for position, i in enumerate([0] + chosen):  # final: the base model, then the finalists in order
        for column in final.columns:
            table.loc[i, column] = final.iloc[position][column]
        table.loc[i, "scored_on"] = "full"
    return table


def select(table: pd.DataFrame, metric: str, rule: str = "product", ratio: float = 0.99) -> dict:
    """The chosen row for ``metric`` — the unchanged model (row with h = NaN) competes like any candidate
    (the paper's argmax includes it; ties go to it): argmax metric·LMS (``product``, the paper with the
    reference's identity accuracy function), or the best metric among rows with LMS ≥ ratio·LMS(base)
    (``lms-threshold``, which the base always passes)."""
    if "scored_on" in table:
        table = table[table["scored_on"] == "full"]
    base = table[table["h"].isna()].iloc[0]
    if rule == "product":
        best = table.loc[(table[metric] * table["lms"]).idxmax()]
    else:
        passing = table[table["lms"] >= ratio * base["lms"]]
        best = passing.loc[passing[metric].idxmax()]
    unchanged = bool(pd.isna(best["h"]))
    return {"metric": metric, "rule": rule, "unchanged": unchanged, "h": 0.0 if unchanged else float(best["h"]),
            "alpha": 0.0 if unchanged else float(best["alpha"]), "value": float(best[metric]),
            "lms": float(best["lms"]), "score": float(best[metric] * best["lms"]) if rule == "product" else
            float(best[metric]), "base_value": float(base[metric]), "base_lms": float(base["lms"])}


def plot_grid(table: pd.DataFrame, path: Path, title: str) -> None:
    """Heatmaps of BPI·LMS, FPI·LMS, MPI·LMS and LMS over (h*, α)."""
    plt = pyplot()
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
    save_png(fig, path, dpi=100)
