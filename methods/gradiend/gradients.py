"""Factual / counterfactual gradients of a language model at one target position, batched.

For a template rendered for class *c* with factual word f (the class's word, e.g. "she" after a female
name) and counterfactual word f′ (the other class's word), the per-template loss is
ℓ_f = −log p(f | context) at the target position only:

* masked LM: the target slot is replaced by ``[MASK]`` and the head runs only at the mask;
* causal LM: the text is cut just before the target word and the loss is read at the last position;
  the target is the word's **leading-space** token (" she", not "she"), the form the word actually
  takes after the cut (a slot at the very start of the text keeps the bare form);
* instruction-tuned causal LM (Llama-3.2-3B-Instruct, :mod:`methods.gradiend.instruct`): the cut text is the
  user turn of the reference's Llama-3 chat prompt, the loss is read at the prompt's last token (the newline
  after the assistant header) and the target is the **bare** word, the first word of the answer.

One gradient is the mean over a batch of one class (the paper: 32 templates):
∇⁺W = ∇_W mean ℓ_f, ∇⁻W = ∇_W mean ℓ_f′ and ∇±W = ∇⁺W − ∇⁻W. Both losses come from **one** forward;
∇⁺W is one backward and ∇±W = ∇⁺W + ∇(−mean ℓ_f′) a second backward that accumulates into the same
buffer. The selected parameters of a private copy of the model are views into one flat buffer and
so are their ``.grad`` tensors, so a gradient is a single contiguous vector with no per-parameter copies.

The encoder only needs W_e·∇ℓ_i per example, a directional derivative: :meth:`GradientEngine.directional`
computes it for a whole batch with one forward-mode (JVP) pass instead of one backward per example.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch.func import functional_call, jvp

from harness.errors import HarnessError
from harness.memory import release_freed_memory
from harness.models.interface import LanguageModel
from methods.gradiend.instruct import SENTENCE_PROMPT, chat_format

SLOT = "[TARGET]"


@dataclass
class ParamMap:
    """The selected backbone parameters in flat order; ``index`` = kept flat positions after pre-pruning.

    ``index`` lives on the CPU (it is saved in checkpoints and compared across runs); :meth:`index_on` gives it
    on the device of the buffer it indexes (``index_select``/``index_add_`` need both on one device)."""

    names: list[str]
    shapes: list[tuple[int, ...]]
    index: torch.Tensor | None = None
    _moved: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def numels(self) -> list[int]:
        return [int(torch.Size(s).numel()) for s in self.shapes]

    @property
    def total(self) -> int:
        return sum(self.numels)

    @property
    def dim(self) -> int:
        return self.total if self.index is None else int(self.index.numel())

    def index_on(self, device: torch.device) -> torch.Tensor | None:
        """``index`` on ``device`` (pass a tensor's ``.device``): ``index`` itself there, else a copy made once per
        index and device (the map's index is replaced by pre- and post-pruning, which the copy follows)."""
        if self.index is None or self.index.device == device:
            return self.index
        if self._moved is None or self._moved[0] is not self.index or self._moved[1].device != device:
            self._moved = (self.index, self.index.to(device))
        return self._moved[1]

    def offsets(self) -> list[int]:
        out, pos = [], 0
        for n in self.numels:
            out.append(pos)
            pos += n
        return out

    def owner(self, flat_positions: torch.Tensor) -> list[str]:
        """Parameter name of each flat (unpruned) position."""
        bounds = torch.tensor(self.offsets()[1:] + [self.total], device=flat_positions.device)
        return [self.names[i] for i in torch.searchsorted(bounds, flat_positions, right=True).tolist()]

    def to_json(self) -> dict:
        return {"names": self.names, "shapes": [list(s) for s in self.shapes]}


def select_parameters(lm: LanguageModel, include: Sequence[str] | None = None,
                      exclude: Sequence[str] | None = None) -> ParamMap:
    params = lm.backbone_parameters(include, exclude)
    if not params:
        raise HarnessError(f"no backbone parameters of {lm.spec} match include={include} exclude={exclude}",
                           "use fnmatch patterns on full names, e.g. include=['*.layer.*']")
    return ParamMap(list(params), [tuple(p.shape) for p in params.values()])


@dataclass
class TargetBatch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    rows: torch.Tensor
    cols: torch.Tensor
    factual: torch.Tensor
    counterfactual: torch.Tensor


def target_token(lm: LanguageModel, word: str, after_text: bool) -> int:
    """First token of ``word`` as it appears at the target position (leading space for causal LMs)."""
    form = " " + word if (lm.kind == "causal" and after_text) else word
    ids = lm.token_ids([form], add_special_tokens=False)[0]
    if not ids:
        raise HarnessError(f"target word {word!r} has no tokens for {lm.spec}", "choose another target word")
    return ids[0]


def causal_inputs(lm: LanguageModel, texts: Sequence[str], system: str = SENTENCE_PROMPT) -> tuple[list[str], bool]:
    """The strings a causal LM reads for templates with a ``[TARGET]`` slot, and whether they are chat prompts.

    Plain: the text before the slot, right-stripped (the target word brings its own leading space). Chat
    (:func:`methods.gradiend.instruct.chat_format`): the text before the slot as it is — the reference keeps the
    trailing space — as the user turn of the reference's prompt under ``system``."""
    chat = chat_format(lm)
    if chat.used:
        return [chat.wrap(t.split(SLOT)[0], system) for t in texts], True
    return [t.split(SLOT)[0].rstrip() for t in texts], False


def make_batch(lm: LanguageModel, texts: Sequence[str], factual: Sequence[str],
               counterfactual: Sequence[str], *, system: str = SENTENCE_PROMPT) -> TargetBatch:
    """Tokenise rendered templates (``[TARGET]`` slot) into one dynamically padded batch. ``system`` is the
    system prompt of an instruction-tuned model's chat prompt (ignored by every other model)."""
    if any(t.count(SLOT) != 1 for t in texts):
        raise HarnessError("a GRADIEND template must contain exactly one [TARGET] slot", "rebuild the data")
    if lm.kind == "masked":
        inputs = [t.replace(SLOT, lm.tokenizer.mask_token) for t in texts]
        batch = lm.tokenize(inputs)
        rows, cols = (batch["input_ids"] == lm.tokenizer.mask_token_id).nonzero(as_tuple=True)
        if rows.numel() != len(texts):
            raise HarnessError("a template lost its [MASK] to truncation or contains another mask",
                               "shorten the templates")
        after = [True] * len(texts)
    else:
        inputs, chat = causal_inputs(lm, texts, system)
        if chat:  # the prompt brings <|begin_of_text|>; the answer's first word follows a newline: bare form
            ids = lm.token_ids(inputs, add_special_tokens=False)
            after = [False] * len(texts)
        else:
            after = [bool(t) for t in inputs]
            # an empty prefix would have nothing to condition on: start from the BOS / end-of-text token
            ids = [[lm.start_token_id] + seq if not seq or lm.tokenizer.bos_token_id not in seq[:1] and not text
                   else seq for seq, text in zip(lm.token_ids(inputs), inputs)]
        width = max(len(s) for s in ids)
        pad = lm.tokenizer.pad_token_id
        input_ids = torch.tensor([s + [pad] * (width - len(s)) for s in ids])
        attention = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in ids])
        batch = {"input_ids": input_ids.to(lm.device), "attention_mask": attention.to(lm.device)}
        rows = torch.arange(len(texts))
        cols = torch.tensor([len(s) - 1 for s in ids])
    cache: dict[tuple[str, bool], int] = {}

    def tok(word: str, a: bool) -> int:
        if (word, a) not in cache:
            cache[(word, a)] = target_token(lm, word, a)
        return cache[(word, a)]

    f = torch.tensor([tok(w, a) for w, a in zip(factual, after)])
    c = torch.tensor([tok(w, a) for w, a in zip(counterfactual, after)])
    dev = lm.device
    return TargetBatch(batch["input_ids"], batch["attention_mask"], rows.to(dev), cols.to(dev), f.to(dev), c.to(dev))


MICRO_BATCH = 4
MICRO_BATCH_ABOVE = 50_000_000  # parameters


def auto_micro_batch(lm: LanguageModel) -> int | None:
    """Rows per micro-batch: 4 for models above 50M parameters, whole batches for small models (where
    slicing only costs). SmolLM2, batch 32, all weights: activations of one slice (~1.4 MB a token over
    its 30 layers) are what sits on top of the weights, gradients and AdamW state — peak RSS 11.6 GB with
    whole batches, 8.4 GB with 8-row slices, 7.7 GB with 4-row slices (the 8 GB target)."""
    return MICRO_BATCH if sum(p.numel() for p in lm.model.parameters()) > MICRO_BATCH_ABOVE else None


class GradientEngine:
    """A private copy of the model whose selected weights and gradients live in two flat buffers."""

    def __init__(self, lm: LanguageModel, param_map: ParamMap, *, bf16: bool = False,
                 micro_batch: int | None = None):
        self.lm = lm.clone()
        self.micro_batch = micro_batch
        self._second: torch.Tensor | None = None  # ∇⁻W accumulator of the micro-batched path
        self.lm.model.eval()  # no dropout: gradients are deterministic
        self.map = param_map
        self.bf16 = bf16
        named = dict(self.lm.model.named_parameters())
        missing = [n for n in param_map.names if n not in named]
        if missing:
            raise HarnessError(f"parameters {missing[:3]} are not in {lm.spec}", "rebuild the GRADIEND for this model")
        selected = set(param_map.names)
        for name, p in named.items():
            p.requires_grad_(name in selected)  # no gradient work for the heads or excluded weights
        self.params = [named[n] for n in param_map.names]
        with torch.no_grad():
            self.flat = torch.cat([p.detach().reshape(-1) for p in self.params])
        self.grad = torch.zeros_like(self.flat)
        for p, off, n in zip(self.params, param_map.offsets(), param_map.numels):
            p.data = self.flat[off:off + n].view_as(p)
        self._point_grads(self.grad)
        self._grad_ptr = self.grad.data_ptr()
        self._outputs: dict[str, torch.Tensor] = {}  # on the model's device, like every buffer here
        release_freed_memory()  # the clone's per-weight storages, now replaced by views into `flat`

    @property
    def device(self) -> torch.device:
        """The model's device: the weights, gradient buffers and outputs live there (so should the GRADIEND)."""
        return self.flat.device

    # -- losses -------------------------------------------------------------------------------------
    def _autocast(self):
        if self.bf16:
            return torch.autocast(self.lm.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _nll(self, batch: TargetBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row −log p(factual) and −log p(counterfactual) from one forward, head only at the target."""
        with self._autocast():
            logits = self.lm.logits(batch.input_ids, batch.attention_mask, (batch.rows, batch.cols)).float()
        log_z = torch.logsumexp(logits, dim=-1)
        nll_f = log_z - logits.gather(1, batch.factual[:, None]).squeeze(1)
        nll_c = log_z - logits.gather(1, batch.counterfactual[:, None]).squeeze(1)
        return nll_f, nll_c

    def _take(self, key: str, buffer: torch.Tensor | None = None, *, copy: bool = True) -> torch.Tensor:
        """``buffer`` (default: the flat gradient) on the kept positions, checked finite; copied into an output
        buffer reused across calls (fresh allocations each step only fragment the heap), or — with
        ``copy=False`` and nothing pruned — returned itself."""
        if self.grad.data_ptr() != self._grad_ptr or any(p.grad is None for p in self.params[:1]):
            raise RuntimeError("autograd replaced a gradient view; the flat gradient buffer is stale")
        buffer = self.grad if buffer is None else buffer
        if not torch.isfinite(buffer.sum()):  # one reduction: any NaN/inf makes the sum non-finite
            raise HarnessError("a gradient of the language model is not finite (NaN/inf)",
                               "check the model weights, or disable bf16 autocast (option bf16: false)")
        if self.map.index is None and not copy:
            return buffer
        out = self._outputs.get(key)
        if out is None or out.numel() != self.map.dim:
            out = self._outputs[key] = torch.empty(self.map.dim, dtype=buffer.dtype, device=buffer.device)
        if self.map.index is None:
            return out.copy_(buffer)
        return torch.index_select(buffer, 0, self.map.index_on(buffer.device), out=out)

    def gradients(self, batch: TargetBatch, need: tuple[str, ...] = ("factual", "diff")) -> dict[str, torch.Tensor]:
        """Flat gradients (on the kept positions) named in ``need``: factual, counterfactual, diff.

        The returned tensors are buffers that the next call overwrites: use or copy them before then.
        With ``micro_batch`` set, the batch runs in slices of that many rows (same result up to float
        rounding; peak activation memory of one slice instead of the whole batch, which the two backward
        passes would otherwise keep alive together).
        """
        if self.micro_batch and self.micro_batch < batch.input_ids.shape[0]:
            return self._micro_gradients(batch, need)
        nll_f, nll_c = self._nll(batch)
        loss_f, loss_c = nll_f.mean(), nll_c.mean()
        out: dict[str, torch.Tensor] = {}
        self.grad.zero_()
        if "factual" in need or "diff" in need:
            loss_f.backward(retain_graph="diff" in need or "counterfactual" in need)
            if "factual" in need:
                out["factual"] = self._take("factual")
            if "diff" in need:
                (-loss_c).backward(retain_graph="counterfactual" in need)
                out["diff"] = self._take("diff")
                if "counterfactual" in need:
                    out["counterfactual"] = out["factual"] - out["diff"]
        else:
            loss_c.backward()
            out["counterfactual"] = self._take("counterfactual")
        return out

    # -- micro-batches: the same mean gradients with one micro-batch's activations alive at a time -----
    def _point_grads(self, buffer: torch.Tensor) -> None:
        for p, off, n in zip(self.params, self.map.offsets(), self.map.numels):
            p.grad = buffer[off:off + n].view_as(p)

    def _chunks(self, batch: TargetBatch):
        n = batch.input_ids.shape[0]
        for i in range(0, n, self.micro_batch):
            j = min(n, i + self.micro_batch)
            mask = batch.attention_mask[i:j]
            width = int(mask.any(0).nonzero().max()) + 1  # trailing all-padding columns are dropped
            sel = (batch.rows >= i) & (batch.rows < j)
            yield TargetBatch(batch.input_ids[i:j, :width], mask[:, :width], batch.rows[sel] - i, batch.cols[sel],
                              batch.factual[sel], batch.counterfactual[sel])

    def _micro_gradients(self, batch: TargetBatch, need: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """Accumulate ∇⁺W (into the flat gradient) and ∇⁻W (into a second buffer, by pointing the
        parameters' ``.grad`` views at it) over micro-batches, each loss scaled by 1/B so the sums are the
        batch means; ∇±W = ∇⁺W − ∇⁻W is then formed in place in the second buffer."""
        n = batch.input_ids.shape[0]
        want_f = "factual" in need or "diff" in need
        want_c = "counterfactual" in need or "diff" in need
        second = self.grad
        if want_f and want_c:
            if self._second is None:
                self._second = torch.zeros_like(self.flat)
            second = self._second
            second.zero_()
        self.grad.zero_()
        for chunk in self._chunks(batch):
            nll_f, nll_c = self._nll(chunk)
            if want_f:
                (nll_f.sum() / n).backward(retain_graph=want_c)
            if want_c:
                if second is not self.grad:
                    self._point_grads(second)
                try:
                    (nll_c.sum() / n).backward()
                finally:
                    if second is not self.grad:
                        self._point_grads(self.grad)
        out: dict[str, torch.Tensor] = {}
        if "factual" in need:
            out["factual"] = self._take("factual", copy=False)
        if "counterfactual" in need:
            # copied when the buffer becomes ∇±W below
            out["counterfactual"] = self._take("counterfactual", second, copy="diff" in need)
        if "diff" in need:
            out["diff"] = self._take("diff", torch.sub(self.grad, second, out=second), copy=False)
        return out

    def directional(self, batch: TargetBatch, tangent: torch.Tensor) -> torch.Tensor:
        """Per-example ∇ℓ_f,i · v for a flat direction ``v`` on the kept positions (one JVP forward), [B]."""
        full = torch.zeros_like(self.flat)
        if self.map.index is None:
            full.copy_(tangent)
        else:
            full[self.map.index_on(full.device)] = tangent.to(full.device, full.dtype)
        primals = {n: p.detach() for n, p in zip(self.map.names, self.params)}
        tangents = {n: full[o:o + k].view_as(p) for n, p, o, k in
                    zip(self.map.names, self.params, self.map.offsets(), self.map.numels)}
        model = self.lm.model
        prefix = model.base_model_prefix + "."
        tied = self._tied_head_weight()
        head, head_name = self._head_module()

        def loss_rows(weights):
            # the body, then the head only at the target rows; a head tied to the embeddings (BERT,
            # SmolLM2) gets the embedding's dual tensor, so the direction reaches it as in the full model
            body = {n[len(prefix):]: w for n, w in weights.items()}
            inputs = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
            with self._autocast():
                if head is None:  # a head LanguageModel does not know: the whole model, logits at the rows
                    logits = functional_call(model, weights, args=(), strict=False,
                                             kwargs=inputs).logits[batch.rows, batch.cols].float()
                else:
                    hidden = functional_call(model.base_model, body, args=(), strict=False,
                                             kwargs=inputs).last_hidden_state
                    override = {head_name: weights[tied]} if tied in weights and head_name else {}
                    logits = functional_call(head, override, (hidden[batch.rows, batch.cols],), strict=False).float()
            return torch.logsumexp(logits, -1) - logits.gather(1, batch.factual[:, None]).squeeze(1)

        previous = model.config._attn_implementation
        model.set_attn_implementation("eager")  # forward-mode AD is not implemented for the fused kernels
        try:
            _, derivative = jvp(loss_rows, (primals,), (tangents,))
        finally:
            model.set_attn_implementation(previous)
        return derivative.detach()

    def _head_module(self) -> tuple[torch.nn.Module | None, str | None]:
        """The LM head as used by :meth:`LanguageModel.logits` (None: not known, the whole model runs) and the
        name, inside it, of its output-embedding weight (BERT ``predictions.decoder.weight``, RoBERTa
        ``decoder.weight``, DistilBERT ``vocab_projector.weight``, causal LMs ``weight``)."""
        head = self.lm.head
        if head is None:
            return None, None
        weight = self.lm.model.get_output_embeddings().weight
        return head, next((n for n, p in head.named_parameters() if p is weight), None)

    def _tied_head_weight(self) -> str | None:
        """Name of the selected parameter that is also the LM head's weight (tied embeddings), if any."""
        head_weight = self.lm.model.get_output_embeddings().weight
        return next((n for n, p in zip(self.map.names, self.params) if p is head_weight), None)

    @torch.no_grad()
    def nll(self, batch: TargetBatch) -> tuple[torch.Tensor, torch.Tensor]:
        return self._nll(batch)
