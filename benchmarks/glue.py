"""GLUE (Wang et al. 2019) as a utility benchmark: does the debiased model stay useful?

Tasks and metrics: CoLA (Matthews corr.), SST-2, MRPC (F1), QQP, MNLI (mean of matched/mismatched
accuracy), QNLI, RTE, STS-B (Pearson), WNLI (accuracy otherwise); ``score`` = unweighted mean ×100 over
the tasks with data except WNLI (reported, kept out of the mean as BERT did), ``floor`` = the same mean of the
tasks' constant-answer scores. Offline (the mirror) that is CoLA, SST-2, MRPC, RTE, STS-B and WNLI; MNLI, QQP and
QNLI (no training data mirrored) come from the hub when it is reachable. Protocols and scoring:
:mod:`benchmarks.glue_suite`.
"""

from __future__ import annotations

from benchmarks.glue_suite import GlueSuite
from benchmarks.glue_tasks import GLUE_TASKS
from harness.metrics import Metric
from harness.registry import register_benchmark


@register_benchmark("glue")
class Glue(GlueSuite):
    tasks = GLUE_TASKS
    datasets = tuple(t.dataset for t in GLUE_TASKS)
    version = 2  # 2: floors; protocols auto and zero-shot; WNLI out of the mean; default protocol "experiment"
    zero_shot = "glue-zs"
    metrics = (Metric("glue", "score", "GLUE", floor="floor"),)  # the record's CI (no joint resampling)
