"""Linear probes on frozen pooled features, and the bootstrap over validation examples.

Probe: features are standardised on the training sample, then

* classification — multinomial logistic regression (L2, C = 1, lbfgs);
* regression (STS-B) — ridge regression (α = 1);
* choice (COPA) — a linear scorer :math:`s(x) = w^\\top x` trained on the difference of the two choices'
  features, :math:`P(\\text{choice 1}) = \\sigma(w^\\top(x_1 - x_2))`, which is the two-way softmax over
  the choices' scores of SuperGLUE's baseline; the prediction is the higher-scoring choice.

Bootstrap: the units are validation examples (questions for MultiRC, examples for COPA); each of the
``resamples`` draws the same units for every seed's predictions, so the CI of the seed-averaged score
(and of a suite's mean, which averages the tasks' draws) is a plain percentile interval.

Floor: the best score a constant answer gets on the evaluated examples (:func:`floor_score`), stored beside
every task score so that a score at chance level reads as such.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from benchmarks.glue_tasks import Split, TaskSpec, choice_predictions, metric_fn
from harness.stats import resampled_indices


def sample_rows(split: Split, spec: TaskSpec, limit: int | None, seed: int) -> np.ndarray:
    """At most ``limit`` training examples (whole groups for choice tasks), seeded, in file order."""
    rng = np.random.default_rng(seed)
    if spec.kind == "choice":
        units = np.unique(split.groups)
        if limit is not None and len(units) > limit:
            units = rng.choice(units, size=limit, replace=False)
        return np.flatnonzero(np.isin(split.groups, units))
    if limit is None or len(split) <= limit:
        return np.arange(len(split))
    return np.sort(rng.choice(len(split), size=limit, replace=False))


def _choice_pairs(x: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x_gold − x_other) per group, symmetrised with its negation: targets 1 and 0."""
    diffs = []
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        gold = rows[labels[rows] == 1]
        if len(rows) != 2 or len(gold) != 1:
            continue
        diffs.append(x[gold[0]] - x[rows[rows != gold[0]][0]])
    d = np.asarray(diffs)
    return np.concatenate([d, -d]), np.concatenate([np.ones(len(d)), np.zeros(len(d))])


def fit_probe(spec: TaskSpec, x_train: torch.Tensor, train: Split, evals: dict[str, torch.Tensor],
              eval_splits: dict[str, Split], seed: int) -> dict[str, np.ndarray]:
    """Fit on the training features and return predictions per evaluation split."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.preprocessing import StandardScaler

    x = x_train.double().numpy()
    scaler = StandardScaler().fit(x)
    xs = scaler.transform(x)
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if spec.kind == "regression":
            model = Ridge(alpha=1.0).fit(xs, train.labels)
            for name, feats in evals.items():
                out[name] = model.predict(scaler.transform(feats.double().numpy()))
        elif spec.kind == "choice":
            d, y = _choice_pairs(xs, train.labels, train.groups)
            model = LogisticRegression(C=1.0, max_iter=2000, fit_intercept=False, random_state=seed).fit(d, y)
            for name, feats in evals.items():
                scores = model.decision_function(scaler.transform(feats.double().numpy()))
                out[name] = choice_predictions(scores, eval_splits[name].groups)
        else:
            model = LogisticRegression(C=1.0, max_iter=2000, random_state=seed).fit(xs, train.labels)
            for name, feats in evals.items():
                out[name] = model.predict(scaler.transform(feats.double().numpy())).astype(np.int64)
    return out


def constant_predictions(spec: TaskSpec, evaluate: Split) -> list[np.ndarray]:
    """Every constant answer: each class for every row (STS-B: the mean target), or for choice tasks always
    the first / always the last choice of each example."""
    if spec.kind == "regression":
        return [np.full(len(evaluate), float(evaluate.labels.mean()))]
    if spec.kind == "choice":
        order = np.arange(len(evaluate), dtype=np.float64)  # rows of an example are in choice order
        return [choice_predictions(-order, evaluate.groups), choice_predictions(order, evaluate.groups)]
    return [np.full(len(evaluate), k, dtype=np.int64) for k in range(len(spec.classes))]


def floor_score(spec: TaskSpec, evaluate: Split) -> float:
    """The task's floor: the best score a constant answer gets on the evaluated examples (in [0, 1] like the
    metric). Accuracy: the majority class's share; F1 (MRPC): always "paraphrase", :math:`2p/(1+p)`; MCC and
    Pearson: 0 (a constant has no correlation); CB and MultiRC: the better constant; COPA: the better of always
    the first or always the second choice (≈ chance, 50). Computed from the evaluated labels, so it is the
    same for every protocol and model (the SuperGLUE paper's "most frequent class" baseline takes the class
    from the training labels; the two agree except where a split's majority flips, e.g. WNLI, CB)."""
    metric = metric_fn(spec)
    return max(metric(evaluate.labels, p, evaluate.groups) for p in constant_predictions(spec, evaluate))


def bootstrap_task(spec: TaskSpec, evaluate: Split, predictions: list[np.ndarray], *, resamples: int,
                   seed: int) -> tuple[float, np.ndarray]:
    """(seed-averaged metric, [resamples] seed-averaged metric on resampled units)."""
    metric = metric_fn(spec)
    y, groups = evaluate.labels, evaluate.groups
    value = float(np.mean([metric(y, p, groups) for p in predictions]))
    grouped = spec.kind in ("choice", "multirc")
    if not grouped:
        stats = np.array([[metric(y[i], p[i], None) for p in predictions]
                          for i in resampled_indices(len(y), resamples, [seed, 7])]).mean(1)
        return value, stats
    units = np.unique(groups)
    rows_of = [np.flatnonzero(groups == u) for u in units]
    sizes = np.array([len(r) for r in rows_of])
    stats = np.empty(resamples)
    for r, draw in enumerate(resampled_indices(len(units), resamples, [seed, 7])):
        rows = np.concatenate([rows_of[u] for u in draw])
        new_groups = np.repeat(np.arange(len(draw)), sizes[draw])  # a unit drawn twice counts twice
        stats[r] = np.mean([metric(y[rows], p[rows], new_groups) for p in predictions])
    return value, stats
