"""SuperGLUE (Wang et al. 2019) as a utility benchmark.

Tasks and metrics: BoolQ, CB ((accuracy + macro-F1)/2), COPA, MultiRC ((F1a + EM)/2), RTE, WiC, WSC
(accuracy otherwise); ReCoRD and the diagnostics are not scored. Inputs follow SuperGLUE's baselines:
COPA scores each (premise + "What was the cause of this?" / "What happened as a result?", choice) and
picks the higher; WSC pairs the text with its pronoun marked ``*he*`` and the candidate noun phrase; WiC
marks the word in both sentences with ``*``; MultiRC scores each answer as (paragraph, question + answer).
``score`` = unweighted mean ×100 over the tasks with data, ``floor`` the same mean of their constant-answer
scores. Protocols and scoring: :mod:`benchmarks.glue_suite`.
"""

from __future__ import annotations

from benchmarks.glue_suite import GlueSuite
from benchmarks.glue_tasks import SUPERGLUE_TASKS
from harness.metrics import Metric
from harness.registry import register_benchmark


@register_benchmark("superglue")
class SuperGlue(GlueSuite):
    tasks = SUPERGLUE_TASKS
    datasets = tuple(t.dataset for t in SUPERGLUE_TASKS)
    version = 2  # 2: floors; protocols auto and zero-shot; default protocol "experiment"
    zero_shot = "superglue-zs"
    metrics = (Metric("superglue", "score", "SuperGLUE", floor="floor"),)  # the record's CI (no joint resampling)
