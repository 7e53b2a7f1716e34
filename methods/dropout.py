"""Dropout debiasing: continued pre-training with raised dropout (Webster et al. 2020; bias-bench).

The same engine and protocols as CDA (:data:`harness.pretraining.PROTOCOLS`), on the unaugmented
corpus, with dropout raised to 0.20 on hidden states and 0.15 on attention probabilities for BERT-like
models (bias-bench's values); GPT-2-like models get 0.15 on residual, embedding and attention dropout.
Llama-like models have only attention dropout (0.15): the record lists the kinds the architecture lacks.
"""

from __future__ import annotations

from harness.api import RunContext, WeightChangingMethod
from harness.models.build import corpus_documents, trained_copy
from harness.models.interface import LanguageModel
from harness.options import Option
from harness.pretraining import resolve_training
from harness.registry import register_method
from methods.cda import TRAINING_OPTIONS

RATES = {"masked": {"hidden": 0.20, "attention": 0.15}, "causal": {"hidden": 0.15, "attention": 0.15}}


@register_method("dropout")
class Dropout(WeightChangingMethod):
    name = "dropout"
    options_spec = {**TRAINING_OPTIONS, "hidden_dropout": Option(float, None, minimum=0, below=1, allow_none=True),
                    "attention_dropout": Option(float, None, minimum=0, below=1, allow_none=True)}

    def apply(self, lm: LanguageModel, ctx: RunContext) -> LanguageModel:
        rates = dict(RATES[lm.kind])
        for kind in ("hidden", "attention"):
            if self.options[f"{kind}_dropout"] is not None:
                rates[kind] = float(self.options[f"{kind}_dropout"])
        corpus, settings = resolve_training(self.options, ctx.protocol, lm.kind, {"seed": ctx.seed, "dropout": rates})
        train_docs, heldout_docs, provenance = corpus_documents(corpus)
        model, report = trained_copy(lm, train_docs, heldout_docs, settings, ctx.step_cache, progress=ctx.progress)
        self.notes = {"protocol": ctx.protocol, "corpus": corpus, "corpus_provenance": provenance,
                      "dropout": rates, "training": report}
        return model
