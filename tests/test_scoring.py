"""Batched scoring helpers against one-at-a-time float64 computations on the real zoo models.

Scores are fp32; each is checked against the same log-probability from a float64 copy of the model with
the bound of :func:`conftest.log_prob_bound` (fp32 kernels round differently per CPU and per batch shape:
a one-row forward runs matrix-vector kernels, a batch runs blocked matrix products)."""

from __future__ import annotations

import numpy as np
import torch

from conftest import log_prob_bound
from harness.scoring import MaskedQuery, causal_token_log_probs, masked_log_probs

TEXTS = ["The doctor said he was tired.", "A nurse walked in.", "They were extremely unhappy about it today."]


def test_masked_queries_equal_unbatched(bert_tiny, bert_tiny_fp64):
    tok = bert_tiny.tokenizer
    queries = []
    for text in TEXTS:
        ids = tuple(tok(text).input_ids)
        for p in range(1, len(ids) - 1):
            queries.append(MaskedQuery(ids, (p,), p, ids[p]))
            queries.append(MaskedQuery(ids, (p,), p, tok.convert_tokens_to_ids("she")))  # shares the row
        queries.append(MaskedQuery(ids, (1, 2), 2, ids[2]))  # two masks, later one scored
    batched = masked_log_probs(bert_tiny, queries, max_rows=4)
    for query, value in zip(queries, batched):
        ids = torch.tensor([query.masked_input(tok.mask_token_id)])
        with torch.no_grad():
            logits = bert_tiny_fp64(input_ids=ids).logits[0, query.position]
        expected = torch.log_softmax(logits, -1)[query.target_id].item()
        assert abs(expected - value) <= log_prob_bound(logits, bert_tiny_fp64.config), query


def test_causal_sequences_equal_unbatched(smollm2, smollm2_fp64):
    tok = smollm2.tokenizer
    sequences = ([tok(t, add_special_tokens=False).input_ids for t in TEXTS]
                 + [tok("A nurse walked in.", add_special_tokens=False).input_ids])
    batched = causal_token_log_probs(smollm2, sequences, max_rows=2)
    assert np.array_equal(batched[1], batched[3])
    for seq, values in zip(sequences, batched):
        ids = torch.tensor([[smollm2.start_token_id, *seq]])
        with torch.no_grad():
            logits = smollm2_fp64(input_ids=ids).logits[0, :-1]
        expected = torch.log_softmax(logits, -1).gather(1, ids[0, 1:, None]).squeeze(1).numpy()
        assert values.shape == (len(seq),)
        assert np.abs(values - expected).max() <= log_prob_bound(logits, smollm2_fp64.config)


def test_first_token_mode_matches_bias_bench_style(smollm2, smollm2_fp64):
    tok = smollm2.tokenizer
    seq = tok("Ethiopian men are skinny", add_special_tokens=False).input_ids
    (values,) = causal_token_log_probs(smollm2, [seq], start="first-token")
    (prefixed,) = causal_token_log_probs(smollm2, [seq], start="prefix")
    with torch.no_grad():
        first = smollm2_fp64(torch.tensor([[smollm2.start_token_id]])).logits[0, 0]
        rest = smollm2_fp64(torch.tensor([seq])).logits[0]
        with_start = smollm2_fp64(torch.tensor([[smollm2.start_token_id, *seq]])).logits[0]
    bound = log_prob_bound(torch.cat([first[None], rest, with_start]), smollm2_fp64.config)
    # first-token: x_1 from the start token alone, later tokens from the sequence run without it
    expected = [first.log_softmax(-1)[seq[0]].item()] + [rest.log_softmax(-1)[t - 1, seq[t]].item()
                                                         for t in range(1, len(seq))]
    assert np.abs(values - expected).max() <= bound
    # prefix: every token sees the start token
    expected_prefixed = [with_start.log_softmax(-1)[t, seq[t]].item() for t in range(len(seq))]
    assert np.abs(prefixed - expected_prefixed).max() <= bound
    # so both score x_1 alike (each within the bound of one value) and differ on the rest far beyond rounding
    assert abs(prefixed[0] - values[0]) <= 2 * bound and np.abs(prefixed[1:] - values[1:]).max() > 10 * bound
