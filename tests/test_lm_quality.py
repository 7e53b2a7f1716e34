"""lm-quality against a straightforward, unbatched computation on the real models."""

from __future__ import annotations

import math

import numpy as np
import torch

from benchmarks.lm_quality import LMQuality
from harness.api import RunContext


def _unbatched_causal(lm, texts):
    hits, nll, count = 0, 0.0, 0
    for text in texts:
        ids = lm.tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
        ids = torch.cat([torch.tensor([[lm.start_token_id]]), ids], 1)
        with torch.no_grad():
            logp = torch.log_softmax(lm.model(input_ids=ids).logits[0, :-1].float(), -1)
        target = ids[0, 1:]
        nll -= logp.gather(1, target[:, None]).sum().item()
        hits += (logp.argmax(-1) == target).sum().item()
        count += len(target)
    return 100 * hits / count, math.exp(nll / count)


def _run_small(lm, seed):
    bench = LMQuality(n_sentences=12, resamples=50)
    ctx = RunContext(seed=seed, batch_size=5, progress=False)
    with torch.no_grad():
        return bench.sentences(ctx), bench.run(lm, ctx)


def test_causal_scores_equal_unbatched_reference(smollm2, mirror):
    texts, result = _run_small(smollm2, seed=0)
    accuracy, perplexity = _unbatched_causal(smollm2, texts)
    assert abs(result.scores["accuracy"].value - accuracy) < 1e-6
    assert abs(result.scores["perplexity"].value - perplexity) / perplexity < 1e-4
    assert 10 < perplexity < 500


def test_masked_scores_equal_unbatched_reference(bert_tiny, mirror):
    texts, result = _run_small(bert_tiny, seed=3)
    tok = bert_tiny.tokenizer
    hits = hits5 = count = 0
    nll = 0.0
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for i in order:
        ids = tok(texts[i], return_tensors="pt", truncation=True, max_length=128).input_ids
        candidates = [c for c in range(ids.shape[1]) if int(ids[0, c]) not in tok.all_special_ids]
        rng = np.random.default_rng([3, i])
        k = max(1, round(0.15 * len(candidates)))
        positions = sorted(rng.choice(candidates, size=k, replace=False))
        masked = ids.clone()
        masked[0, positions] = tok.mask_token_id
        with torch.no_grad():
            logp = torch.log_softmax(bert_tiny.model(input_ids=masked).logits[0].float(), -1)
        for p in positions:
            target = ids[0, p]
            nll -= logp[p, target].item()
            hits += int(logp[p].argmax() == target)
            hits5 += int(target in logp[p].topk(5).indices)
            count += 1
    assert result.details["tokens_scored"] == count
    assert abs(result.scores["accuracy"].value - 100 * hits / count) < 1e-6
    assert abs(result.scores["top5_accuracy"].value - 100 * hits5 / count) < 1e-6
    assert abs(result.scores["perplexity"].value - math.exp(nll / count)) / math.exp(nll / count) < 1e-4


def test_evaluation_sentences_come_from_the_heldout_split(mirror):
    from harness.data.corpus import is_heldout, load_documents

    texts = LMQuality(n_sentences=50).sentences(RunContext(progress=False))
    heldout_docs = [d for d in load_documents() if is_heldout(d)]
    assert len(texts) == 50
    assert all(any(t in d for d in heldout_docs) for t in texts[:10])
