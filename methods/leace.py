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

from typing import Any

import numpy as np
import torch

from harness.api import RunContext
from harness.erasure import AffineEraser, AttributeErasureMethod
from harness.hooks import AffineHook
from harness.options import Option
from harness.registry import register_method

PROTOCOL_SETTINGS = {"full": {"n_per_class": 10000}, "cpu": {"n_per_class": 2500}}


class LeaceEraser(AffineEraser):
    """LEACE on arrays (computed in float64): ``fit(X, y)`` sets ``projection_`` = :math:`I - LR` and
    ``bias_`` = :math:`LR\\mu` (None without ``affine``). ``n_classes`` (None: the largest label + 1) is the
    width of the one-hot concept; the options are concept-erasure's ``LeaceFitter`` ones."""

    def __init__(self, *, affine: bool = True, constrain_cov_trace: bool = True, n_classes: int | None = None):
        self.affine, self.constrain_cov_trace, self.n_classes = affine, constrain_cov_trace, n_classes

    def fit(self, X: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> "LeaceEraser":
        from concept_erasure import LeaceFitter

        x, labels = torch.as_tensor(X).to(torch.float64), torch.as_tensor(y).long()
        n_classes = self.n_classes or int(labels.max()) + 1
        onehot = torch.nn.functional.one_hot(labels, n_classes).to(torch.float64)
        eraser = LeaceFitter.fit(x, onehot, affine=self.affine, constrain_cov_trace=self.constrain_cov_trace).eraser
        low_rank = eraser.proj_left @ eraser.proj_right  # L R, [H, H]
        self.projection_ = (torch.eye(x.shape[1], dtype=torch.float64) - low_rank).numpy()
        self.bias_ = (low_rank @ eraser.bias).numpy() if eraser.bias is not None else None
        return self


def leace_hook(x: torch.Tensor, labels: torch.Tensor, n_classes: int, **fitter_options: Any) -> AffineHook:
    """The fitted LEACE eraser as one :class:`AffineHook` (computed in float64)."""
    return LeaceEraser(n_classes=n_classes, **fitter_options).fit(x, labels).hook()


@register_method("leace")
class LEACE(AttributeErasureMethod):
    """LEACE: least-squares concept erasure, the full affine eraser (Belrose et al. 2023; concept-erasure).

    Options: ``n_per_class`` (None = the protocol's value), ``affine`` (keep the mean term),
    ``constrain_cov_trace`` (concept-erasure's safeguard against growing variance; default on)."""

    version = 1
    options_spec = {"n_per_class": Option(int, None, minimum=1, allow_none=True), "affine": Option(bool, True),
                    "constrain_cov_trace": Option(bool, True)}
    protocol_settings = PROTOCOL_SETTINGS

    def eraser(self, settings: dict[str, Any], ctx: RunContext) -> LeaceEraser:
        return LeaceEraser(affine=settings["affine"], constrain_cov_trace=settings["constrain_cov_trace"])

    def erased_rows(self, eraser: LeaceEraser, x: np.ndarray, *rows: np.ndarray) -> list[np.ndarray]:
        # the probe sees the float32 hook the model applies, on all rows at once (as version 1's notes were made)
        erased = eraser.hook().apply_to_features(torch.from_numpy(x)).double().numpy()
        return [erased[r] for r in rows]

    def fit_notes(self, eraser: LeaceEraser) -> dict[str, Any]:
        hook = eraser.hook()
        return {"rank_erased": int(torch.linalg.matrix_rank(torch.eye(hook.dim) - hook.matrix.double(), atol=1e-6))}
