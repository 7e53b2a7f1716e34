"""One interface over masked and causal Hugging Face LMs.

Everything else in the project (benchmarks, methods) talks to models through :class:`LanguageModel`:

* ``token_log_probs`` — log-softmax over the vocabulary (float32), optionally only at chosen positions;
* ``final_hidden_states`` / ``pooled`` — last hidden state and its attention-masked mean
  :math:`\\bar h = \\sum_t m_t h_t / \\sum_t m_t`;
* a **hook point** on the final hidden states: post-processing methods (INLP, LEACE, …) register a
  function ``h -> h'`` that is applied to every token's final hidden state before the LM head, so every
  score computed through this class sees the debiased representation;
* ``backbone_parameters`` — named trainable weights (heads, pooler and LM head excluded) for GRADIEND.
"""

from __future__ import annotations

import copy
import fnmatch
import weakref
from pathlib import Path
from typing import Callable, Iterable, Literal, Sequence

import torch
from torch import nn

from harness.errors import HarnessError
from harness.progress import progress as progress_bar

Kind = Literal["masked", "causal"]
HiddenHook = Callable[[torch.Tensor], torch.Tensor]

_HEAD_EXCLUDES = ("pooler", "pooler.*", "*.pooler.*")


class DistilBertHead(nn.Module):
    """DistilBertForMaskedLM's head as one module (it has no head submodule of its own): ``vocab_transform`` →
    activation → ``vocab_layer_norm`` → ``vocab_projector`` (tied to the word embeddings), as its ``forward``.
    Holds the model's own modules, so parameters are shared, not copied."""

    PARTS = ("vocab_transform", "activation", "vocab_layer_norm", "vocab_projector")

    def __init__(self, model: nn.Module):
        super().__init__()
        for name in self.PARTS:
            setattr(self, name, getattr(model, name))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.vocab_projector(self.vocab_layer_norm(self.activation(self.vocab_transform(hidden))))


def configured_tokenizer(tokenizer):
    """``tokenizer`` as :meth:`LanguageModel.tokenize` needs it — a pad token (end-of-text, else unknown, when it
    has none) and right padding, so pooling and positions count from the left. One that already is (every zoo
    model's) is used as it is; otherwise a configured deep copy, so the caller's tokenizer never changes."""
    if tokenizer.pad_token is not None and tokenizer.padding_side == "right":
        return tokenizer
    tokenizer = copy.deepcopy(tokenizer)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    tokenizer.padding_side = "right"
    return tokenizer


class LanguageModel:
    """A loaded model + tokenizer with the project's scoring, pooling, hook and parameter API."""

    def __init__(self, model: nn.Module, tokenizer, kind: Kind, spec: str, origin: dict | None = None):
        if kind not in ("masked", "causal"):
            raise ValueError(f"kind must be 'masked' or 'causal', not {kind!r}")
        self.model = model.eval()
        self.tokenizer = configured_tokenizer(tokenizer)
        self.kind: Kind = kind
        self.spec = spec
        self.origin = dict(origin or {})
        self.hooks: list[HiddenHook] = []
        self.prediction_hooks: list = []  # harness.hooks.PredictionHook, applied to token log-probs
        self._register_hook()

    def _register_hook(self) -> None:
        """The backbone's forward hook reaches this object through a weak reference: a bound method would
        make a cycle (model → hook → self → model), and a dropped model would then keep its weights until
        the cyclic garbage collector happens to run — hundreds of MB for SmolLM2, counted in peak memory."""
        owner = weakref.ref(self)

        def hook(module, inputs, output):
            lm = owner()
            return None if lm is None else lm._apply_hooks(module, inputs, output)

        self._hook_handle = self.backbone.register_forward_hook(hook)

    # -- structure --------------------------------------------------------------------------------
    @property
    def backbone(self) -> nn.Module:
        """The transformer body whose output is the final hidden state (BertModel, LlamaModel, …)."""
        return self.model.base_model

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def vocab_size(self) -> int:
        return int(self.model.get_output_embeddings().weight.shape[0])

    @property
    def start_token_id(self) -> int:
        """Context token that a causal LM's first real token is conditioned on (end-of-text / BOS)."""
        tok = self.tokenizer
        vocab = tok.get_vocab()
        if "<|endoftext|>" in vocab:
            return vocab["<|endoftext|>"]
        for candidate in (tok.bos_token_id, tok.eos_token_id, tok.cls_token_id):
            if candidate is not None:
                return int(candidate)
        raise ValueError(f"{self.spec} has no BOS, end-of-text or CLS token")

    def __repr__(self) -> str:
        return (f"LanguageModel({self.spec!r}, kind={self.kind}, hooks={len(self.hooks)}, "
                f"prediction_hooks={len(self.prediction_hooks)})")

    # -- hook point -------------------------------------------------------------------------------
    def _apply_hooks(self, module, inputs, output):
        if not self.hooks:
            return output
        hidden = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]
        for hook in self.hooks:
            hidden = hook(hidden)
        if hasattr(output, "last_hidden_state"):
            output.last_hidden_state = hidden
            return output
        return (hidden, *output[1:])

    def add_hidden_hook(self, hook: HiddenHook) -> None:
        """Apply ``hook`` to every token's final hidden state from now on (in registration order)."""
        self.hooks.append(hook)

    def clear_hooks(self) -> None:
        self.hooks.clear()
        self.prediction_hooks.clear()

    def add_prediction_hook(self, hook) -> None:
        """Rewrite token log-probabilities from now on (SelfDebias); see :mod:`harness.hooks`."""
        self.prediction_hooks.append(hook)

    def remove_hidden_hook(self, hook: HiddenHook) -> None:
        self.hooks.remove(hook)

    def clone(self) -> "LanguageModel":
        """A deep copy with its own weights (for weight-changing methods); hooks are not copied."""
        self._hook_handle.remove()  # keep the bound hook out of the deep copy
        try:
            model = copy.deepcopy(self.model)
        finally:
            self._register_hook()
        return LanguageModel(model, copy.deepcopy(self.tokenizer), self.kind, self.spec, self.origin)

    # -- tokenisation -----------------------------------------------------------------------------
    def tokenize(self, texts: Sequence[str], *, max_length: int | None = None,
                 add_special_tokens: bool = True) -> dict[str, torch.Tensor]:
        """Right-padded batch (dynamic padding to the longest row), on the model's device."""
        limit = max_length or min(getattr(self.tokenizer, "model_max_length", 512) or 512, 4096)
        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=limit,
                               add_special_tokens=add_special_tokens, return_tensors="pt")
        return {k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}

    def token_ids(self, texts: Sequence[str], *, add_special_tokens: bool = True) -> list[list[int]]:
        """Unpadded, untruncated token ids per text (the fast tokenizer's batch encoder when there is one)."""
        backend = getattr(self.tokenizer, "backend_tokenizer", None) if self.tokenizer.is_fast else None
        if backend is None:
            return self.tokenizer(list(texts), add_special_tokens=add_special_tokens)["input_ids"]
        # transformers leaves padding/truncation switched on in the shared backend after a padded call
        backend.no_padding()
        backend.no_truncation()
        return [e.ids for e in backend.encode_batch(list(texts), add_special_tokens=add_special_tokens)]

    # -- forward passes ---------------------------------------------------------------------------
    def final_hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Final hidden states [B, T, H] with the hooks applied."""
        return self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    @property
    def head(self) -> nn.Module | None:
        """The LM head as one module, final hidden states → vocabulary logits, or None when this class does not
        know the architecture's head (logits then come from the model's own forward).

        BERT: ``cls`` (transform + tied decoder); RoBERTa: ``lm_head`` (dense, GELU, LayerNorm, decoder);
        DistilBERT: its four head modules in :class:`DistilBertHead`; causal LMs: ``lm_head`` (GPT-2, Llama),
        unless the model soft-caps its logits. The output embedding alone is the head of none of the masked LMs."""
        model = self.model
        if self.kind == "masked":
            if hasattr(model, "cls"):
                return model.cls
            if hasattr(model, "lm_head"):
                return model.lm_head
            if all(hasattr(model, n) for n in DistilBertHead.PARTS):
                return DistilBertHead(model)
            return None
        if hasattr(model, "lm_head") and getattr(model.config, "final_logit_softcapping", None) is None:
            return model.lm_head
        return None

    def _head(self, hidden: torch.Tensor) -> torch.Tensor:
        head = self.head
        if head is None:  # MLM training needs the head on its own (ALBERT, ELECTRA, … are not supported)
            raise HarnessError(f"the LM head of {self.spec} ({type(self.model).__name__}) is not known to the harness",
                               "use a model of the BERT, DistilBERT or RoBERTa family, or a causal LM")
        return head(hidden)

    def _has_plain_head(self) -> bool:
        return self.head is not None

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
               positions: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """LM logits [B, T, V], or [N, V] at ``positions`` = (row indices, column indices).

        Computing the head only where it is needed avoids a [B, T, V] tensor (V = 49k for SmolLM2).
        """
        if self._has_plain_head():
            hidden = self.final_hidden_states(input_ids, attention_mask)
            if positions is not None:
                hidden = hidden[positions[0], positions[1]]
            return self._head(hidden)
        full = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        return full if positions is None else full[positions[0], positions[1]]

    def token_log_probs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        positions: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """log p(token | context) over the whole vocabulary, in float32 (rows sum to one after exp).

        Masked LM: the distribution at each position given the (masked) input. Causal LM: row t is the
        distribution of token t+1 given tokens ≤ t.
        """
        log_probs = torch.log_softmax(self.logits(input_ids, attention_mask, positions).float(), dim=-1)
        if not self.prediction_hooks:
            return log_probs
        flat = positions
        if flat is None:  # hooks work on rows at positions; expand to every position and reshape back
            rows, cols = torch.meshgrid(torch.arange(input_ids.shape[0], device=input_ids.device),
                                        torch.arange(input_ids.shape[1], device=input_ids.device), indexing="ij")
            flat = (rows.reshape(-1), cols.reshape(-1))
            log_probs = log_probs.reshape(-1, log_probs.shape[-1])
        for hook in self.prediction_hooks:
            log_probs = hook(self, input_ids, attention_mask, flat, log_probs)
        return log_probs if positions is not None else log_probs.reshape(*input_ids.shape, -1)

    def target_log_probs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                         positions: tuple[torch.Tensor, torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
        """log p(targets[i] at positions[i]) as ``logit[target] − logsumexp(logits)``, float32 [N].

        Equal to ``token_log_probs(...)[i, targets[i]]`` without materialising the [N, V] log-softmax.
        """
        if self.prediction_hooks:
            return self.token_log_probs(input_ids, attention_mask, positions).gather(1, targets[:, None]).squeeze(1)
        logits = self.logits(input_ids, attention_mask, positions).float()
        return logits.gather(1, targets[:, None]).squeeze(1) - torch.logsumexp(logits, dim=-1)

    @torch.no_grad()
    def pooled(self, texts: Sequence[str], *, batch_size: int = 64, normalize: bool = False,
               max_length: int | None = None, progress: bool = False) -> torch.Tensor:
        """Attention-masked mean of the final hidden state per text, [N, H] float32 (hooks applied).

        Texts are processed longest-first so each batch pads to a similar length; the result is in
        input order. ``normalize`` L2-normalises each row (SEAT).
        """
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = torch.empty(len(texts), self.hidden_size, dtype=torch.float32)
        starts = progress_bar(range(0, len(order), batch_size), progress, "encoding")
        for start in starts:
            idx = order[start:start + batch_size]
            batch = self.tokenize([texts[i] for i in idx], max_length=max_length)
            hidden = self.final_hidden_states(**batch).float()
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out[idx] = ((hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)).cpu()
        return torch.nn.functional.normalize(out, dim=-1) if normalize else out

    # -- parameters -------------------------------------------------------------------------------
    def backbone_parameters(self, include: Iterable[str] | None = None,
                            exclude: Iterable[str] | None = None) -> dict[str, nn.Parameter]:
        """Trainable backbone weights by full name; heads, pooler and LM head are not part of the backbone.

        ``include`` / ``exclude`` are fnmatch patterns on the full parameter name
        (e.g. ``include=["*.layer.*"]``, ``exclude=["*LayerNorm*"]``).
        """
        prefix = self.model.base_model_prefix
        include = list(include or ["*"])
        exclude = list(exclude or []) + [f"{prefix}.{p}" for p in _HEAD_EXCLUDES]
        selected = {}
        for name, param in self.model.named_parameters():
            if not name.startswith(prefix + ".") or not param.requires_grad:
                continue
            if any(fnmatch.fnmatchcase(name, p) for p in include) and \
                    not any(fnmatch.fnmatchcase(name, p) for p in exclude):
                selected[name] = param
        return selected

    # -- persistence ------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> None:
        """Save model and tokenizer so ``from_pretrained`` (ours or transformers') loads them."""
        self.model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path, **kwargs) -> "LanguageModel":
        from harness.models.catalog import load_model

        return load_model(str(directory), **kwargs)
