"""INLP: Iterative Nullspace Projection (Ravfogel et al., ACL 2020), bias-bench's protocol (Meade et al. 2022).

Attribute sentences (gender: male / female / neutral; race, religion: any attribute word / none; see
:mod:`harness.attribute_data`) are encoded as the mean-pooled last hidden state
:math:`\\bar h`. Repeatedly a linear SVM (``LinearSVC``, no intercept, ``dual=False``) is trained to
predict the attribute from the projected features, and its row space is added to the removed subspace.
With :math:`P_{R(W_i)}` the projection onto classifier *i*'s row space, the final projection is onto the
intersection of the nullspaces (Ben-Israel's formula, as bias-bench computes it):

.. math:: P = I - P_{R}\\Big(\\sum_i P_{R(W_i)}\\Big),

and each classifier is trained on data projected by the P of the previous iterations. The hook applies
:math:`h' = P h` to every token's final hidden state (an :class:`~harness.hooks.AffineHook`).

Protocols: ``full`` = bias-bench (10,000 sentences per class where the corpus allows, 80 classifiers;
10 for causal LMs as bias-bench's GPT-2); ``cpu`` = 2,500 per class, the same classifier counts, but
stopping once a classifier is at the dev majority rate: 80 rounds of 3 one-vs-rest directions would
remove all 128 dimensions of bert-tiny (P = 0), which bias-bench's 768-dimensional models never reach.

Reproducibility (version 2). bias-bench (``bias_bench/debias/inlp/context_nullspace_projection.py``, after
shauli-ravfogel/nullspace_projection) uses LinearSVC's default ``tol=1e-4``. liblinear's primal Newton solver
then stops wherever the relative gradient first drops below 1e-4, and that point depends on the last bits of
the features and of the BLAS dot products liblinear and numpy call: features encoded with
``ATEN_CPU_CAPABILITY=default`` differ from the AVX2 ones by one fp32 ulp, and ``OPENBLAS_CORETYPE=Haswell``
vs ``SkylakeX`` on the *same* features already changes the third classifier's dev accuracy. Each classifier is
trained on data projected by all earlier ones, so the change compounds, and with ``stop_at_majority`` the
stop (accuracy ≤ majority + 1 point, met by 0.3549 vs 0.3556 around classifier 29) moves by one classifier =
three directions of bert-tiny's 128: measured on zoo:bert-tiny, 29 vs 30 classifiers and projections 0.11
apart (max element) across those settings. Hence:

* the SVMs are solved to ``tol=1e-8`` (:data:`SVM_TOL`): the objective (L2-regularised squared hinge) is
  strongly convex, so its optimum is a smooth function of the data, and solving it to 1e-8 instead of
  stopping at 1e-4 leaves only round-off; the same settings then give the same 30 dev accuracies to the last
  digit and projections within 7e-6 (max element), at about the same cost (liblinear needs ~6 Newton steps);
* dev accuracies are counts of examples, and the stop rule compares those counts, so it flips only if a
  dev example sits within round-off of a decision boundary (the closest measured: 1e-6 relative);
* rank cut-offs (``scipy.linalg.orth``) use ``rcond=1e-10`` (:data:`RANK_RCOND`) instead of the ~3e-14
  default: measured singular-value ratios are ≥ 0.04 (real directions) or ≤ 1e-15 (round-off), so the rank
  never depends on round-off;
* the SVMs and projections run in float64 on one BLAS thread (:func:`~harness.attribute_data.single_threaded`).

Across machines (another CPU builds zoo:bert-tiny-mlm with other weights, so the features themselves differ by
~1e-4) the classifier sequence was the same on four builds (docs/regression-check.md, "INLP across machines"),
but the ``cpu`` stop is a threshold on a count of dev examples and cannot be immune: a build that moves the
deciding classifier's count past the threshold stops one classifier earlier or later. The notes say how close
the call was (``stop_closest_call_dev_examples``), and the cross-machine check names such a flip.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from harness.api import RunContext
from harness.attribute_data import single_threaded
from harness.erasure import AttributeErasureMethod, OrthogonalProjection
from harness.models.interface import LanguageModel
from harness.options import Option
from harness.progress import progress as progress_bar
from harness.registry import register_method

PROTOCOL_SETTINGS = {
    "full": {"n_per_class": 10000, "iterations_masked": 80, "iterations_causal": 10, "stop_at_majority": False},
    "cpu": {"n_per_class": 2500, "iterations_masked": 80, "iterations_causal": 10, "stop_at_majority": True},
}
SVM_TOL = 1e-8  # liblinear's stopping tolerance (bias-bench: the default 1e-4); see the module docstring
SVM_MAX_ITER = 10_000  # Newton steps; ~6 are needed at SVM_TOL on bert-tiny's features
RANK_RCOND = 1e-10  # singular values below this fraction of the largest count as zero


def rowspace_projection(matrix: np.ndarray) -> np.ndarray:
    """Orthogonal projection onto the row space of ``matrix`` (zero for a zero matrix)."""
    from scipy.linalg import orth

    if np.allclose(matrix, 0):
        return np.zeros((matrix.shape[1], matrix.shape[1]))
    basis = orth(matrix.T, rcond=RANK_RCOND)
    return basis @ basis.T


def nullspace_projection(x_train: np.ndarray, y_train: np.ndarray, x_dev: np.ndarray, y_dev: np.ndarray,
                         iterations: int, *, C: float = 1.0, seed: int = 0, stop_at_majority: bool = False,
                         progress: bool = False) -> tuple[np.ndarray, list[float]]:
    """INLP's projection and each classifier's dev accuracy (on the features it was trained on).

    ``stop_at_majority``: stop once a classifier is no better than the dev majority rate + 1 point (its
    row space is then noise, and removing more only destroys information); bias-bench never stops.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    dim = x_train.shape[1]
    majority = np.bincount(y_dev).max() / len(y_dev)
    removed = np.zeros((dim, dim))
    projection = np.eye(dim)
    accuracies: list[float] = []
    for _ in progress_bar(range(iterations), progress, "INLP classifiers"):
        classifier = LinearSVC(fit_intercept=False, class_weight=None, dual=False, C=C, random_state=seed,
                               tol=SVM_TOL, max_iter=SVM_MAX_ITER)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            classifier.fit(x_train @ projection, y_train)  # projection is symmetric
        accuracies.append(float(classifier.score(x_dev @ projection, y_dev)))
        if stop_at_majority and accuracies[-1] <= majority + 0.01:
            break
        removed += rowspace_projection(classifier.coef_)
        projection = np.eye(dim) - rowspace_projection(removed)
    return projection, accuracies


class INLPEraser(OrthogonalProjection):
    """INLP on arrays: ``fit(X, y, eval_set=(X_dev, y_dev))`` sets ``projection_`` (the P above) and
    ``accuracies_`` (each classifier's accuracy on the eval set; the training data when there is none)."""

    uses_eval_set = True

    def __init__(self, iterations: int, *, C: float = 1.0, stop_at_majority: bool = False, seed: int = 0,
                 progress: bool = False):
        self.iterations, self.C, self.stop_at_majority = iterations, C, stop_at_majority
        self.seed, self.progress = seed, progress

    def fit(self, X: np.ndarray, y: np.ndarray, eval_set: tuple[np.ndarray, np.ndarray] | None = None) -> "INLPEraser":
        x_dev, y_dev = eval_set if eval_set is not None else (X, y)
        with single_threaded():
            self.projection_, self.accuracies_ = nullspace_projection(
                X, y, x_dev, y_dev, self.iterations, C=self.C, seed=self.seed, progress=self.progress,
                stop_at_majority=self.stop_at_majority)
        self.dev_size_ = len(y_dev)
        self.dev_majority_ = int(np.bincount(np.asarray(y_dev)).max())
        return self

    @property
    def closest_call_(self) -> float:
        """How many dev examples the closest of the stop rule's decisions lay from its threshold (the fewest
        correct dev predictions by which some classifier's accuracy would have to change for the rule to stop
        elsewhere): what another machine's features must move for INLP to stop after another classifier."""
        threshold = self.dev_majority_ + 0.01 * self.dev_size_  # the rule's majority rate + 1 point, in examples
        return float(min(abs(round(a * self.dev_size_) - threshold) for a in self.accuracies_))


@register_method("inlp")
class INLP(AttributeErasureMethod):
    """INLP: iterative nullspace projection of attribute classifiers (Ravfogel et al. 2020; bias-bench).

    Options: ``n_per_class``, ``iterations`` and ``stop_at_majority`` (None = the protocol's value),
    ``C`` (LinearSVC)."""

    version = 2  # 2: SVMs solved to tol 1e-8, rank cut-off 1e-10 (reproducible across CPUs; see the docstring)
    options_spec = {"n_per_class": Option(int, None, minimum=1, allow_none=True),
                    "iterations": Option(int, None, minimum=1, allow_none=True),
                    "C": Option(float, 1.0, above=0), "stop_at_majority": Option(bool, None, allow_none=True)}

    def settings(self, lm: LanguageModel, ctx: RunContext) -> dict[str, Any]:
        base = PROTOCOL_SETTINGS[ctx.method_protocol]
        iterations = self.options["iterations"] or base[f"iterations_{lm.kind}"]
        return {"protocol": ctx.method_protocol,
                "n_per_class": int(self.options["n_per_class"] or base["n_per_class"]),
                "iterations": int(iterations), "C": float(self.options["C"]),
                "stop_at_majority": bool(base["stop_at_majority"] if self.options["stop_at_majority"] is None
                                         else self.options["stop_at_majority"])}

    def eraser(self, settings: dict[str, Any], ctx: RunContext) -> INLPEraser:
        return INLPEraser(settings["iterations"], C=settings["C"], stop_at_majority=settings["stop_at_majority"],
                          seed=ctx.seed, progress=ctx.progress)

    def fit_notes(self, eraser: INLPEraser) -> dict[str, Any]:
        notes = {"rank_removed": eraser.rank_removed_, "classifiers_trained": len(eraser.accuracies_),
                 "dev_accuracy_first": eraser.accuracies_[0], "dev_accuracy_last": eraser.accuracies_[-1]}
        if eraser.stop_at_majority:
            notes["stop_closest_call_dev_examples"] = round(eraser.closest_call_, 2)
        return notes
