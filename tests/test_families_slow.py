"""The slow part of the family matrix (tests/tiny_families.py): every family × every variant × every benchmark
through the pipeline, GLUE/SuperGLUE fine-tuning with a post-processing hook in the forward pass, and the
zero-shot suites (the paper's protocol for Llama) — on tiny random-weight models. ~10 min on 2 busy cores
(docs/model-families.md); the fast part (test_families.py, test_families_methods.py) already runs every family
through every method once."""

from __future__ import annotations

import math

import pytest

from harness.models.tiny import FAMILIES
from harness.records import STATUS_NOT_APPLICABLE
from tiny_families import BENCHMARKS, VARIANTS

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

REPRESENTATION_BENCHMARKS = ("seat", "glue", "superglue")  # not applicable to SelfDebias (predictions only)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("benchmark", list(BENCHMARKS))
def test_every_variant_scores_every_benchmark(family, variant, benchmark, tiny_families, mirror):
    record = tiny_families.grid(family, VARIANTS, list(BENCHMARKS))[(variant, benchmark)]
    if "selfdebias" in variant.split("+") and benchmark in REPRESENTATION_BENCHMARKS:
        assert record.status == STATUS_NOT_APPLICABLE and "only changes token predictions" in record.details["reason"]
        return
    assert record.status == "ok", record.details
    assert record.scores and all(math.isfinite(s.value) for s in record.scores.values()), record.scores
    assert [step["method"] for step in record.variant_steps] == ([] if variant == "base" else variant.split("+"))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("variant", ["base", "inlp"])
def test_glue_and_superglue_fine_tuning_runs_on_every_family(family, variant, tiny_families, mirror):
    """The paper fine-tunes BERT-family models and GPT-2 on GLUE (``finetune-lite`` is the same code on fewer
    examples): classification, regression (STS-B) and choice (COPA) heads, with INLP's hook kept in the forward."""
    import torch

    from harness.registry import get_benchmark

    lm, _ = tiny_families.apply(family, variant) if variant != "base" else (tiny_families.lm(family), None)
    common = {"protocol": "finetune-lite", "finetune_max_train": 16, "finetune_seeds": [0], "train_batch_size": 8,
              "resamples": 10}
    for suite, tasks in (("glue", ["wnli", "stsb"]), ("superglue", ["copa"])):
        with torch.no_grad():  # as the pipeline scores: fine-tuning must switch autograd back on itself
            result = get_benchmark(suite)(tasks=tasks, **common).run(lm, tiny_families.context(family))
        assert result.protocol == "finetune-lite" and set(result.details["per_task"]) == set(tasks)
        assert all(math.isfinite(s.value) for s in result.scores.values()), result.scores
        for task in tasks:
            losses = result.details["per_task"][task]["training"]["0"]
            assert losses["steps"] > 0 and math.isfinite(losses["final_loss"])
    assert len(lm.hooks) == (1 if variant == "inlp" else 0)  # the caller's model keeps its hooks, unchanged


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("variant", ["base", "selfdebias"])
def test_zero_shot_suites_run_on_every_family(family, variant, tiny_families, mirror):
    """lm-eval's prompts through lm-eval's HF backend (causal), or the harness's scorer (masked LMs, and any
    model with SelfDebias' prediction hook, which lm-eval would bypass)."""
    from harness.registry import get_benchmark

    lm, _ = tiny_families.apply(family, variant) if variant != "base" else (tiny_families.lm(family), None)
    for suite, task in (("glue-zs", "rte"), ("superglue-zs", "copa")):
        result = get_benchmark(suite)(tasks=[task], limit=8, resamples=10).run(lm, tiny_families.context(family))
        assert result.details["per_task"][task]["examples"] == 8
        assert all(math.isfinite(s.value) for s in result.scores.values()), result.scores
        own_scorer = lm.kind == "masked" or variant == "selfdebias"
        assert (result.details["backend"] != "hf") == own_scorer, result.details["backend"]
