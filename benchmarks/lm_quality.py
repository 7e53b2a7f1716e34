"""Language-modelling quality on held-out English text (the corpus split fixed by the data catalog).

* masked LM: a seeded 15% of each sentence's tokens (at least one) are replaced by ``[MASK]`` at once;
  metrics are top-1 / top-5 accuracy of the original token and the pseudo-perplexity
  :math:`\\exp(-\\frac{1}{N}\\sum \\log p(w_i \\mid \\tilde{s}))` over masked tokens;
* causal LM: every token is predicted from its prefix (the first from the end-of-text/BOS token);
  metrics are next-token top-1 / top-5 accuracy and perplexity.

Accuracy CIs are a bootstrap over sentences. Hooks on the final hidden state are active, so a
post-processing method's cost in language modelling shows here.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from harness.api import Benchmark, BenchmarkResult, RunContext, Score
from harness.data.corpus import load_documents, sentence_pool, split_documents
from harness.models.interface import LanguageModel
from harness.options import Option
from harness.progress import progress
from harness.registry import register_benchmark
from harness.stats import bootstrap_ratio


@register_benchmark("lm-quality")
class LMQuality(Benchmark):
    datasets = ("corpus-en",)
    # max_length ≥ 2: causal LMs score max_length - 1 tokens after the BOS token
    options_spec = {"n_sentences": Option(int, 1000, minimum=1),
                    "mask_fraction": Option(float, 0.15, above=0, maximum=1),
                    "max_length": Option(int, 128, minimum=2), "resamples": Option(int, 1000, minimum=1)}
    headline = ("accuracy", "perplexity")

    def sentences(self, ctx: RunContext) -> list[str]:
        _, heldout = split_documents(load_documents(ctx.data("corpus-en")))
        pool = sentence_pool(heldout)
        rng = np.random.default_rng(12345)  # the evaluation set is fixed, independent of the run seed
        chosen = rng.choice(len(pool), size=min(self.options["n_sentences"], len(pool)), replace=False)
        return [pool[i] for i in sorted(chosen)]

    def run(self, lm: LanguageModel, ctx: RunContext) -> BenchmarkResult:
        texts = self.sentences(ctx)
        per_sentence = (self._masked if lm.kind == "masked" else self._causal)(lm, texts, ctx)
        hits1, hits5, nll, counts = (np.array(col) for col in zip(*per_sentence))
        opts = dict(resamples=self.options["resamples"], seed=ctx.seed)
        scores = {
            "accuracy": bootstrap_ratio(hits1, counts, scale=100.0, **opts),
            "top5_accuracy": bootstrap_ratio(hits5, counts, scale=100.0, **opts),
            "perplexity": Score(float(math.exp(nll.sum() / counts.sum())), n=int(counts.sum())),
        }
        return BenchmarkResult(scores, details={"sentences": len(texts), "tokens_scored": int(counts.sum()),
                                                "objective": "masked" if lm.kind == "masked" else "next-token"})

    # Each helper returns, per sentence: (#top-1 hits, #top-5 hits, summed NLL, #scored tokens).
    def _masked(self, lm: LanguageModel, texts: list[str], ctx: RunContext):
        tok = lm.tokenizer
        special = set(tok.all_special_ids)
        results = [None] * len(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in progress(range(0, len(order), ctx.batch_size), ctx.progress, "lm-quality"):
            idx = order[start:start + ctx.batch_size]
            batch = lm.tokenize([texts[i] for i in idx], max_length=self.options["max_length"])
            ids, mask = batch["input_ids"], batch["attention_mask"]
            masked = ids.clone()
            rows, cols = [], []
            for r, i in enumerate(idx):
                candidates = [c for c in range(ids.shape[1]) if mask[r, c] and int(ids[r, c]) not in special]
                rng = np.random.default_rng([ctx.seed, i])
                k = max(1, round(self.options["mask_fraction"] * len(candidates)))
                for c in sorted(rng.choice(candidates, size=min(k, len(candidates)), replace=False)):
                    rows.append(r)
                    cols.append(int(c))
            rows_t, cols_t = torch.tensor(rows), torch.tensor(cols)
            masked[rows_t, cols_t] = tok.mask_token_id
            logp = lm.token_log_probs(masked, mask, positions=(rows_t, cols_t))
            self._collect(results, idx, rows_t, logp, ids[rows_t, cols_t])
        return results

    def _causal(self, lm: LanguageModel, texts: list[str], ctx: RunContext):
        results = [None] * len(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in progress(range(0, len(order), ctx.batch_size), ctx.progress, "lm-quality"):
            idx = order[start:start + ctx.batch_size]
            batch = lm.tokenize([texts[i] for i in idx], max_length=self.options["max_length"] - 1,
                                add_special_tokens=False)
            ids = torch.cat([torch.full_like(batch["input_ids"][:, :1], lm.start_token_id), batch["input_ids"]], 1)
            mask = torch.cat([torch.ones_like(batch["attention_mask"][:, :1]), batch["attention_mask"]], 1)
            rows_t, cols_t = (mask[:, 1:] > 0).nonzero(as_tuple=True)  # predict token t+1 from position t
            logp = lm.token_log_probs(ids, mask, positions=(rows_t, cols_t))
            self._collect(results, idx, rows_t, logp, ids[rows_t, cols_t + 1])
        return results

    @staticmethod
    def _collect(results, idx, rows, logp, targets):
        target_logp = logp.gather(1, targets[:, None]).squeeze(1)
        top5 = logp.topk(5, dim=-1).indices
        hit1 = (top5[:, 0] == targets).double()
        hit5 = (top5 == targets[:, None]).any(1).double()
        for r, i in enumerate(idx):
            sel = rows == r
            results[i] = (float(hit1[sel].sum()), float(hit5[sel].sum()), float(-target_logp[sel].sum()),
                          int(sel.sum()))
