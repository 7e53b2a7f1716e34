"""Zero-shot GLUE/SuperGLUE through lm-eval: local task definitions, MultiRC's choice order, our masked LM."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.glue_tasks import SUPERGLUE_TASKS
from benchmarks.lm_eval_zero_shot import ZS_SUPERGLUE, harness_lm_class, hub_rows, task_yaml
from conftest import log_prob_bound
from harness.api import RunContext
from harness.hooks import AffineHook


def _task(tmp_path: Path, name: str, rows, yaml_rel: str):
    import json

    import lm_eval.tasks

    data = tmp_path / f"{name}.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    folder = tmp_path / "tasks"
    folder.mkdir(exist_ok=True)
    package = Path(lm_eval.tasks.__file__).parent
    (folder / f"{name}.yaml").write_text(task_yaml(name, package / yaml_rel, data))
    from lm_eval.api.task import ConfigurableTask
    from lm_eval.tasks._yaml_loader import load_yaml

    return ConfigurableTask(config=load_yaml(folder / f"{name}.yaml"))  # what TaskManager builds, minus its index


def test_multirc_choice_order_matches_labels(mirror, tmp_path):
    """A correct answer (label 1) must be the '… yes' choice; lm-eval 0.4's own definition gives '… no'."""
    spec = next(t for t in SUPERGLUE_TASKS if t.name == "multirc")
    rows = hub_rows(spec, Path(mirror) / "superglue" / "MultiRC" / "val.jsonl")[:12]
    assert {r["label"] for r in rows} == {0, 1}
    task = _task(tmp_path, "gbzs_test_multirc", rows, ZS_SUPERGLUE["multirc"][1])
    for doc in task.dataset["validation"]:
        choices = task.doc_to_choice(doc)
        assert choices[task.doc_to_target(doc)].endswith("yes" if doc["label"] == 1 else "no")
    import lm_eval.tasks
    from lm_eval.tasks._yaml_loader import load_yaml

    upstream = load_yaml(Path(lm_eval.tasks.__file__).parent / ZS_SUPERGLUE["multirc"][1])
    assert upstream["doc_to_choice"].index("yes") < upstream["doc_to_choice"].index("no")  # the reversed order


def test_superglue_rows_keep_the_hub_label_order(mirror):
    for name in ("cb", "boolq", "wsc"):
        spec = next(t for t in SUPERGLUE_TASKS if t.name == name)
        folder = {"cb": "CB", "boolq": "BoolQ", "wsc": "WSC"}[name]
        rows = hub_rows(spec, Path(mirror) / "superglue" / folder / "val.jsonl")
        assert all(isinstance(r["label"], int) and 0 <= r["label"] < len(spec.classes) for r in rows)
    cb = hub_rows(next(t for t in SUPERGLUE_TASKS if t.name == "cb"), Path(mirror) / "superglue/CB/val.jsonl")
    assert cb[0]["label"] == 1  # the first CB dev example is a contradiction; the hub's order is E, C, N


def test_masked_pll_equals_masking_by_hand(bert_tiny):
    from lm_eval.api.instance import Instance

    model = harness_lm_class()(bert_tiny)
    requests = [Instance("loglikelihood", {}, ("The movie was great. Sentiment:", " positive"), 0),
                Instance("loglikelihood", {}, ("The movie was great. Sentiment:", " negative"), 0)]
    got = [v for v, _ in model.loglikelihood(requests)]
    tok = bert_tiny.tokenizer
    for (context, continuation), value in zip([r.args for r in requests], got):
        ctx_ids = tok(context, add_special_tokens=False)["input_ids"]
        cont = tok(continuation, add_special_tokens=False)["input_ids"]
        ids = [tok.cls_token_id, *ctx_ids, *cont, tok.sep_token_id]
        total = bound = 0.0
        for p in range(1 + len(ctx_ids), 1 + len(ctx_ids) + len(cont)):
            masked = list(ids)
            masked[p] = tok.mask_token_id
            x = torch.tensor([masked])
            with torch.no_grad():
                total += float(bert_tiny.token_log_probs(x, torch.ones_like(x))[0, p, ids[p]])
                # a sum of fp32 log-probabilities, batched vs one at a time: each term within 2× its bound
                bound += 2 * log_prob_bound(bert_tiny.logits(x, torch.ones_like(x))[0, p], bert_tiny.model.config)
        assert value == pytest.approx(total, abs=bound)
    assert got[0] != got[1] and all(math.isfinite(v) for v in got)


@pytest.mark.slow
def test_zero_shot_runs_with_the_hook_active(bert_tiny, mirror, tmp_path):
    from harness.registry import get_benchmark

    bench = get_benchmark("superglue-zs")(tasks="cb,copa", limit=16, resamples=100)
    plain = bench.run(bert_tiny, RunContext(cache_dir=tmp_path, progress=False))
    g = torch.Generator().manual_seed(0)
    bert_tiny.add_hidden_hook(AffineHook(torch.eye(128) + 0.5 * torch.randn(128, 128, generator=g)))
    try:
        hooked = bench.run(bert_tiny, RunContext(cache_dir=tmp_path, progress=False))
    finally:
        bert_tiny.clear_hooks()
    assert plain.protocol == "zero-shot" and plain.details["backend"] == "harness"
    assert set(plain.details["tasks"]) == {"cb", "copa"} and np.isfinite(plain.scores["score"].value)
    assert plain.details["per_task"]["copa"]["examples"] == 16
    assert hooked.details["per_task"] != plain.details["per_task"] or hooked.scores != plain.scores
