"""Encoding GLUE-style inputs: pair tokenisation, pooled features and their on-disk cache.

**Pairs** are encoded the way the tokenizer's pair template does (BERT: ``[CLS] a [SEP] b [SEP]`` with
segment ids 0/1). A tokenizer without a pair template (GPT-2, Llama/SmolLM2: ``tok(a, b)`` is just the
concatenation) gets its end-of-sequence token between the two texts: ``a <eos> b``. Both are truncated
``longest_first`` to ``max_length`` tokens, so a long passage is cut before a short question.

**Pooled features** are the attention-masked mean of the final hidden state (hooks applied),
:math:`\\bar h = \\sum_t m_t h_t / \\sum_t m_t`. When every hidden hook of the model is affine
(:class:`harness.hooks.AffineHook`), :math:`\\overline{A h + c} = A \\bar h + c`, so the features of the
plain model are computed once, cached on disk under ``<cache>/features/<weights identity>/<key>.pt`` —
the key hashes the weights' identity, the encoder settings and every input text — and each
post-processing variant of the same weights applies its hook to the cache. Any other hook is applied
during encoding (nothing cached, since a hook's identity is not known).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import torch

from harness.cache_entry import cached_file
from harness.hooks import linear_hooks
from harness.keys import stable_digest
from harness.models.interface import LanguageModel
from harness.progress import progress as progress_bar
from harness.variants import weights_identity

ENCODER_VERSION = 2  # bump when the input construction or pooling changes
PRECISIONS = ("auto", "float32", "bfloat16")
COMPILE_CHOICES = ("auto", True, False)


def resolve_precision(lm: LanguageModel, precision: str) -> str:
    """``auto``: bfloat16 autocast on a CPU with bf16 matrix units (AMX / AVX512-BF16) for models with
    hidden size ≥ 512 — several times faster there for SmolLM2-135M — else float32 (small models gain nothing,
    and on a GPU float32 is fast enough and exact)."""
    if precision != "auto":
        return precision
    if lm.device.type != "cpu" or lm.hidden_size < 512:
        return "float32"
    try:
        fast = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        fast = False
    return "bfloat16" if fast else "float32"


def resolve_compile(precision: str, choice: str | bool, lm: LanguageModel) -> bool:
    """``auto``: compile the encoder (``torch.compile``, dynamic shapes) on the bfloat16 CPU path only. There the
    un-fused element-wise ops (RMSNorm, rotary, SiLU) cost as much as the matrix products, and fusing them
    roughly halves the encoding time of SmolLM2-135M after a one-off compile of about a minute (cached on
    disk by inductor across processes); small float32 models gain less than the compile costs."""
    if choice != "auto":
        return bool(choice)
    return precision == "bfloat16" and lm.device.type == "cpu"


def has_pair_template(tokenizer) -> bool:
    """True when ``tokenizer(a, b)`` adds special tokens beyond those of a single text (BERT, RoBERTa)."""
    pair = len(tokenizer("a", "b")["input_ids"])
    single = len(tokenizer("a")["input_ids"]) + len(tokenizer("b", add_special_tokens=False)["input_ids"])
    return pair > single


def _tokenize(lm: LanguageModel, first: Sequence[str], second: Sequence[str | None] | None, max_length: int,
              **kwargs):
    tok = lm.tokenizer
    if second is None or all(s is None for s in second):
        return tok(list(first), truncation=True, max_length=max_length, **kwargs)
    if any(s is None for s in second):
        raise ValueError("a batch mixes single texts and pairs")
    if not has_pair_template(tok):
        sep = tok.eos_token or tok.sep_token
        second = [f"{sep}{s}" for s in second]  # the separator is parsed as its special token id
    return tok(list(first), list(second), truncation="longest_first", max_length=max_length, **kwargs)


def _input_keys(lm: LanguageModel, enc) -> list[str]:
    keep = ["input_ids", "attention_mask"]
    if "token_type_ids" in enc and getattr(lm.model.config, "type_vocab_size", 0) > 1:
        keep.append("token_type_ids")
    return keep


def pair_batch(lm: LanguageModel, first: Sequence[str], second: Sequence[str | None] | None,
               max_length: int) -> dict[str, torch.Tensor]:
    """Right-padded model inputs for single texts (``second`` None) or pairs, on the model's device."""
    enc = _tokenize(lm, first, second, max_length, padding=True, return_tensors="pt")
    return {k: enc[k].to(lm.device) for k in _input_keys(lm, enc)}


def token_budget_batches(lengths: Sequence[int], budget: int, max_rows: int) -> list[list[int]]:
    """Row indices grouped longest first so that rows × the batch's longest row ≤ ``budget`` tokens (and at
    most ``max_rows`` rows): short inputs (CoLA, SST-2) run in large batches, long ones in small batches,
    and padding stays within a batch of similar lengths."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    for i in order:
        current = batches[-1] if batches else None
        if current is None or len(current) >= max_rows or (len(current) + 1) * lengths[current[0]] > budget:
            batches.append([i])
        else:
            current.append(i)
    return batches


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)


def encoder_for(lm: LanguageModel, precision: str) -> LanguageModel:
    """The model that encodes: ``lm`` itself (float32), or a bfloat16 copy of it, made once and kept on
    ``lm`` until :func:`release_encoder` (casting the weights once is what makes bf16 fast on CPU; autocast
    re-casts every weight in every batch). The copy shares ``lm``'s hook list, so hooks apply alike."""
    if precision == "float32":
        return lm
    key = weights_identity(lm)
    cached = getattr(lm, "_glue_bf16", None)
    if cached is None or cached[0] != key:
        copy = lm.clone()
        copy.model.to(torch.bfloat16)
        lm._glue_bf16 = cached = (key, copy)
    cached[1].hooks = lm.hooks
    return cached[1]


def _forward(model: LanguageModel, compiled: bool):
    """The backbone's forward, compiled once per encoder copy when asked and no hook is active (a hook
    is arbitrary Python; the cached-feature path encodes the plain model anyway)."""
    if not compiled or model.hooks:
        return model.backbone
    fn = getattr(model, "_glue_compiled", None)
    if fn is None:
        fn = model._glue_compiled = torch.compile(model.backbone, dynamic=True)
    return fn


def release_encoder(lm: LanguageModel) -> None:
    for attribute in ("_glue_bf16", "_glue_compiled"):
        if hasattr(lm, attribute):
            delattr(lm, attribute)


@torch.no_grad()
def encode(lm: LanguageModel, first: Sequence[str], second: Sequence[str | None] | None, *, max_length: int = 128,
           batch_size: int = 64, precision: str = "float32", compiled: bool = False,
           progress: bool = False) -> torch.Tensor:
    """Pooled final hidden states [N, H] (float32, CPU, hooks active); rows come back in input order.

    Inputs are tokenised once and run in token-budget batches (:func:`token_budget_batches`, budget
    ``batch_size × max_length`` tokens, at most ``8 × batch_size`` rows)."""
    enc = _tokenize(lm, first, second, max_length)
    keys = _input_keys(lm, enc)
    lengths = [len(ids) for ids in enc["input_ids"]]
    batches = token_budget_batches(lengths, batch_size * max_length, 8 * batch_size)
    out = torch.empty(len(first), lm.hidden_size, dtype=torch.float32)
    model = encoder_for(lm, precision)
    forward = _forward(model, compiled)
    was_training = model.model.training
    model.model.eval()
    try:
        for idx in progress_bar(batches, progress, "encoding"):
            rows = lm.tokenizer.pad({k: [enc[k][i] for i in idx] for k in keys}, return_tensors="pt")
            batch = {k: v.to(model.device) for k, v in rows.items()}
            hidden = forward(**batch).last_hidden_state
            out[idx] = mean_pool(hidden.float(), batch["attention_mask"]).cpu()
    finally:
        model.model.train(was_training)
    return out


def cache_key(lm: LanguageModel, first: Sequence[str], second: Sequence[str | None] | None, *,
              max_length: int, precision: str, compiled: bool = False) -> str:
    digest = stable_digest({"weights": weights_identity(lm), "max_length": max_length,
                            "precision": precision, **({"compiled": True} if compiled else {}),
                            "encoder": ENCODER_VERSION, "pooling": "mean", "n": len(first)})
    for i, text in enumerate(first):
        digest.update(text.encode("utf-8", "surrogatepass") + b"\x00")
        other = None if second is None else second[i]
        digest.update(b"\x01" if other is None else other.encode("utf-8", "surrogatepass") + b"\x00")
    return digest.hexdigest()[:24]


def features(lm: LanguageModel, first: Sequence[str], second: Sequence[str | None] | None, *,
             cache_dir: Path | None, max_length: int = 128, batch_size: int = 64, precision: str = "float32",
             compiled: bool = False, progress: bool = False) -> tuple[torch.Tensor, str]:
    """Pooled features with the model's hooks applied, and how they were obtained
    (``"cached"``/``"encoded"`` plain features + affine hook, or ``"encoded-with-hooks"``)."""
    hooks = list(lm.hooks)
    combined = linear_hooks(hooks) if hooks else None
    settings = dict(max_length=max_length, batch_size=batch_size, precision=precision, compiled=compiled,
                    progress=progress)
    if hooks and combined is None:
        return encode(lm, first, second, **settings), "encoded-with-hooks"
    if cache_dir is None:
        return _plain_then_hook(lm, hooks, combined, settings, first, second), "encoded"
    key = cache_key(lm, first, second, max_length=max_length, precision=precision, compiled=compiled)
    path = Path(cache_dir) / "features" / weights_identity(lm) / f"{key}.pt"

    def build() -> bytes:
        buffer = io.BytesIO()
        torch.save(_plain(lm, hooks, settings, first, second), buffer)
        return buffer.getvalue()

    def decode(data: bytes) -> torch.Tensor:
        plain = torch.load(io.BytesIO(data), weights_only=True)
        if tuple(plain.shape) != (len(first), lm.hidden_size):
            raise ValueError(f"features of shape {tuple(plain.shape)}, expected {(len(first), lm.hidden_size)}")
        return plain

    plain, hit = cached_file(path, build, decode)  # checksummed; built once when processes share the cache
    return (plain if combined is None else combined.apply_to_features(plain)), "cached" if hit else "encoded"


def _plain(lm: LanguageModel, hooks: list, settings: dict, first, second) -> torch.Tensor:
    """The plain model's features (the hooks are applied afterwards, exactly)."""
    lm.hooks.clear()
    try:
        return encode(lm, first, second, **settings)
    finally:
        lm.hooks.extend(hooks)


def _plain_then_hook(lm: LanguageModel, hooks: list, combined, settings: dict, first, second) -> torch.Tensor:
    plain = _plain(lm, hooks, settings, first, second)
    return plain if combined is None else combined.apply_to_features(plain)
