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

from typing import Any

import numpy as np

from harness.api import RunContext
from harness.erasure import CounterfactualErasureMethod, OrthogonalProjection
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


class SentDebiasEraser(OrthogonalProjection):
    """SentDebias on arrays: ``fit(X, y)`` with the counterfactual versions stacked class by class (row
    ``c·N + i`` = tuple i's version of class c, ``y`` = c) sets ``components_`` (:math:`V`),
    ``explained_variance_ratio_`` and ``projection_`` (:math:`I - V^\\top V`)."""

    def __init__(self, n_components: int = 1):
        self.n_components = n_components

    def fit(self, X: np.ndarray, y: np.ndarray) -> "SentDebiasEraser":
        y = np.asarray(y)
        versions = [X[y == c] for c in range(int(y.max()) + 1)]
        if len({len(v) for v in versions}) != 1:
            raise ValueError(f"every class needs one version of each tuple, got {[len(v) for v in versions]} rows")
        self.components_, self.explained_variance_ratio_ = bias_subspace(versions, self.n_components)
        self.projection_ = np.eye(self.components_.shape[1]) - self.components_.T @ self.components_
        return self


@register_method("sentdebias")
class SentDebias(CounterfactualErasureMethod):
    """SentDebias: remove the counterfactual pairs' principal bias direction (Liang et al. 2020; bias-bench).

    Options: ``n_examples`` (None = the protocol's value; 0 = all sentences), ``n_components``."""

    version = 1
    max_length = MAX_LENGTH
    options_spec = {"n_examples": Option(int, None, minimum=0, allow_none=True),
                    "n_components": Option(int, 1, minimum=1)}

    def settings(self, lm: LanguageModel, ctx: RunContext) -> dict[str, Any]:
        protocol = ctx.method_protocol
        n = self.options["n_examples"]
        n = PROTOCOL_SETTINGS[protocol]["n_examples"] if n is None else (None if n == 0 else int(n))
        return {"protocol": protocol, "n_examples": n, "n_components": int(self.options["n_components"])}

    def eraser(self, settings: dict[str, Any], ctx: RunContext) -> SentDebiasEraser:
        return SentDebiasEraser(settings["n_components"])

    def fit_notes(self, eraser: SentDebiasEraser) -> dict[str, Any]:
        return {"explained_variance_ratio": eraser.explained_variance_ratio_}
