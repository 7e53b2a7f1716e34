"""Fine-tuned GLUE through ``gradiend-bench run`` end to end (it once crashed under the pipeline's no-grad
scope), with a post-processing hook in the fine-tuning forward pass, and ``protocol: auto`` per family."""

from __future__ import annotations

import math

import pytest
import yaml

from benchmarks.glue_suite import paper_protocol
from harness.api import RunContext
from harness.cli import main
from harness.records import load_records
from harness.registry import get_benchmark

RTE_DEV = (277, 146)  # examples, entailment (the majority class)


def test_finetune_lite_runs_through_the_cli_with_the_hook_in_the_forward_pass(mirror, tmp_path):
    config = {"name": "ft", "models": ["zoo:bert-tiny"], "variants": ["base", "inlp"], "seeds": [0],
              "protocol": "cpu", "method_options": {"inlp": {"n_per_class": 200}},
              "benchmarks": [{"name": "glue", "options": {"protocol": "finetune-lite", "tasks": ["rte"],
                                                          "finetune_max_train": 128, "finetune_seeds": [0],
                                                          "resamples": 200}}]}
    path = tmp_path / "ft.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["run", str(path), "--results", str(tmp_path / "runs"), "--quiet"]) == 0
    records = {r.variant: r for r in load_records(tmp_path / "runs")}
    assert set(records) == {"base", "inlp"}
    training = {}
    for variant, record in records.items():
        assert record.status == "ok" and record.protocol == "finetune-lite"
        info = record.details["per_task"]["rte"]
        assert info["train_examples"] == 128 and info["epochs"] == 1 and info["seeds"] == [0]
        training[variant] = info["training"]["0"]
        assert training[variant]["steps"] == 4 and math.isfinite(training[variant]["final_loss"])  # 128 / 32
        assert record.scores["score"].value == record.scores["rte"].value and record.scores["rte"].n == RTE_DEV[0]
        assert record.scores["floor"].value == info["floor"] == pytest.approx(RTE_DEV[1] / RTE_DEV[0] * 100)
        assert info["below_floor"] == (record.scores["rte"].value < info["floor"])
    assert records["inlp"].variant_steps[0]["method"] == "inlp"
    # same seed, data and starting weights: only the INLP projection in the forward pass can change the loss
    assert training["inlp"]["final_loss"] != training["base"]["final_loss"]


def test_auto_picks_the_paper_protocol_per_family(bert_tiny, smollm2):
    glue = get_benchmark("glue")(protocol="auto")
    assert glue.protocol(RunContext(protocol="cpu"), bert_tiny) == paper_protocol(bert_tiny)
    assert paper_protocol(bert_tiny)[0] == "full" and "bert" in paper_protocol(bert_tiny)[1]
    assert paper_protocol(smollm2)[0] == "zero-shot" and "llama" in paper_protocol(smollm2)[1]
    default = get_benchmark("superglue")()
    assert default.protocol(RunContext(protocol="cpu"), smollm2)[0] == "probe"  # the committed cpu grids
    assert default.protocol(RunContext(protocol="full"), smollm2)[0] == "zero-shot"
