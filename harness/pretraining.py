"""Continued pre-training: one engine for zoo recipes (``zoo:bert-tiny-mlm``), CDA and Dropout.

Objectives follow the models' original pre-training:

* masked LMs — MLM (Devlin et al. 2019): 15 % of the non-special tokens are chosen; of those 80 % become
  ``[MASK]``, 10 % a random token, 10 % stay; the loss is the cross-entropy at the chosen positions only
  (so the vocabulary head runs on ~15 % of the tokens);
* causal LMs — CLM: next-token cross-entropy at every position.

Text is packed the way Hugging Face's ``run_mlm``/``run_clm`` do it: documents are tokenised without
special tokens, joined with the separator (``[SEP]`` / end-of-text) and cut into fixed-length blocks
(masked blocks are wrapped as ``[CLS] … [SEP]``). AdamW with linear warm-up and linear decay, gradient
clipping, no weight decay on biases and LayerNorm. Everything random draws from generators seeded by
``seed``, so the same settings and seed give the same model.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Literal, Sequence

import torch
from torch import nn

from harness.errors import HarnessError
from harness.models.interface import LanguageModel
from harness.progress import progress as progress_bar

Objective = Literal["auto", "mlm", "clm"]


@dataclass
class TrainingSettings:
    """What a continued pre-training run does; a recipe stores exactly this (data, not code)."""

    objective: Objective = "auto"
    steps: int = 600
    batch_size: int = 64
    grad_accumulation: int = 1
    seq_len: int = 128
    lr: float = 5e-4
    warmup_fraction: float = 0.06
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    mlm_probability: float = 0.15
    seed: int = 0
    eval_every: int = 50
    eval_blocks: int = 256
    dropout: dict[str, float] = field(default_factory=dict)  # e.g. {"hidden": 0.2, "attention": 0.15}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "TrainingSettings":
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise HarnessError(f"unknown training setting(s) {', '.join(sorted(unknown))}",
                               f"allowed: {', '.join(cls.__dataclass_fields__)}")
        settings = cls(**raw)
        settings.validate()
        return settings

    def validate(self) -> None:
        positive = {"steps": self.steps, "batch_size": self.batch_size, "seq_len": self.seq_len,
                    "grad_accumulation": self.grad_accumulation, "eval_blocks": self.eval_blocks}
        bad = [k for k, v in positive.items() if not isinstance(v, int) or v < 1]
        if bad or not (0 < self.lr < 1) or not (0 < self.mlm_probability < 1) or not (0 <= self.warmup_fraction < 1):
            raise HarnessError(f"invalid training settings ({', '.join(bad) or 'lr/mlm_probability/warmup_fraction'})",
                               "steps, batch_size, seq_len ≥ 1; 0 < lr < 1; 0 < mlm_probability < 1; 0 ≤ warmup < 1")
        if self.objective not in ("auto", "mlm", "clm"):
            raise HarnessError(f"unknown objective '{self.objective}'", "use auto, mlm or clm")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainingReport:
    settings: dict[str, Any]
    objective: str
    train_blocks: int
    heldout_blocks: int
    log: list[dict[str, float]]
    initial: dict[str, float]
    final: dict[str, float]
    seconds: float
    dropout: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- data -------------------------------------------------------------------------------------------
def pack_blocks(lm: LanguageModel, documents: Sequence[str], seq_len: int, objective: str) -> torch.Tensor:
    """Token blocks [N, seq_len] from ``documents`` (batch-tokenised, joined by the separator, cut)."""
    tok = lm.tokenizer
    ids = lm.token_ids(list(documents), add_special_tokens=False)
    if objective == "mlm":
        if tok.cls_token_id is None or tok.sep_token_id is None or tok.mask_token_id is None:
            raise HarnessError(f"{lm.spec} has no [CLS]/[SEP]/[MASK] token for MLM", "use objective clm")
        separator, body = tok.sep_token_id, seq_len - 2
    else:
        separator, body = lm.start_token_id, seq_len
    stream = torch.tensor([t for doc in ids if doc for t in (*doc, separator)], dtype=torch.long)
    n = len(stream) // body
    if n == 0:
        raise HarnessError(f"corpus too small for one block of {seq_len} tokens", "give more text or a shorter seq_len")
    blocks = stream[: n * body].view(n, body)
    if objective == "mlm":
        cls = torch.full((n, 1), tok.cls_token_id, dtype=torch.long)
        sep = torch.full((n, 1), tok.sep_token_id, dtype=torch.long)
        blocks = torch.cat([cls, blocks, sep], dim=1)
    return blocks


def mask_tokens(blocks: torch.Tensor, lm: LanguageModel, probability: float, generator: torch.Generator,
                replace_all: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking: returns (inputs, chosen) with ``chosen`` the boolean positions that carry the loss.

    ``replace_all`` (evaluation) puts ``[MASK]`` at every chosen position, so held-out accuracy measures
    masked-token prediction only (the 10 % kept tokens would otherwise be trivially right).
    """
    tok = lm.tokenizer
    special = torch.zeros_like(blocks, dtype=torch.bool)
    for token_id in {tok.cls_token_id, tok.sep_token_id, tok.pad_token_id}:
        if token_id is not None:
            special |= blocks == token_id
    draws = torch.rand(blocks.shape, generator=generator)
    chosen = (draws < probability) & ~special
    kind = torch.zeros(blocks.shape) if replace_all else torch.rand(blocks.shape, generator=generator)
    inputs = blocks.clone()
    inputs[chosen & (kind < 0.8)] = tok.mask_token_id
    randomised = chosen & (kind >= 0.8) & (kind < 0.9)
    inputs[randomised] = torch.randint(lm.vocab_size, blocks.shape, generator=generator)[randomised]
    return inputs, chosen


# -- dropout ----------------------------------------------------------------------------------------
_DROPOUT_FIELDS = {"hidden": ("hidden_dropout_prob", "resid_pdrop", "embd_pdrop", "hidden_dropout", "dropout"),
                   "attention": ("attention_probs_dropout_prob", "attn_pdrop", "attention_dropout")}


def _is_attention_dropout(module_name: str) -> bool:
    """Whether an ``nn.Dropout`` drops attention probabilities: BERT/RoBERTa ``…attention.self.dropout``,
    DistilBERT ``…attention.dropout``, GPT-2 ``…attn.attn_dropout`` (their attention kernels read its ``p``).
    Every other dropout module acts on hidden states (embeddings, attention output, feed-forward, residual)."""
    return "attention.self" in module_name or module_name.endswith((".attention.dropout", ".attn_dropout"))


def set_dropout(model: nn.Module, rates: dict[str, float]) -> dict[str, Any]:
    """Raise dropout in the config and in every ``nn.Dropout``/attention module; returns what changed.

    BERT-like models read dropout from modules (hidden) and from the config at forward time (attention);
    Llama-like models only have ``attention_dropout``. Fields the architecture lacks are reported.
    """
    unknown = set(rates) - set(_DROPOUT_FIELDS)
    if unknown:
        raise HarnessError(f"unknown dropout kind(s) {', '.join(sorted(unknown))}", "use 'hidden' and/or 'attention'")
    config, changed, missing = model.config, {}, []
    for kind, rate in rates.items():
        present = [f for f in _DROPOUT_FIELDS[kind] if hasattr(config, f)]
        if not present:
            missing.append(kind)
        for name in present:
            setattr(config, name, float(rate))
            changed[name] = float(rate)
    hidden = rates.get("hidden")
    attention = rates.get("attention")
    for name, module in model.named_modules():
        if isinstance(module, nn.Dropout):
            rate = attention if _is_attention_dropout(name) else hidden
            module.p = float(rate if rate is not None else module.p)
        elif (attention is not None and hasattr(module, "attention_dropout")
              and isinstance(module.attention_dropout, float)):
            module.attention_dropout = float(attention)
        if attention is not None and hasattr(module, "dropout_prob") and isinstance(module.dropout_prob, float):
            module.dropout_prob = float(attention)
    return {"changed": changed, "not_in_architecture": missing}


# -- loss and evaluation ---------------------------------------------------------------------------
def _mlm_outputs(lm: LanguageModel, inputs: torch.Tensor, targets: torch.Tensor,
                 chosen: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    hidden = lm.backbone(input_ids=inputs).last_hidden_state  # packed blocks have no padding
    logits = lm._head(hidden[chosen]).float()
    return logits, targets[chosen]


def _clm_outputs(lm: LanguageModel, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    logits = lm.model(input_ids=inputs).logits[:, :-1].float()
    return logits.reshape(-1, logits.shape[-1]), inputs[:, 1:].reshape(-1)


def batch_loss(lm: LanguageModel, blocks: torch.Tensor, objective: str, probability: float,
               generator: torch.Generator, evaluation: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean loss, logits at the loss positions, their targets) for one batch."""
    if objective == "mlm":
        inputs, chosen = mask_tokens(blocks, lm, probability, generator, replace_all=evaluation)
        logits, targets = _mlm_outputs(lm, inputs.to(lm.device), blocks.to(lm.device), chosen.to(lm.device))
    else:
        logits, targets = _clm_outputs(lm, blocks.to(lm.device))
    return nn.functional.cross_entropy(logits, targets), logits, targets


@torch.no_grad()
def evaluate(lm: LanguageModel, blocks: torch.Tensor, objective: str, probability: float, seed: int,
             batch_size: int = 64) -> dict[str, float]:
    r"""Held-out loss, perplexity, top-1 and top-5 accuracy; the masking is fixed by ``seed``.

    Masked LMs: every chosen position is ``[MASK]`` and the perplexity is :math:`\exp` of the mean
    masked-token cross-entropy; causal LMs: next-token loss at every position.
    """
    was_training = lm.model.training
    lm.model.eval()
    generator = torch.Generator().manual_seed(seed + 7919)
    total_loss, correct, top5, count = 0.0, 0, 0, 0
    for start in range(0, len(blocks), batch_size):
        _, logits, targets = batch_loss(lm, blocks[start:start + batch_size], objective, probability, generator,
                                        evaluation=True)
        total_loss += nn.functional.cross_entropy(logits, targets, reduction="sum").item()
        best = logits.topk(5, dim=-1).indices
        correct += (best[:, 0] == targets).sum().item()
        top5 += (best == targets[:, None]).any(-1).sum().item()
        count += len(targets)
    lm.model.train(was_training)
    loss = total_loss / max(count, 1)
    return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "accuracy": correct / max(count, 1),
            "top5": top5 / max(count, 1), "tokens": count}


def _optimizer(model: nn.Module, settings: TrainingSettings) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 or "norm" in name.lower() else decay).append(param)
    return torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=settings.lr)


def _schedule(settings: TrainingSettings) -> Callable[[int], float]:
    warmup = max(1, int(settings.warmup_fraction * settings.steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (settings.steps - step) / max(1, settings.steps - warmup))
    return factor


def resolve_objective(lm: LanguageModel, objective: Objective) -> str:
    if objective == "auto":
        return "mlm" if lm.kind == "masked" else "clm"
    if objective == "mlm" and lm.kind != "masked":
        raise HarnessError(f"objective mlm needs a masked LM, {lm.spec} is causal", "use objective clm or auto")
    return objective


def continue_pretraining(lm: LanguageModel, train_documents: Sequence[str], heldout_documents: Sequence[str],
                         settings: TrainingSettings, *, progress: bool = True,
                         on_step: Callable[[int, float], None] | None = None) -> TrainingReport:
    """Train ``lm.model`` in place on ``train_documents``; evaluate on ``heldout_documents`` along the way.

    Raises a :class:`HarnessError` (and leaves nothing on disk — the caller saves) if the loss turns NaN.
    """
    settings.validate()
    objective = resolve_objective(lm, settings.objective)
    started = time.perf_counter()
    dropout = set_dropout(lm.model, settings.dropout) if settings.dropout else {}
    torch.manual_seed(settings.seed)
    train = pack_blocks(lm, train_documents, settings.seq_len, objective)
    heldout = pack_blocks(lm, heldout_documents, settings.seq_len, objective)[: settings.eval_blocks]
    initial = evaluate(lm, heldout, objective, settings.mlm_probability, settings.seed)
    log: list[dict[str, float]] = [{"step": 0, **{f"heldout_{k}": v for k, v in initial.items()}}]
    order_gen = torch.Generator().manual_seed(settings.seed)
    mask_gen = torch.Generator().manual_seed(settings.seed + 1)
    optimizer = _optimizer(lm.model, settings)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(settings))
    order, cursor = torch.randperm(len(train), generator=order_gen), 0
    lm.model.train()
    running, running_n = 0.0, 0
    try:
        for step in progress_bar(range(settings.steps), progress, f"training {lm.spec}"):
            optimizer.zero_grad(set_to_none=True)
            for _ in range(settings.grad_accumulation):
                if cursor + settings.batch_size > len(order):
                    order, cursor = torch.randperm(len(train), generator=order_gen), 0
                batch = train[order[cursor:cursor + settings.batch_size]]
                cursor += settings.batch_size
                loss, _, _ = batch_loss(lm, batch, objective, settings.mlm_probability, mask_gen)
                if not torch.isfinite(loss):
                    raise HarnessError(f"training loss became {loss.item()} at step {step} for {lm.spec}",
                                       "lower the learning rate (lr) or check the corpus")
                (loss / settings.grad_accumulation).backward()
                running += loss.item()
                running_n += 1
            nn.utils.clip_grad_norm_(lm.model.parameters(), settings.max_grad_norm)
            optimizer.step()
            scheduler.step()
            if on_step:
                on_step(step, running / max(running_n, 1))
            if (step + 1) % settings.eval_every == 0 or step + 1 == settings.steps:
                metrics = evaluate(lm, heldout, objective, settings.mlm_probability, settings.seed)
                log.append({"step": step + 1, "lr": scheduler.get_last_lr()[0],
                            "train_loss": running / max(running_n, 1),
                            "elapsed_s": round(time.perf_counter() - started, 2),
                            **{f"heldout_{k}": v for k, v in metrics.items()}})
                running, running_n = 0.0, 0
    finally:
        lm.model.eval()
    final = {k.removeprefix("heldout_"): v for k, v in log[-1].items() if k.startswith("heldout_")}
    return TrainingReport(settings.to_dict(), objective, len(train), len(heldout), log, initial, final,
                          round(time.perf_counter() - started, 2), dropout)


# -- protocols ------------------------------------------------------------------------------------
# bias-bench's continued pre-training (CDA, Dropout) per protocol and model kind; method options override them
PROTOCOLS = {
    "full": {"masked": {"corpus": "wikipedia-en", "steps": 2000, "batch_size": 32, "grad_accumulation": 16,
                        "seq_len": 512, "lr": 5e-5},
             "causal": {"corpus": "wikipedia-en", "steps": 2000, "batch_size": 16, "grad_accumulation": 16,
                        "seq_len": 512, "lr": 5e-5}},
    "cpu": {"masked": {"corpus": "corpus-en", "steps": 300, "batch_size": 32, "grad_accumulation": 1,
                       "seq_len": 128, "lr": 1e-4},
            "causal": {"corpus": "corpus-en", "steps": 30, "batch_size": 8, "grad_accumulation": 1,
                       "seq_len": 64, "lr": 5e-5}},
}
TUNABLE = ("corpus", "steps", "batch_size", "grad_accumulation", "seq_len", "lr")


def resolve_training(options: dict, protocol: str, kind: str,
                     extra: dict | None = None) -> tuple[str, TrainingSettings]:
    """(corpus, settings) for ``protocol`` and model ``kind``, with the method's non-null options on top."""
    if protocol not in PROTOCOLS:
        raise HarnessError(f"no training protocol '{protocol}'", f"use one of: {', '.join(PROTOCOLS)}")
    chosen = {**PROTOCOLS[protocol][kind], **{k: options[k] for k in TUNABLE if options.get(k) is not None}}
    corpus = chosen.pop("corpus")
    return corpus, TrainingSettings.from_dict({**chosen, "eval_every": max(1, chosen["steps"] // 5),
                                               "eval_blocks": 64, **(extra or {})})
