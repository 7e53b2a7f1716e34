"""CDA: counterfactual data augmentation + continued pre-training (Webster et al. 2020; bias-bench).

Protocol (Meade et al. 2022, reused by the GRADIEND paper): keep the corpus sentences that contain an
attribute word of the bias type, add their *two-sided* counterfactuals (every attribute word swapped;
gender pairs swap deterministically, race/religion triples to a random other member), and continue
pre-training on the union with the model's own objective (MLM with 15 % masking / CLM).

``full``: Wikipedia, 2000 steps, effective batch 512 (causal: 256), sequence length 512, lr 5e-5.
``cpu``: the mirrored corpus, a few hundred (masked) / a few dozen (causal) steps with small batches.
"""

from __future__ import annotations

import random

from harness.api import RunContext, WeightChangingMethod
from harness.attributes import AttributeLexicon
from harness.errors import HarnessError
from harness.models.build import corpus_documents, trained_copy
from harness.models.interface import LanguageModel
from harness.options import Option
from harness.pretraining import resolve_training
from harness.registry import register_method

# the continued pre-training settings a method may override (null = the protocol's value; see
# harness.pretraining.PROTOCOLS); the bounds are TrainingSettings.validate's
TRAINING_OPTIONS = {"corpus": Option(str, None, allow_none=True),
                    "steps": Option(int, None, minimum=1, allow_none=True),
                    "batch_size": Option(int, None, minimum=1, allow_none=True),
                    "grad_accumulation": Option(int, None, minimum=1, allow_none=True),
                    "seq_len": Option(int, None, minimum=1, allow_none=True),
                    "lr": Option(float, None, above=0, below=1, allow_none=True)}


def augment(sentences: list[str], lexicon: AttributeLexicon, rng: random.Random) -> list[str]:
    """Two-sided CDA: the attribute-bearing sentences followed by one counterfactual of each."""
    kept = [s for s in sentences if lexicon.contains(s)]
    return kept + [lexicon.swap(s, rng) for s in kept]


@register_method("cda")
class CDA(WeightChangingMethod):
    name = "cda"
    options_spec = TRAINING_OPTIONS

    def apply(self, lm: LanguageModel, ctx: RunContext) -> LanguageModel:
        from harness.data.corpus import sentences

        corpus, settings = resolve_training(self.options, ctx.protocol, lm.kind, {"seed": ctx.seed})
        lexicon = AttributeLexicon.load(ctx.bias_type)
        train_docs, heldout_docs, provenance = corpus_documents(corpus)
        train_sentences = [s for doc in train_docs for s in sentences(doc)]
        augmented = augment(train_sentences, lexicon, random.Random(ctx.seed))
        if not augmented:
            raise HarnessError(f"corpus '{corpus}' has no sentence with a {ctx.bias_type} attribute word",
                               "use a larger corpus or another bias type")
        model, report = trained_copy(lm, augmented, heldout_docs, settings, ctx.step_cache, progress=ctx.progress)
        self.notes = {"protocol": ctx.protocol, "corpus": corpus, "corpus_provenance": provenance,
                      "attribute_sentences": len(augmented) // 2, "augmented_sentences": len(augmented),
                      "training": report}
        return model
