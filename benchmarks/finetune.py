"""End-to-end fine-tuning of a sequence-classification head on the (possibly debiased) model.

The head sits on the pooled final hidden state :math:`\\bar h` (attention-masked mean, the same pooling as
the probe, so it works for masked and causal LMs alike): logits :math:`= W\\,\\mathrm{dropout}_{0.1}(\\bar h) + b`.
Losses: cross-entropy (classification), squared error (STS-B), and for COPA a one-logit scorer per
choice with cross-entropy over the two choices' scores (SuperGLUE's baseline). AdamW (lr 2e-5, no weight
decay), linear decay to 0, gradient norm clipped to 1, batch 32 examples, max length 128.

The model is cloned (the caller's weights stay untouched) and the caller's hidden hooks are re-attached
to the clone, so post-processing (INLP, SentDebias, …) stays active during fine-tuning and evaluation as
in bias-bench; the forward pass goes through the model's own hook point. The device is the model's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from benchmarks.glue_encode import mean_pool, pair_batch
from benchmarks.glue_tasks import Split, TaskSpec, choice_predictions
from harness.models.interface import LanguageModel
from harness.progress import progress as progress_bar


@dataclass
class FinetuneSettings:
    epochs: int = 3
    lr: float = 2e-5
    batch_size: int = 32  # examples (COPA: an example is its two choices)
    max_length: int = 128
    eval_batch_size: int = 64
    max_steps: int | None = None  # stop early (tests)
    progress: bool = False


@dataclass
class FinetuneLog:
    steps: int = 0
    losses: list[float] = field(default_factory=list)


class _Classifier(nn.Module):
    def __init__(self, lm: LanguageModel, outputs: int):
        super().__init__()
        self.lm = lm
        self.dropout = nn.Dropout(0.1)
        self.head = nn.Linear(lm.hidden_size, outputs).to(lm.device)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = self.lm.backbone(**batch).last_hidden_state  # hooks applied at the model's hook point
        return self.head(self.dropout(mean_pool(hidden.float(), batch["attention_mask"])))


def _units(spec: TaskSpec, split: Split) -> list[np.ndarray]:
    """Training units: one row, or both rows of a COPA example (choice order kept)."""
    if spec.kind != "choice":
        return [np.array([i]) for i in range(len(split))]
    return [np.flatnonzero(split.groups == g) for g in np.unique(split.groups)]


def _loss(spec: TaskSpec, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    if spec.kind == "regression":
        return nn.functional.mse_loss(logits.squeeze(-1), labels.float())
    if spec.kind == "choice":
        scores = logits.squeeze(-1).view(-1, 2)
        return nn.functional.cross_entropy(scores, labels.view(-1, 2).argmax(-1))
    return nn.functional.cross_entropy(logits, labels.long())


def finetune_predict(lm: LanguageModel, spec: TaskSpec, train: Split, evals: dict[str, Split], *,
                     seed: int, settings: FinetuneSettings) -> tuple[dict[str, np.ndarray], FinetuneLog]:
    """Fine-tune a clone of ``lm`` (hooks kept) on ``train``; predictions per evaluation split."""
    torch.manual_seed(seed)
    model = lm.clone()
    for hook in lm.hooks:
        model.add_hidden_hook(hook)
    outputs = 1 if spec.kind in ("regression", "choice") else len(spec.classes)
    clf = _Classifier(model, outputs)
    params = [p for p in model.backbone.parameters() if p.requires_grad] + list(clf.head.parameters())
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=0.0)
    units = _units(spec, train)
    per_epoch = math.ceil(len(units) / settings.batch_size)
    total = per_epoch * settings.epochs if settings.max_steps is None else min(settings.max_steps,
                                                                              per_epoch * settings.epochs)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1 - step / max(total, 1)))
    rng = np.random.default_rng(seed)
    log = FinetuneLog()
    model.model.train()
    try:
        bar = progress_bar(range(total), settings.progress, f"fine-tuning {spec.name}")
        steps = iter(bar)
        for _ in range(settings.epochs):
            order = rng.permutation(len(units))
            for start in range(0, len(order), settings.batch_size):
                if log.steps >= total:
                    break
                rows = np.concatenate([units[u] for u in order[start:start + settings.batch_size]])
                part = train.take(rows)
                batch = pair_batch(model, part.first, part.second, settings.max_length)
                labels = torch.as_tensor(part.labels, device=model.device)
                loss = _loss(spec, clf(batch), labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                scheduler.step()
                log.steps += 1
                log.losses.append(float(loss.detach()))
                next(steps, None)
        model.model.eval()
        clf.eval()
        return {name: _predict(spec, clf, split, settings) for name, split in evals.items()}, log
    finally:
        del clf, model, optimizer


@torch.no_grad()
def _predict(spec: TaskSpec, clf: _Classifier, split: Split, settings: FinetuneSettings) -> np.ndarray:
    order = sorted(range(len(split)), key=lambda i: -(len(split.first[i]) + len(split.second[i] or "")))
    out = np.empty((len(split), 1 if spec.kind in ("regression", "choice") else len(spec.classes)))
    for start in range(0, len(order), settings.eval_batch_size):
        idx = order[start:start + settings.eval_batch_size]
        part = split.take(np.array(idx))
        out[idx] = clf(pair_batch(clf.lm, part.first, part.second, settings.max_length)).float().cpu().numpy()
    if spec.kind == "regression":
        return out[:, 0]
    if spec.kind == "choice":
        return choice_predictions(out[:, 0], split.groups)
    return out.argmax(1).astype(np.int64)
