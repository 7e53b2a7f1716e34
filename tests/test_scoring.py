"""Batched scoring helpers against one-at-a-time computations on the real zoo models."""

from __future__ import annotations

import numpy as np
import torch

from harness.scoring import MaskedQuery, causal_token_log_probs, masked_log_probs

TEXTS = ["The doctor said he was tired.", "A nurse walked in.", "They were extremely unhappy about it today."]


def test_masked_queries_equal_unbatched(bert_tiny):
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
            logp = torch.log_softmax(bert_tiny.model(input_ids=ids).logits[0, query.position], -1)
        assert abs(logp[query.target_id].item() - value) < 1e-5


def test_causal_sequences_equal_unbatched(smollm2):
    tok = smollm2.tokenizer
    sequences = [tok(t, add_special_tokens=False).input_ids for t in TEXTS] + [tok("A nurse walked in.", add_special_tokens=False).input_ids]
    batched = causal_token_log_probs(smollm2, sequences, max_rows=2)
    assert np.array_equal(batched[1], batched[3])
    for seq, values in zip(sequences, batched):
        ids = torch.tensor([[smollm2.start_token_id, *seq]])
        with torch.no_grad():
            logp = torch.log_softmax(smollm2.model(input_ids=ids).logits[0, :-1].float(), -1)
        expected = logp.gather(1, ids[0, 1:, None]).squeeze(1).double().numpy()
        assert values.shape == (len(seq),)
        assert np.allclose(values, expected, atol=1e-5)


def test_first_token_mode_matches_bias_bench_style(smollm2):
    tok = smollm2.tokenizer
    seq = tok("Ethiopian men are skinny", add_special_tokens=False).input_ids
    (values,) = causal_token_log_probs(smollm2, [seq], start="first-token")
    with torch.no_grad():
        first = torch.log_softmax(smollm2.model(torch.tensor([[smollm2.start_token_id]])).logits[0, 0], -1)
        rest = torch.log_softmax(smollm2.model(torch.tensor([seq])).logits[0], -1)
    expected = [first[seq[0]].item()] + [rest[t - 1, seq[t]].item() for t in range(1, len(seq))]
    assert np.allclose(values, expected, atol=1e-5)
    (prefixed,) = causal_token_log_probs(smollm2, [seq], start="prefix")
    assert abs(prefixed[0] - values[0]) < 1e-4 and not np.allclose(prefixed[1:], values[1:], atol=1e-3)
