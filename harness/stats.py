"""Shared statistics: vectorised percentile bootstrap over examples."""

from __future__ import annotations

import numpy as np

from harness.api import Score


def bootstrap_ratio(numerators: np.ndarray, denominators: np.ndarray | None = None, *, resamples: int = 1000,
                    seed: int = 0, confidence: float = 0.95, scale: float = 1.0) -> Score:
    """``scale · Σ num / Σ den`` with a percentile bootstrap CI over examples (den = 1 gives the mean).

    All resamples are drawn at once as an index matrix [resamples, n], so no Python loop per resample.
    """
    num = np.asarray(numerators, dtype=np.float64)
    den = np.ones_like(num) if denominators is None else np.asarray(denominators, dtype=np.float64)
    if num.size == 0:
        raise ValueError("bootstrap needs at least one example")
    value = scale * num.sum() / den.sum()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, num.size, size=(resamples, num.size))
    stats = scale * num[idx].sum(1) / np.maximum(den[idx].sum(1), 1e-300)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail])
    return Score(float(value), float(low), float(high), int(num.size))
