"""The model-dependent checks of GRADIEND data: the paper's base-model filter, non-empty splits, and class words
that are distinct tokens for the model."""

from __future__ import annotations

import random

import torch

from harness.errors import HarnessError
from harness.models.interface import LanguageModel
from methods.gradiend.data import GradiendData
from methods.gradiend.gradients import make_batch, target_token


def filter_templates(lm: LanguageModel, data: GradiendData, n_names: int, seed: int, batch_size: int = 64,
                     progress: bool = False) -> None:
    """Keep templates where the base model prefers the class's word for most of ``n_names`` train names
    per class (the paper's filter); race/religion templates (no names) are all kept."""
    if data.names.empty:
        return
    rng = random.Random(f"{seed}-filter")
    texts, fact, counter, owner = [], [], [], []
    for i, row in data.templates.iterrows():
        for cls in (0, 1):
            for name in rng.sample(data.names_of("train", cls), n_names):
                texts.append(row[f"text_{cls}"].replace("[NAME]", name))
                fact.append(row[f"target_{cls}"])
                counter.append(row[f"target_{1 - cls}"])
                owner.append(i)
    engine_lm = lm
    correct = torch.zeros(len(texts), dtype=torch.bool)
    from harness.progress import progress as bar

    with torch.no_grad():
        for lo in bar(range(0, len(texts), batch_size), progress, "filtering templates"):
            b = make_batch(engine_lm, texts[lo:lo + batch_size], fact[lo:lo + batch_size], counter[lo:lo + batch_size])
            logits = engine_lm.logits(b.input_ids, b.attention_mask, (b.rows, b.cols))
            correct[lo:lo + batch_size] = (logits.gather(1, b.factual[:, None])
                                           > logits.gather(1, b.counterfactual[:, None])).squeeze(1).cpu()
    owner_t = torch.tensor(owner)
    share = torch.zeros(len(data.templates)).index_add_(0, owner_t, correct.float()) / (2 * n_names)
    data.templates["base_correct"] = share.numpy()
    data.templates["kept"] = (share > 0.5).numpy()
    data.info["filter"] = {"names_per_class": n_names, "kept": int(data.templates["kept"].sum()),
                           "total": int(len(data.templates))}


def check_splits(lm: LanguageModel, data: GradiendData) -> None:
    """Every split needs a template after the base-model filter: training samples train, convergence reads val,
    the encoder test reads test. A model that prefers the class word for too few templates (an untrained or
    random model prefers he or she whatever the name) would otherwise fail deep inside training."""
    empty = [split for split in ("train", "val", "test") if data.split(split).empty]
    if empty:
        kept = data.info.get("filter", {})
        raise HarnessError(f"GRADIEND data for {lm.spec}: no {'/'.join(empty)} template is left after the base-model "
                           f"filter (kept {kept.get('kept', '?')} of {kept.get('total', '?')})",
                           "use a trained model that predicts the class words, or the full protocol (all templates)")


def check_targets(lm: LanguageModel, data: GradiendData) -> None:
    """Every pair of a template's class words must be two different tokens for ``lm`` (a word's first token is
    its target: a multi-token word is predicted by its first piece), or the gradients could not tell the
    classes apart."""
    pairs = set(zip(data.templates["target_0"], data.templates["target_1"]))
    for first, second in sorted(pairs):
        for after in (True, False):
            if target_token(lm, first, after) == target_token(lm, second, after):
                raise HarnessError(f"feature {data.classes.key}: '{first}' and '{second}' start with the same token "
                                   f"for {lm.spec}", "choose class words whose first tokens differ")


