"""Batched token scoring shared by the likelihood benchmarks (StereoSet, CrowS-Pairs, …).

Both helpers take many small requests and answer them with as few forward passes as possible:

* requests are **deduplicated** — masked-LM queries that differ only in the target token (e.g. the three
  sentences of a StereoSet cluster whose candidate is one subword) share one input row;
* rows are **sorted by length** and padded only to the longest row of their batch;
* the LM head runs **only at the positions that are scored**, not at every position.

Hooks on the model's final hidden state are active throughout (everything goes through
:class:`~harness.models.interface.LanguageModel`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch

from harness.models.interface import LanguageModel
from harness.progress import progress as _progress


@dataclass(frozen=True)
class MaskedQuery:
    """log p(``target_id`` at ``position`` | ``input_ids`` with ``masked`` positions set to [MASK])."""

    input_ids: tuple[int, ...]
    masked: tuple[int, ...]
    position: int
    target_id: int

    def masked_input(self, mask_id: int) -> tuple[int, ...]:
        ids = list(self.input_ids)
        for p in self.masked:
            ids[p] = mask_id
        return tuple(ids)


def _batches(lengths: Sequence[int], max_tokens: int, max_rows: int) -> Iterable[list[int]]:
    """Indices sorted by length, cut into batches of at most ``max_rows`` rows and ``max_tokens`` padded tokens."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batch: list[int] = []
    for i in order:
        if batch and (len(batch) + 1 > max_rows or (len(batch) + 1) * lengths[i] > max_tokens):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def _pad(rows: Sequence[Sequence[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        ids[r, :len(row)] = torch.tensor(row, dtype=torch.long)
        mask[r, :len(row)] = 1
    return ids.to(device), mask.to(device)


@torch.no_grad()
def masked_log_probs(lm: LanguageModel, queries: Sequence[MaskedQuery], *, max_rows: int = 512,
                     max_tokens: int = 16384, progress: bool = False, desc: str = "scoring") -> np.ndarray:
    """Answer every :class:`MaskedQuery`; returns log-probabilities (float64) in query order."""
    mask_id = lm.tokenizer.mask_token_id
    if mask_id is None:
        raise ValueError(f"{lm.spec} has no mask token; masked scoring needs a masked LM")
    rows: dict[tuple[int, ...], int] = {}
    asks: list[list[tuple[int, int, int]]] = []  # per row: (query index, position, target)
    for q, query in enumerate(queries):
        key = query.masked_input(mask_id)
        row = rows.setdefault(key, len(rows))
        if row == len(asks):
            asks.append([])
        asks[row].append((q, query.position, query.target_id))
    inputs = list(rows)
    out = np.empty(len(queries), dtype=np.float64)
    pad_id = lm.tokenizer.pad_token_id
    for batch in _progress(list(_batches([len(r) for r in inputs], max_tokens, max_rows)), progress, desc):
        ids, mask = _pad([inputs[b] for b in batch], pad_id, lm.device)
        flat = [(r, q, pos, tgt) for r, b in enumerate(batch) for q, pos, tgt in asks[b]]
        positions = sorted({(r, pos) for r, _, pos, _ in flat})
        where = {p: k for k, p in enumerate(positions)}
        rows_t = torch.tensor([p[0] for p in positions], device=lm.device)
        cols_t = torch.tensor([p[1] for p in positions], device=lm.device)
        picks = torch.tensor([where[(r, pos)] for r, _, pos, _ in flat], device=lm.device)
        targets = torch.tensor([tgt for *_, tgt in flat], device=lm.device)
        if len(flat) == len(positions):  # one target per position: skip the full [N, V] log-softmax
            position_targets = torch.empty_like(targets)
            position_targets[picks] = targets
            values = lm.target_log_probs(ids, mask, (rows_t, cols_t), position_targets)[picks]
        else:
            values = lm.token_log_probs(ids, mask, positions=(rows_t, cols_t))[picks, targets]
        values = values.double().cpu().numpy()
        out[[q for _, q, _, _ in flat]] = values
    return out


@torch.no_grad()
def causal_token_log_probs(lm: LanguageModel, sequences: Sequence[Sequence[int]], *, start: str = "prefix",
                           max_rows: int = 64, max_tokens: int = 8192, progress: bool = False,
                           desc: str = "scoring") -> list[np.ndarray]:
    """Per sequence, log p(token_t | context) for every token (float64 arrays).

    ``start`` says how the first token is conditioned on the start token (end-of-text / BOS):

    * ``"prefix"`` — the start token is prepended, so every token sees it: p(x_t | s, x_<t);
    * ``"first-token"`` — bias-bench's StereoSet protocol: x_1 is scored from the distribution after the
      start token alone, later tokens from the sequence run *without* it: p(x_1 | s), p(x_t | x_<t).
    """
    if start not in ("prefix", "first-token"):
        raise ValueError(f"start must be 'prefix' or 'first-token', not {start!r}")
    start_id = lm.start_token_id
    unique: dict[tuple[int, ...], int] = {}
    for seq in sequences:
        if not seq:
            raise ValueError("cannot score an empty token sequence")
        unique.setdefault(tuple(seq), len(unique))
    inputs = [(start_id, *seq) if start == "prefix" else tuple(seq) for seq in unique]
    first = None
    if start == "first-token":
        ids = torch.tensor([[start_id]], device=lm.device)
        first = lm.token_log_probs(ids, torch.ones_like(ids))[0, 0].double().cpu().numpy()
    answers: list[np.ndarray] = [np.empty(0)] * len(inputs)
    pad_id = lm.tokenizer.pad_token_id
    for batch in _progress(list(_batches([len(r) for r in inputs], max_tokens, max_rows)), progress, desc):
        ids, mask = _pad([inputs[b] for b in batch], pad_id, lm.device)
        rows_t, cols_t = (mask[:, 1:] > 0).nonzero(as_tuple=True)  # position t predicts token t+1
        values = np.empty(0)
        if len(rows_t):
            values = lm.target_log_probs(ids, mask, (rows_t, cols_t), ids[rows_t, cols_t + 1]).double().cpu().numpy()
        rows_np = rows_t.cpu().numpy()
        for r, b in enumerate(batch):
            predicted = values[rows_np == r]
            answers[b] = predicted if first is None else np.concatenate([[first[inputs[b][0]]], predicted])
    return [answers[unique[tuple(seq)]] for seq in sequences]
