"""LEACE: LEAst-squares Concept Erasure (Belrose et al., NeurIPS 2023), with the ``concept-erasure`` package.

Fitted on the same attribute representations as INLP (mean-pooled last hidden state of bias-bench's
attribute sentences, one-hot class labels; :mod:`harness.attribute_data`). The eraser is the affine map

.. math:: r(h) = h - L R\\,(h - \\mu) = (I - L R)\\, h + L R \\mu ,

with :math:`\\mu` the mean representation and :math:`L R` the oblique projection onto the whitened
cross-covariance directions; afterwards the class-conditional means are equal, so no linear classifier
beats a constant one. The hook applies the **full affine eraser** (mean term included) to every token's
final hidden state. The GRADIEND paper's code kept only the projection matrix :math:`I - LR`; with
:math:`\\mu` dropped the class means are still equal but shifted by :math:`-LR\\mu`.

Protocols: ``full`` = 10,000 sentences per class where the corpus allows; ``cpu`` = 2,500. Fitting is
closed-form (one eigendecomposition), so both are cheap once the sentences are encoded.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from harness.api import PostProcessingMethod, RunContext
from harness.attribute_data import (
    attribute_sentences,
    bias_bench_split,
    cached_hook,
    encode,
    majority_rate,
    probe_accuracy,
)
from harness.hooks import AffineHook
from harness.models.interface import LanguageModel
from harness.options import Option
from harness.registry import register_method

PROTOCOL_SETTINGS = {"full": {"n_per_class": 10000}, "cpu": {"n_per_class": 2500}}


def leace_hook(x: torch.Tensor, labels: torch.Tensor, n_classes: int, **fitter_options: Any) -> AffineHook:
    """The fitted LEACE eraser as one :class:`AffineHook` (computed in float64)."""
    from concept_erasure import LeaceFitter

    x = x.to(torch.float64)
    onehot = torch.nn.functional.one_hot(labels.long(), n_classes).to(torch.float64)
    eraser = LeaceFitter.fit(x, onehot, **fitter_options).eraser
    low_rank = eraser.proj_left @ eraser.proj_right  # L R, [H, H]
    bias = low_rank @ eraser.bias if eraser.bias is not None else None
    return AffineHook(torch.eye(x.shape[1], dtype=torch.float64) - low_rank, bias)


@register_method("leace")
class LEACE(PostProcessingMethod):
    """LEACE: least-squares concept erasure, the full affine eraser (Belrose et al. 2023; concept-erasure).

    Options: ``n_per_class`` (None = the protocol's value), ``affine`` (keep the mean term),
    ``constrain_cov_trace`` (concept-erasure's safeguard against growing variance; default on)."""

    version = 1
    acts_on = "representations"
    options_spec = {"n_per_class": Option(int, None, minimum=1, allow_none=True), "affine": Option(bool, True),
                    "constrain_cov_trace": Option(bool, True)}

    def settings(self, ctx: RunContext) -> dict[str, Any]:
        protocol = ctx.method_protocol
        return {"protocol": protocol,
                "n_per_class": int(self.options["n_per_class"] or PROTOCOL_SETTINGS[protocol]["n_per_class"]),
                "affine": bool(self.options["affine"]),
                "constrain_cov_trace": bool(self.options["constrain_cov_trace"])}

    def fit(self, lm: LanguageModel, ctx: RunContext) -> AffineHook:
        settings = self.settings(ctx)
        hook, self.notes = cached_hook(ctx.step_cache, lambda: self._fit(lm, ctx, settings))
        return hook

    def _fit(self, lm: LanguageModel, ctx: RunContext, settings: dict[str, Any]) -> tuple[AffineHook, dict]:
        started = time.perf_counter()
        data = attribute_sentences(ctx.bias_type, settings["n_per_class"], ctx.seed)
        x = encode(lm, data.texts, ctx).double()
        y = np.asarray(data.labels)
        train, dev, test = bias_bench_split(len(y), ctx.seed)
        fit_on = np.concatenate([train, dev])  # closed form: no dev set needed; test stays for the probe
        hook = leace_hook(x[fit_on], torch.from_numpy(y[fit_on]), len(data.class_names),
                          affine=settings["affine"], constrain_cov_trace=settings["constrain_cov_trace"])
        erased = hook.apply_to_features(x).double().numpy()
        xs = x.numpy()
        notes = {**settings, "classes": data.counts(), "n_sentences": len(y),
                 "rank_erased": int(torch.linalg.matrix_rank(torch.eye(hook.dim) - hook.matrix.double(), atol=1e-6)),
                 "majority_rate_test": majority_rate(y[test]),
                 "probe_accuracy_before": probe_accuracy(xs[fit_on], y[fit_on], xs[test], y[test], ctx.seed),
                 "probe_accuracy_after": probe_accuracy(erased[fit_on], y[fit_on], erased[test], y[test], ctx.seed),
                 "fit_seconds": round(time.perf_counter() - started, 2)}
        return hook, notes
