"""What a benchmark's metrics mean, declared by the benchmark so nobody else hard-codes it.

The leaderboard, ``gradiend-bench compare`` and the bootstrap read names, labels, ideals and directions
from these declarations (``Benchmark.metrics``), so a new benchmark is one file.

* A **bias** metric has an ``ideal`` value and is ranked by its distance :math:`|v - \\text{ideal}|`
  (smaller is less biased): StereoSet SS and CrowS-Pairs (ideal 50), SEAT mean |effect size| (ideal 0).
* A **quality** metric has a direction (``higher_is_better``) and is shown as a raw score with its change
  from the base model: LMS, GLUE, SuperGLUE.

``statistic(arrays, w)`` recomputes the metric from the record's per-example scores
(:mod:`harness.examples`) for a weight matrix ``w`` [B, n] (:mod:`harness.stats`); without one, a metric is
shown with its recorded CI but cannot be resampled jointly with others.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.stats import Statistic


@dataclass(frozen=True)
class Metric:
    key: str  # short name on the command line and in tables ("ss")
    score: str  # the record's score key ("ss", "effect_size_mean_abs")
    label: str  # column heading ("SS")
    ideal: float | None = None  # set for bias metrics
    higher_is_better: bool = True  # quality metrics
    statistic: Statistic | None = None
    scale: float = 1.0  # record value × scale = displayed value
    floor: str | None = None  # the record's score key of this metric's floor (what a constant answer scores)

    @property
    def is_bias(self) -> bool:
        return self.ideal is not None

    def distance(self, value):
        """|value − ideal| (works on arrays)."""
        return abs(value - self.ideal)
