"""SentDebias (Liang et al., ACL 2020), in bias-bench's version (Meade et al. 2022).

Corpus sentences with attribute words and their counterfactual versions (one per class: every attribute
word mapped to that class, casing kept; :func:`harness.attribute_data.counterfactual_sets`) are encoded
as the attention-masked mean of the last hidden state (truncated at 128 tokens as bias-bench) and
L2-normalised. Each tuple is centred on its own mean, and PCA of all centred vectors gives the bias
subspace :math:`V` (rows orthonormal; bias-bench keeps 1 component for every bias type). The hook removes
it from every token's final hidden state:

.. math:: h' = h - V^\\top V h = (I - V^\\top V)\\, h .

Protocols: ``full`` = every attribute-bearing sentence of the corpus' training side (bias-bench: all of
its Wikipedia sample); ``cpu`` = 2,000 sentences.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from harness.api import PostProcessingMethod, RunContext
from harness.attribute_data import cached_hook, counterfactual_sets, encode
from harness.hooks import AffineHook
from harness.models.interface import LanguageModel
from harness.options import Option
from harness.registry import register_method

PROTOCOL_SETTINGS = {"full": {"n_examples": None}, "cpu": {"n_examples": 2000}}
MAX_LENGTH = 128  # bias-bench encodes SentDebias sentences with max_length=128


def bias_subspace(versions: list[np.ndarray], n_components: int) -> tuple[np.ndarray, list[float]]:
    """Top principal directions [k, H] of the per-tuple-centred, L2-normalised encodings, with their
    explained-variance ratios. ``versions[c]`` holds class c's encodings [N, H] (row i = tuple i)."""
    from sklearn.decomposition import PCA

    normalised = [v / np.linalg.norm(v, axis=1, keepdims=True) for v in versions]
    means = sum(normalised) / len(normalised)
    centred = np.concatenate([v - means for v in normalised])
    pca = PCA(n_components=n_components).fit(centred)
    return pca.components_, [float(r) for r in pca.explained_variance_ratio_]


@register_method("sentdebias")
class SentDebias(PostProcessingMethod):
    """SentDebias: remove the counterfactual pairs' principal bias direction (Liang et al. 2020; bias-bench).

    Options: ``n_examples`` (None = the protocol's value; 0 = all sentences), ``n_components``."""

    version = 1
    acts_on = "representations"
    options_spec = {"n_examples": Option(int, None, minimum=0, allow_none=True),
                    "n_components": Option(int, 1, minimum=1)}

    def settings(self, ctx: RunContext) -> dict[str, Any]:
        protocol = ctx.method_protocol
        n = self.options["n_examples"]
        n = PROTOCOL_SETTINGS[protocol]["n_examples"] if n is None else (None if n == 0 else int(n))
        return {"protocol": protocol, "n_examples": n, "n_components": int(self.options["n_components"])}

    def fit(self, lm: LanguageModel, ctx: RunContext) -> AffineHook:
        settings = self.settings(ctx)
        hook, self.notes = cached_hook(ctx.step_cache, lambda: self._fit(lm, ctx, settings))
        return hook

    def _fit(self, lm: LanguageModel, ctx: RunContext, settings: dict[str, Any]) -> tuple[AffineHook, dict]:
        started = time.perf_counter()
        data = counterfactual_sets(ctx.bias_type, settings["n_examples"], ctx.seed)
        versions = []
        for c in range(len(data.class_names)):
            texts = [t[c] for t in data.tuples]
            versions.append(encode(lm, texts, ctx, max_length=MAX_LENGTH).double().numpy())
        directions, explained = bias_subspace(versions, settings["n_components"])
        matrix = np.eye(directions.shape[1]) - directions.T @ directions
        notes = {**settings, "n_tuples": len(data.tuples), "classes": list(data.class_names),
                 "explained_variance_ratio": explained, "fit_seconds": round(time.perf_counter() - started, 2)}
        return AffineHook(torch.from_numpy(matrix)), notes
