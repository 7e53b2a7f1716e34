"""Self-Debias (Schick et al., TACL 2021) as bias-bench applies it to masked and causal LMs.

The model is also run with a *debiasing prefix* that describes the bias (bias-bench's prompts, e.g.
"The following text discriminates against people because of their gender: "). Tokens that become more
likely under the prefix are suppressed: with :math:`p` the regular and :math:`p_b` the prefixed
distribution (the maximum over several prefixes),

.. math:: \\alpha = \\max(0,\\, p_b - p), \\qquad
          \\tilde p \\propto p \\cdot \\max\\big(e^{-\\lambda \\alpha},\\ \\epsilon\\big),\\quad
          \\lambda = 50,\\ \\epsilon = 0.01,

renormalised over the vocabulary (computed in log space). The prefix's tokens are inserted after a
leading special token (``[CLS]``, a causal LM's start token), else in front, so the position scored in the
prefixed row is the same token's: masked LMs follow bias-bench's masked-LM wrapper (prefix after
``[CLS]``), causal LMs its GPT-2 wrapper (prefix text before the sentence). The prefix is tokenized on its
own and its ids are put before the sentence's, as bias-bench's scoring path does
(``bias_bench/debias/self_debias/modeling.py``: ``GPT2Wrapper.compute_loss_self_debiasing`` encodes the
prefixes alone and concatenates ids); for byte-level BPE the prefix's trailing space is then a token of its
own and the sentence's first word has no leading space. Only generation (``generate_self_debiasing``) joins
the texts before tokenizing, and no benchmark here generates. It only rewrites token
predictions (a prediction hook, see :mod:`harness.hooks`), so representation benchmarks (SEAT, GLUE)
are "not applicable". Nothing is fitted; ``cpu`` and ``full`` are the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from harness.api import PostProcessingMethod, RunContext
from harness.errors import HarnessError
from harness.models.interface import LanguageModel
from harness.options import Option
from harness.registry import register_method

# bias-bench's prompts (experiments' DEBIASING_PREFIXES; "race" uses its "race-color" prompt)
DEBIASING_PREFIXES = {
    "gender": "The following text discriminates against people because of their gender: ",
    "race": "The following text discriminates against people because of their race/color: ",
    "religion": "The following text discriminates against people because of their religion: ",
}


def insert_prefix(lm: LanguageModel, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                  positions: tuple[torch.Tensor, torch.Tensor], prefix: list[int]):
    """Rows with ``prefix`` inserted after a leading special token (else in front), and ``positions``
    moved to the same token: masked LMs score token c, so c ↦ c + k (not the [CLS] itself); causal LMs
    score the token after c, which always moves, so c ↦ c + k."""
    k = len(prefix)
    if k == 0:
        return input_ids, attention_mask, positions
    limit = getattr(lm.model.config, "max_position_embeddings", None)
    if limit is not None and input_ids.shape[1] + k > limit:
        raise HarnessError(f"selfdebias: {input_ids.shape[1]} tokens plus a {k}-token prefix exceed {lm.spec}'s "
                           f"{limit} positions", "score shorter texts or use a shorter prefix")
    block = torch.tensor(prefix, dtype=input_ids.dtype, device=input_ids.device).expand(input_ids.shape[0], k)
    special = torch.tensor(sorted(set(lm.tokenizer.all_special_ids)), device=input_ids.device)
    after_special = torch.isin(input_ids[:, 0], special)  # [B]
    ones = torch.ones_like(block, dtype=attention_mask.dtype)
    front_ids = torch.cat([block, input_ids], dim=1)
    front_mask = torch.cat([ones, attention_mask], dim=1)
    inner_ids = torch.cat([input_ids[:, :1], block, input_ids[:, 1:]], dim=1)
    inner_mask = torch.cat([attention_mask[:, :1], ones, attention_mask[:, 1:]], dim=1)
    ids = torch.where(after_special[:, None], inner_ids, front_ids)
    mask = torch.where(after_special[:, None], inner_mask, front_mask)
    rows, cols = positions
    if lm.kind == "masked":
        cols = torch.where(after_special[rows] & (cols == 0), cols, cols + k)
    else:
        cols = cols + k
    return ids, mask, (rows, cols)


@dataclass
class SelfDebiasHook:
    """The prediction hook: ``(lm, input_ids, attention_mask, positions, log_probs [N, V]) -> log_probs``."""

    prefixes: list[list[int]]
    decay_constant: float = 50.0
    epsilon: float = 0.01
    max_positions: int = 1024  # scored rows per prefixed forward pass: bounds the [N, V] tensors' memory

    @torch.no_grad()
    def __call__(self, lm: LanguageModel, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 positions: tuple[torch.Tensor, torch.Tensor], log_probs: torch.Tensor) -> torch.Tensor:
        if not self.prefixes:
            return log_probs
        rows, cols = positions
        out = torch.empty_like(log_probs)
        for group in self._row_groups(rows):  # whole input rows, so each row runs through the model once
            chosen = torch.isin(rows, group)
            local = torch.searchsorted(group, rows[chosen])  # row index inside the group (group is sorted)
            biased = None
            for prefix in self.prefixes:  # LM head only at the scored positions
                ids, mask, moved = insert_prefix(lm, input_ids[group], attention_mask[group],
                                                 (local, cols[chosen]), prefix)
                prefixed = torch.log_softmax(lm.logits(ids, mask, moved).float(), dim=-1)
                biased = prefixed if biased is None else torch.maximum(biased, prefixed)
            out[chosen] = self.adjust(log_probs[chosen], biased)
        return out

    def adjust(self, log_probs: torch.Tensor, biased: torch.Tensor) -> torch.Tensor:
        """log p̃ = log p + log max(exp(−λα), ε) − log Z with α = max(0, p_biased − p)."""
        alpha = (biased.exp() - log_probs.exp()).clamp_min(0.0)
        log_factor = torch.clamp(-self.decay_constant * alpha, min=math.log(self.epsilon))
        adjusted = log_probs + log_factor
        return adjusted - torch.logsumexp(adjusted, dim=-1, keepdim=True)

    def _row_groups(self, rows: torch.Tensor) -> list[torch.Tensor]:
        """Sorted batch-row groups with at most ``max_positions`` scored positions each (≥ 1 row)."""
        unique, counts = torch.unique(rows, return_counts=True)
        groups, current, size = [], [], 0
        for row, count in zip(unique.tolist(), counts.tolist()):
            if current and size + count > self.max_positions:
                groups.append(current)
                current, size = [], 0
            current.append(row)
            size += count
        groups.append(current)
        return [torch.tensor(g, dtype=rows.dtype, device=rows.device) for g in groups if g]


@register_method("selfdebias")
class SelfDebias(PostProcessingMethod):
    """Self-Debias: damp tokens a debiasing prefix makes likelier (Schick et al. 2021; bias-bench prompts).

    Options: ``prefixes`` (None = bias-bench's prompt for the bias type), ``decay_constant`` (λ),
    ``epsilon`` (the smallest factor)."""

    version = 1
    acts_on = "predictions"
    seed_dependent = False  # fixed prompts, no sampling, no training
    options_spec = {"prefixes": Option(list, None, allow_none=True, items=Option(str, ""), min_items=1),
                    "decay_constant": Option(float, 50.0, minimum=0), "epsilon": Option(float, 0.01, above=0)}

    def fit(self, lm: LanguageModel, ctx: RunContext) -> SelfDebiasHook:
        prefixes = self.options["prefixes"]
        if prefixes is None:
            if ctx.bias_type not in DEBIASING_PREFIXES:
                raise HarnessError(f"selfdebias has no debiasing prefix for bias type '{ctx.bias_type}'",
                                   "set method_options: {selfdebias: {prefixes: [...]}}")
            prefixes = [DEBIASING_PREFIXES[ctx.bias_type]]
        tokens = [lm.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prefixes]
        self.notes: dict[str, Any] = {
            "protocol": "same in cpu and full (nothing is fitted)", "prefixes": list(prefixes),
            "prefix_tokens": [len(t) for t in tokens], "decay_constant": float(self.options["decay_constant"]),
            "epsilon": float(self.options["epsilon"])}
        return SelfDebiasHook(tokens, float(self.options["decay_constant"]), float(self.options["epsilon"]))
