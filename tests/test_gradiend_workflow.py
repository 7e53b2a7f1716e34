"""End-to-end GRADIEND runs on zoo:bert-tiny: the adapters through apply_variant (cached and shared between
gradiend/-fpi/-mpi) and the CLI workflow. Slow (a few minutes on 2 cores): part of the benchmark suite."""

from __future__ import annotations

import json
import logging

import pandas as pd
import pytest
import torch

from harness.api import RunContext
from harness.cli import main as cli_main
from harness.variants import apply_variant, parse_variant

pytestmark = pytest.mark.slow

FAST = {"max_steps": 20, "seeds": [0, 1], "grid": "package"}


def test_adapters_train_once_select_and_rewrite_a_copy(bert_tiny, mirror, tmp_path):
    ctx = RunContext(seed=0, protocol="cpu", bias_type="gender", cache_dir=tmp_path, progress=False)
    before = {n: p.detach().clone() for n, p in bert_tiny.model.named_parameters()}
    debiased, log = apply_variant(bert_tiny, parse_variant("gradiend", {"gradiend": FAST}), ctx)
    notes = log[0]["notes"]
    assert notes["protocol"] == "cpu" and not notes["reused_cached_training"]
    assert abs(notes["encoder_test"]["pearson"]) >= 0.8  # unseen test names
    assert notes["selection"]["metric"] == "bpi"
    for n, p in bert_tiny.model.named_parameters():  # the input model is untouched
        assert torch.equal(p, before[n]), n
    changed = [n for n, p in debiased.model.named_parameters() if not torch.equal(p, before[n])]
    assert changed and all(n.startswith("bert.") for n in changed)
    female, flog = apply_variant(bert_tiny, parse_variant("gradiend-fpi", {"gradiend-fpi": FAST}), ctx)
    assert flog[0]["notes"]["reused_cached_training"]  # one training shared by the three variants
    assert flog[0]["notes"]["selection"]["metric"] == "fpi"
    folder = notes["artefacts"]
    for name in ("encoder_test.png", "decoder_grid.png", "convergence.png", "decoder_grid.csv",
                 "data/templates.parquet"):
        assert (tmp_path / folder.split(str(tmp_path) + "/")[1] / name).is_file()


def test_corrupt_cached_checkpoint_is_retrained_with_a_warning_naming_it(bert_tiny, mirror, tmp_path, caplog):
    ctx = RunContext(seed=0, protocol="cpu", bias_type="gender", cache_dir=tmp_path, progress=False)
    _, log = apply_variant(bert_tiny, parse_variant("gradiend", {"gradiend": FAST}), ctx)
    checkpoint = next(tmp_path.rglob("gradiend.safetensors"))
    checkpoint.write_bytes(checkpoint.read_bytes()[:-10])
    with caplog.at_level(logging.WARNING):
        _, again = apply_variant(bert_tiny, parse_variant("gradiend", {"gradiend": FAST}), ctx)
    assert f"{checkpoint} does not match its sha256" in caplog.text
    assert not again[0]["notes"]["reused_cached_training"]


def test_cli_workflow_data_train_evaluate_rewrite_compare(mirror, tmp_path, capsys):
    run = str(tmp_path / "g")
    assert cli_main(["gradiend", "data", "--model", "zoo:bert-tiny", "--dir", run]) == 0
    assert cli_main(["gradiend", "train", "--dir", run, "--max-steps", "20", "--seeds", "0"]) == 0
    assert cli_main(["gradiend", "eval-encoder", "--dir", run]) == 0
    encoder = json.loads((tmp_path / "g" / "encoder.json").read_text())
    assert encoder["pearson"] > 0.8 and encoder["mean_first"] > 0 > encoder["mean_second"]
    assert cli_main(["gradiend", "eval-decoder", "--dir", run]) == 0
    selection = json.loads((tmp_path / "g" / "selection.json").read_text())
    assert selection["grid"]["candidates"] == 240 and selection["grid"]["unchanged_model_in_argmax"]
    assert selection["objective"]["kind"] == "name-prediction" and selection["objective"]["n_prompts"] >= 240
    assert cli_main(["gradiend", "rewrite", "--dir", run, "--metric", "mpi", "--out", str(tmp_path / "model")]) == 0
    from harness.models import load_model
    from methods.gradiend.workflow import load_artefacts

    assert load_model(str(tmp_path / "model")).kind == "masked"
    artefacts = load_artefacts(tmp_path / "g")  # a CLI folder: no done.json
    assert artefacts.summary["training"]["selected_seed"] == 0 and "converged" in artefacts.summary["training"]
    # an explicit candidate: exactly W + α·dec(h*) on the mapped weights
    assert cli_main(["gradiend", "rewrite", "--dir", run, "--h", "-1", "--alpha", "0.01",
                     "--out", str(tmp_path / "chosen")]) == 0
    base, chosen = load_model("zoo:bert-tiny"), load_model(str(tmp_path / "chosen"))
    flat = lambda lm: torch.cat([dict(lm.model.named_parameters())[n].detach().flatten()  # noqa: E731
                                 for n in artefacts.param_map.names])
    expected = flat(base) + 0.01 * artefacts.model.decode(-1.0, 0)
    torch.testing.assert_close(flat(chosen), expected, rtol=0, atol=0)  # the same fp32 operations
    assert cli_main(["gradiend", "compare", run, run, "--top-k", "100", "--out", str(tmp_path / "o.png")]) == 0
    assert "1.000" in capsys.readouterr().out and (tmp_path / "o.png").is_file()
    overlap = json.loads((tmp_path / "o.json").read_text())
    assert overlap["runs"][0]["model"] == "zoo:bert-tiny" and overlap["runs"][0]["feature"] == "gender"
    assert overlap["run_stability"]["gender on zoo:bert-tiny"]["mean_pairwise_overlap"] == 1.0
    assert cli_main(["gradiend", "report", run, "--out", str(tmp_path / "report")]) == 0
    report = json.loads((tmp_path / "report.json").read_text())[0]
    grid = pd.read_csv(tmp_path / "g" / "decoder_grid.csv")
    base = grid[grid["h"].isna()].iloc[0]
    assert report["decoder"]["base"] == {"p_first": base["p_first"], "p_second": base["p_second"], "lms": base["lms"]}
    assert report["encoder"]["pearson"] == encoder["pearson"] and "| gender |" in capsys.readouterr().out


def test_a_feature_spec_runs_as_a_grid_variant_and_keeps_its_own_cache(bert_tiny, mirror, tmp_path):
    ctx = RunContext(seed=0, protocol="cpu", bias_type="gender", cache_dir=tmp_path, progress=False)
    options = {"gradiend": {**FAST, "feature": "number-3sg-3pl"}}
    rewritten, log = apply_variant(bert_tiny, parse_variant("gradiend", options), ctx)
    notes = log[0]["notes"]
    assert notes["feature"]["name"] == "number-3sg-3pl" and notes["classes"] == ["3SG", "3PL"]
    assert abs(notes["encoder_test"]["pearson"]) >= 0.8  # unseen test templates
    assert notes["selection_objective"]["kind"] == "class-words"
    changed = [n for n, p in rewritten.model.named_parameters()
               if not torch.equal(p, dict(bert_tiny.model.named_parameters())[n])]
    assert changed
    # the same feature from a spec file with other words is another training, not the cached one
    spec = tmp_path / "number-he.yaml"
    spec.write_text("name: number-he\nclasses:\n  - {name: 3SG, words: [he]}\n  - {name: 3PL, words: [they]}\n"
                    "min_words: 6\nnext_words: [is, are, was, were]\n"
                    "render: {scope: next-word, pairs: [[is, are], [was, were]]}\n")
    _, again = apply_variant(bert_tiny, parse_variant("gradiend", {"gradiend": {**FAST, "feature": str(spec)}}), ctx)
    assert again[0]["notes"]["artefacts"] != notes["artefacts"] and not again[0]["notes"]["reused_cached_training"]
    assert again[0]["notes"]["feature"]["source"] == str(spec)
