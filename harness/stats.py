"""The one bootstrap of the harness: resampling weights, per-example statistics, percentile intervals.

A statistic is a function ``f(arrays, w) -> [B]`` of a benchmark's per-example arrays (each of length n) and a
weight matrix ``w`` of shape [B, n]: row b holds how often each example occurs in replicate b. The point
estimate is ``f(arrays, 1)`` (every example once); a bootstrap replicate draws n examples uniformly with
replacement (within each stratum, when the examples are stratified) and counts them:

.. math::

    w_{b,i} = \\#\\{j : I_{b,j} = i\\},\\qquad I_{b,j} \\sim U\\{\\text{examples of } i\\text{'s stratum}\\}

so every statistic is a weighted sum over examples and all replicates are one array operation. The same
weights applied to two variants scored on the same examples give a *paired* bootstrap. The 95 % interval is
the (2.5, 97.5) percentile interval of the replicates. Benchmarks (record CIs), ``gradiend-bench compare``
and the leaderboard's rank intervals all resample through :func:`resample_weights`.
"""

from __future__ import annotations

from typing import Callable, Iterator, Mapping

import numpy as np

from harness.api import Score

Statistic = Callable[[Mapping[str, np.ndarray], np.ndarray], np.ndarray]
CHUNK = 500  # replicates drawn per step: fixed, so the draws never depend on memory settings


def resample_weights(n: int, replicates: int, seed, strata: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """Weight matrices [≤CHUNK, n] of ``replicates`` bootstrap replicates in total, from one seeded stream.

    With ``strata`` (an integer label per example) each stratum is resampled to its own size, so e.g. SEAT's
    two target sets keep their sizes.
    """
    if n <= 0:
        raise ValueError("bootstrap needs at least one example")
    rng = np.random.default_rng(seed)
    groups = [np.arange(n)] if strata is None else [np.flatnonzero(strata == s) for s in np.unique(strata)]
    for start in range(0, replicates, CHUNK):
        rows = min(CHUNK, replicates - start)
        offsets = n * np.arange(rows)[:, None]
        flat = np.concatenate([(members[rng.integers(0, len(members), size=(rows, len(members)))] + offsets).ravel()
                               for members in groups])
        yield np.bincount(flat, minlength=rows * n).reshape(rows, n).astype(np.float64)


def resampled_indices(n: int, replicates: int, seed) -> Iterator[np.ndarray]:
    """The same replicates as :func:`resample_weights`, one index array per replicate (each example repeated
    as often as it was drawn), for metrics that take rows rather than weights (F1, Matthews correlation)."""
    every = np.arange(n)
    for weights in resample_weights(n, replicates, seed):
        for row in weights.astype(np.int64):
            yield np.repeat(every, row)


def replicate_draws(statistic: Statistic, arrays: Mapping[str, np.ndarray], n: int, *, replicates: int, seed,
                    strata: np.ndarray | None = None) -> np.ndarray:
    """The statistic of every bootstrap replicate, shape [replicates]."""
    return np.concatenate([statistic(arrays, w) for w in resample_weights(n, replicates, seed, strata)])


def point(statistic: Statistic, arrays: Mapping[str, np.ndarray], n: int) -> float:
    return float(statistic(arrays, np.ones((1, n)))[0])


def percentile_interval(draws: np.ndarray, confidence: float = 0.95, axis: int = 0) -> tuple:
    """(low, high) percentile bounds of bootstrap draws along ``axis``."""
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail], axis=axis)
    return low, high


def bootstrap_score(statistic: Statistic, arrays: Mapping[str, np.ndarray], n: int, *, resamples: int = 1000,
                    seed=0, strata: np.ndarray | None = None, confidence: float = 0.95) -> Score:
    """Point value and percentile CI of a per-example statistic (``resamples`` 0: no CI)."""
    value = point(statistic, arrays, n)
    if resamples <= 0:
        return Score(value, n=n)
    low, high = percentile_interval(replicate_draws(statistic, arrays, n, replicates=resamples, seed=seed,
                                                    strata=strata), confidence)
    return Score(value, float(low), float(high), n)


def p_two_sided(draws: np.ndarray) -> float:
    """Bootstrap sign test of a difference: 2 · (min(#[d ≤ 0], #[d ≥ 0]) + 1) / (B + 1), at most 1."""
    below, above = int((draws <= 0).sum()), int((draws >= 0).sum())
    return float(min(1.0, 2 * (min(below, above) + 1) / (draws.size + 1)))


# -- building blocks of statistics ---------------------------------------------------------------------
def group_sums(w: np.ndarray, values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """[B, G]: Σ_{i in group g} w_{b,i} · values_i for every group that has an example (in label order).

    One sparse product (w · M with M_{i,g} = values_i [i ∈ g]): n·B multiply-adds, no copy of w."""
    from scipy import sparse

    labels, column = np.unique(groups, return_inverse=True)
    indicator = sparse.csr_matrix((np.asarray(values, dtype=np.float64), (np.arange(len(groups)), column)),
                                  shape=(len(groups), len(labels)))
    return np.asarray((indicator.T @ w.T).T)


def macro_mean(w: np.ndarray, values: np.ndarray, groups: np.ndarray, scale: float = 100.0) -> np.ndarray:
    """Mean over the groups present in each replicate of ``scale`` · (group's weighted mean of ``values``)."""
    counts = group_sums(w, np.ones(len(groups)), groups)
    totals = group_sums(w, values, groups)
    present = counts > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        per_group = np.where(present, scale * totals / np.maximum(counts, 1e-300), 0.0)
    return per_group.sum(1) / present.sum(1)


def ratio(numerators: np.ndarray, denominators: np.ndarray | None = None, scale: float = 1.0) -> Statistic:
    """``scale · Σ w·num / Σ w·den`` (den = 1: the mean) as a statistic over the arrays it closes over."""
    num = np.asarray(numerators, dtype=np.float64)
    den = np.ones_like(num) if denominators is None else np.asarray(denominators, dtype=np.float64)

    def statistic(_arrays, w):
        return scale * (w @ num) / np.maximum(w @ den, 1e-300)

    return statistic


def bootstrap_ratio(numerators: np.ndarray, denominators: np.ndarray | None = None, *, resamples: int = 1000,
                    seed=0, confidence: float = 0.95, scale: float = 1.0) -> Score:
    """``scale · Σ num / Σ den`` with a percentile bootstrap CI over examples (den = 1 gives the mean)."""
    num = np.asarray(numerators, dtype=np.float64)
    if num.size == 0:
        raise ValueError("bootstrap needs at least one example")
    return bootstrap_score(ratio(num, denominators, scale), {}, num.size, resamples=resamples, seed=seed,
                           confidence=confidence)
