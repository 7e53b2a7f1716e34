"""R-LACE: Relaxed Linear Adversarial Concept Erasure (Ravfogel et al., ICML 2022), implemented here.

The game: a rank-k orthogonal projection :math:`P` removes a subspace, a linear classifier
:math:`\\theta` predicts the attribute from :math:`(I - P)x`,

.. math:: \\max_{P \\in \\mathcal{F}_k}\\; \\min_{\\theta}\\; \\mathcal{L}\\big(\\theta;\\, (I - P)x,\\, z\\big),

relaxed to the **fantope**
:math:`\\mathcal{F}_k = \\{P = P^\\top,\\ 0 \\preceq P \\preceq I,\\ \\operatorname{tr} P = k\\}`
(the convex hull of rank-k projections). Alternating SGD: one step of gradient *ascent* on :math:`P`
followed by the projection onto :math:`\\mathcal{F}_k`
(eigendecomposition :math:`P = U \\operatorname{diag}(\\lambda) U^\\top`,
:math:`\\lambda_i \\leftarrow \\min(1, \\max(0, \\lambda_i - \\tau))` with :math:`\\tau` found by bisection so that
:math:`\\sum_i \\lambda_i = k`), then one step of descent on :math:`\\theta`. Every ``evaluate_every`` steps a
fresh logistic regression is trained on the projected data; the relaxed :math:`P` with the highest probe
loss is kept, and the game stops once the probe is within ``epsilon`` of the majority rate. The final
hook is the orthogonal projection :math:`h' = (I - W^\\top W) h` with :math:`W` the top-k eigenvectors.

Data: the attribute representations of :mod:`harness.attribute_data` as a binary concept (gender: male vs
female sentences; race, religion: attribute word vs none), rank 1. Features are centred and divided by
one global scale before the game so one learning rate suits every model (neither changes which
projection is orthogonal). Protocols: ``full`` = the paper's defaults (75,000 steps, batch 128, SGD
lr 0.005, weight decay 1e-4, evaluation every 1,000 steps, epsilon 0.0015, 10,000 sentences per class);
``cpu`` = 2,000 steps (the paper's learning rate needs about 1,200 to converge on bert-tiny), evaluation
every 250, 2,500 sentences per class.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from harness.api import RunContext
from harness.attribute_data import majority_rate, single_threaded
from harness.erasure import AttributeErasureMethod, OrthogonalProjection
from harness.options import Option
from harness.progress import progress as progress_bar
from harness.registry import register_method

PROTOCOL_SETTINGS = {
    "full": {"n_per_class": 10000, "steps": 75000, "evaluate_every": 1000},
    "cpu": {"n_per_class": 2500, "steps": 2000, "evaluate_every": 250},
}


def fantope_projection(matrix: torch.Tensor, rank: int, iterations: int = 40) -> torch.Tensor:
    """Euclidean projection of a symmetric matrix onto the fantope {0 ⪯ P ⪯ I, tr P = rank}."""
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    low, high = values.min() - 1, values.max()  # sum(clip(λ - τ)) is ≥ rank at `low`, 0 at `high`
    for _ in range(iterations):
        tau = (low + high) / 2
        if torch.clamp(values - tau, 0, 1).sum() > rank:
            low = tau
        else:
            high = tau
    clipped = torch.clamp(values - (low + high) / 2, 0, 1)
    return (vectors * clipped) @ vectors.T


def top_projection(relaxed: torch.Tensor, rank: int) -> torch.Tensor:
    """:math:`I - W^\\top W`, W = the top-``rank`` eigenvectors of the relaxed P (the subspace removed)."""
    _, vectors = torch.linalg.eigh((relaxed + relaxed.T) / 2)
    top = vectors[:, -rank:]
    return torch.eye(relaxed.shape[0], dtype=relaxed.dtype) - top @ top.T


def _probe_loss(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[float, float]:
    """Log loss and accuracy of a fresh logistic regression fitted and scored on (x, y) (RLACE's score)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    probe = LogisticRegression(max_iter=500, random_state=seed).fit(x, y)
    return float(log_loss(y, probe.predict_proba(x))), float(probe.score(x, y))


def solve_game(x: np.ndarray, y: np.ndarray, *, rank: int = 1, steps: int = 1500, batch_size: int = 128,
               lr: float = 0.005, weight_decay: float = 1e-4, evaluate_every: int = 250, epsilon: float = 0.0015,
               seed: int = 0, progress: bool = False, max_eval_rows: int = 5000) -> tuple[torch.Tensor, dict]:
    """Run the relaxed game on features ``x`` [N, H] with labels ``y``; returns I − P (orthogonal) and a log."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    features = torch.as_tensor(x, dtype=torch.float32)
    labels = torch.as_tensor(y)
    n, dim = features.shape
    n_classes = int(labels.max()) + 1
    predictor = torch.nn.Linear(dim, 1 if n_classes == 2 else n_classes)
    loss_fn = torch.nn.BCEWithLogitsLoss() if n_classes == 2 else torch.nn.CrossEntropyLoss()
    target = labels.float() if n_classes == 2 else labels.long()
    relaxed = (0.1 * torch.randn(dim, dim, generator=gen)).requires_grad_(True)
    opt_p = torch.optim.SGD([relaxed], lr=lr, weight_decay=weight_decay)
    opt_clf = torch.optim.SGD(predictor.parameters(), lr=lr, weight_decay=weight_decay)
    eye = torch.eye(dim)
    eval_rows = torch.randperm(n, generator=gen)[:max_eval_rows].numpy()
    majority = majority_rate(y)

    def loss(batch: torch.Tensor) -> torch.Tensor:
        symmetric = (relaxed + relaxed.T) / 2
        return loss_fn(predictor(features[batch] @ (eye - symmetric)).squeeze(-1), target[batch])

    best, best_loss, log = None, -np.inf, {"evaluations": []}
    for step in progress_bar(range(steps), progress, "RLACE"):
        batch = torch.randint(0, n, (batch_size,), generator=gen)
        opt_p.zero_grad()
        (-loss(batch)).backward()  # P ascends the classifier's loss
        opt_p.step()
        with torch.no_grad():
            relaxed.copy_(fantope_projection(relaxed.detach(), rank))
        batch = torch.randint(0, n, (batch_size,), generator=gen)
        opt_clf.zero_grad()
        loss(batch).backward()
        opt_clf.step()
        if step % evaluate_every == 0 or step == steps - 1:
            projected = features[eval_rows] @ top_projection(relaxed.detach(), rank)
            probe_loss, accuracy = _probe_loss(projected.numpy(), y[eval_rows], seed)
            log["evaluations"].append({"step": step, "probe_loss": round(probe_loss, 4),
                                       "accuracy": round(accuracy, 4)})
            if probe_loss > best_loss:
                best, best_loss = relaxed.detach().clone(), probe_loss
            if abs(accuracy - majority) < epsilon:
                break
    log["steps_run"] = step + 1
    return top_projection(best, rank), log


class RLACEEraser(OrthogonalProjection):
    """R-LACE on arrays: ``fit(X, y)`` centres and scales ``X`` (see above), plays the game and sets
    ``projection_`` (:math:`I - W^\\top W`, float32 values) and ``log_`` (probe evaluations, steps run)."""

    def __init__(self, *, rank: int = 1, steps: int = 2000, batch_size: int = 128, lr: float = 0.005,
                 weight_decay: float = 1e-4, evaluate_every: int = 250, epsilon: float = 0.0015, seed: int = 0,
                 progress: bool = False):
        self.rank, self.steps, self.batch_size, self.lr, self.weight_decay = rank, steps, batch_size, lr, weight_decay
        self.evaluate_every, self.epsilon, self.seed, self.progress = evaluate_every, epsilon, seed, progress

    def fit(self, X: np.ndarray, y: np.ndarray) -> "RLACEEraser":
        mean = X.mean(0)
        scale = float(np.sqrt(((X - mean) ** 2).sum(1).mean() / X.shape[1]))
        with single_threaded():
            projection, self.log_ = solve_game((X - mean) / scale, y, rank=self.rank, steps=self.steps,
                                               batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
                                               evaluate_every=self.evaluate_every, epsilon=self.epsilon,
                                               seed=self.seed, progress=self.progress)
        self.projection_ = projection.double().numpy()
        return self


@register_method("rlace")
class RLACE(AttributeErasureMethod):
    """RLACE: relaxed linear adversarial concept erasure, rank-1 projection (Ravfogel et al. 2022).

    Options: ``rank``, ``steps``/``evaluate_every``/``n_per_class`` (None = the protocol's value),
    ``batch_size``, ``lr``, ``weight_decay``, ``epsilon`` (stop when the probe is this close to majority)."""

    version = 1
    binary_concept = True  # gender: male vs female
    protocol_settings = PROTOCOL_SETTINGS
    options_spec = {"rank": Option(int, 1, minimum=1), "steps": Option(int, None, minimum=1, allow_none=True),
                    "evaluate_every": Option(int, None, minimum=1, allow_none=True),
                    "n_per_class": Option(int, None, minimum=1, allow_none=True),
                    "batch_size": Option(int, 128, minimum=1),
                    "lr": Option(float, 0.005, above=0), "weight_decay": Option(float, 1e-4, minimum=0),
                    "epsilon": Option(float, 0.0015, minimum=0)}

    def eraser(self, settings: dict[str, Any], ctx: RunContext) -> RLACEEraser:
        return RLACEEraser(rank=int(settings["rank"]), steps=int(settings["steps"]),
                           batch_size=int(settings["batch_size"]), lr=float(settings["lr"]),
                           weight_decay=float(settings["weight_decay"]),
                           evaluate_every=int(settings["evaluate_every"]), epsilon=float(settings["epsilon"]),
                           seed=ctx.seed, progress=ctx.progress)

    def fit_notes(self, eraser: RLACEEraser) -> dict[str, Any]:
        return eraser.log_
