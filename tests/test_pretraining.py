"""Continued pre-training engine and recipe-built zoo models (zoo:bert-tiny-mlm's machinery)."""

import json
from pathlib import Path

import pytest
import torch

from harness.errors import HarnessError
from harness.models import load_model
from harness.models.build import corpus_documents
from harness.models.catalog import ModelCatalog
from harness.pretraining import TrainingSettings, continue_pretraining, mask_tokens, pack_blocks, set_dropout

SHORT = {"steps": 20, "batch_size": 8, "seq_len": 32, "lr": 5e-4, "eval_every": 10, "eval_blocks": 32}


@pytest.fixture(scope="module")
def corpus(request):
    if not (Path(__import__("os").environ.get("GRADIEND_BENCH_DATA", "")) / "corpus").is_dir():
        from conftest import skip_or_fail_in_ci

        skip_or_fail_in_ci("needs the data mirror's corpus (set GRADIEND_BENCH_DATA)")
    train, heldout, _ = corpus_documents("corpus-en")
    return train[:300], heldout[:60]


def test_mlm_masking_follows_80_10_10_and_never_masks_special_tokens(bert_tiny):
    blocks = pack_blocks(bert_tiny, ["The cat sat on the mat. " * 400], 128, "mlm")
    inputs, chosen = mask_tokens(blocks, bert_tiny, 0.15, torch.Generator().manual_seed(0))
    tok = bert_tiny.tokenizer
    assert (blocks[:, 0] == tok.cls_token_id).all() and (blocks[:, -1] == tok.sep_token_id).all()
    assert not chosen[:, 0].any() and not chosen[:, -1].any()
    rate = chosen.float().mean().item() * 128 / 126
    assert 0.13 < rate < 0.17
    masked = (inputs[chosen] == tok.mask_token_id).float().mean().item()
    kept = (inputs[chosen] == blocks[chosen]).float().mean().item()
    assert 0.75 < masked < 0.85 and 0.06 < kept < 0.16
    assert torch.equal(inputs[~chosen], blocks[~chosen])


def test_same_seed_gives_same_heldout_loss(corpus):
    train, heldout = corpus
    losses = []
    for _ in range(2):
        lm = load_model("zoo:bert-tiny")
        report = continue_pretraining(lm, train, heldout, TrainingSettings.from_dict({**SHORT, "steps": 6}),
                                      progress=False)
        losses.append(report.final["loss"])
    assert abs(losses[0] - losses[1]) < 1e-6


def test_short_training_lowers_heldout_loss_and_logs_the_curve(corpus):
    train, heldout = corpus
    lm = load_model("zoo:bert-tiny")
    report = continue_pretraining(lm, train, heldout, TrainingSettings.from_dict(SHORT), progress=False)
    assert report.final["loss"] < report.initial["loss"] - 0.5
    assert [row["step"] for row in report.log] == [0, 10, 20]
    assert not lm.model.training


def test_causal_objective_trains_smollm2(smollm2, corpus):
    train, heldout = corpus
    lm = smollm2.clone()
    settings = TrainingSettings.from_dict({"steps": 2, "batch_size": 2, "seq_len": 32, "lr": 1e-5,
                                           "eval_every": 2, "eval_blocks": 4})
    report = continue_pretraining(lm, train[:20], heldout[:5], settings, progress=False)
    assert report.objective == "clm"
    assert all(torch.isfinite(torch.tensor(row["heldout_loss"])) for row in report.log)
    changed = any(not torch.equal(a, b) for a, b in zip(lm.model.parameters(), smollm2.model.parameters()))
    assert changed


def test_dropout_is_raised_in_config_and_modules(bert_tiny):
    lm = bert_tiny.clone()
    result = set_dropout(lm.model, {"hidden": 0.2, "attention": 0.15})
    assert lm.model.config.hidden_dropout_prob == 0.2 and lm.model.config.attention_probs_dropout_prob == 0.15
    rates = {name: m.p for name, m in lm.model.named_modules() if isinstance(m, torch.nn.Dropout)}
    assert rates["bert.encoder.layer.0.attention.self.dropout"] == 0.15
    assert rates["bert.encoder.layer.0.output.dropout"] == 0.2
    assert result["not_in_architecture"] == []


def test_bad_settings_are_clear_errors():
    with pytest.raises(HarnessError, match="unknown training setting"):
        TrainingSettings.from_dict({"stepz": 3})
    with pytest.raises(HarnessError, match="invalid training settings"):
        TrainingSettings.from_dict({"steps": 0})


def _recipe_catalog(tmp_path: Path, corpus: str, steps: int = 4) -> ModelCatalog:
    source = Path(__file__).resolve().parent.parent / "harness" / "catalog" / "models.yaml"
    import yaml

    raw = yaml.safe_load(source.read_text())
    raw["zoo"]["tiny-recipe"] = {
        "description": "test recipe", "kind": "masked", "format": "recipe",
        "recipe": {"base": "zoo:bert-tiny", "corpus": corpus,
                   "training": {**SHORT, "steps": steps, "eval_every": steps, "eval_blocks": 8}}}
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(raw))
    return ModelCatalog.from_yaml(path)


def test_recipe_builds_once_loads_with_from_pretrained_and_rebuilds_when_corrupt(tmp_path, private_cache, monkeypatch):
    from transformers import AutoModelForMaskedLM

    import harness.models.catalog as catalog_module

    text = tmp_path / "corpus.txt"
    text.write_text("\n".join(f"Document {i} says that she went to the market and he stayed at home, "
                              f"talking about number {i} for a long while." for i in range(600)))
    catalog = _recipe_catalog(tmp_path, str(text))
    monkeypatch.setattr(catalog_module, "model_catalog", lambda: catalog)
    folder = catalog.fetch("zoo:tiny-recipe")
    report = json.loads((folder / "build_report.json").read_text())
    assert report["settings"]["steps"] == 4 and (folder / "training_curve.png").is_file()
    AutoModelForMaskedLM.from_pretrained(folder)  # a plain Hugging Face folder
    assert catalog.fetch("zoo:tiny-recipe") == folder  # cached: no rebuild
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    with open(folder / "model.safetensors", "r+b") as handle:  # corrupt the weights
        handle.seek(200)
        handle.write(b"\0" * 64)
    assert catalog.cached(catalog.entry("zoo:tiny-recipe")) is None
    rebuilt = catalog.fetch("zoo:tiny-recipe")
    assert (rebuilt / "model.safetensors").stat().st_mtime_ns != stamp
    assert catalog.cached(catalog.entry("zoo:tiny-recipe")) is not None
    lm = load_model("zoo:tiny-recipe")
    assert lm.origin["recipe"]["base"] == "zoo:bert-tiny"


def test_failed_recipe_build_leaves_no_cache_entry(tmp_path, private_cache):
    text = tmp_path / "tiny.txt"
    text.write_text("\n".join(["One short line."] * 40))
    catalog = _recipe_catalog(tmp_path, str(text))
    with pytest.raises(HarnessError, match="corpus"):
        catalog.fetch("zoo:tiny-recipe")
    entry = catalog.entry("zoo:tiny-recipe")
    assert not catalog.cache_path(entry).exists()
    assert not list(catalog.cache_path(entry).parent.glob(".tiny-recipe*"))


@pytest.mark.slow
def test_bert_tiny_mlm_recipe_predicts_english_and_shows_gender_bias(mirror):
    """The real recipe (builds once, ≤ 10 min on 2 cores; cached afterwards)."""
    from harness.models.catalog import model_catalog

    report = model_catalog().build_report("zoo:bert-tiny-mlm")
    assert report["final"]["accuracy"] >= 0.25
    probe = report["occupation_probe"]
    assert probe["engineer"]["log_odds_he_she"] > 1.0 and probe["mechanic"]["log_odds_he_she"] > 1.0
    assert probe["receptionist"]["log_odds_he_she"] < probe["engineer"]["log_odds_he_she"]
    lm = load_model("zoo:bert-tiny-mlm")
    assert lm.kind == "masked" and lm.origin["recipe"]["base"] == "zoo:bert-tiny"
