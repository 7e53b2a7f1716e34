"""A model's identity is its content: weights, tokenizer files and the config fields that compute — never a
library version stamp, a timing, a log or a plot (harness/models/fingerprint.py).

On a fresh machine `transformers` 5.25 converted SmolLM2 to bit-identical weights but stamped
``"transformers_version": "5.25.0"`` into config.json and generation_config.json, and every cache key of the
model changed (tests/test_cache_layout.py failed). These tests would have caught it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from harness.models import load_model
from harness.models.catalog import ModelCatalog
from harness.models.fingerprint import content_fingerprint, identity
from harness.variants import model_identity


def _copy(folder: Path, tmp_path: Path, name: str = "copy") -> Path:
    target = tmp_path / name
    shutil.copytree(folder, target, ignore=shutil.ignore_patterns(".complete.json"))
    return target


def _restamp(path: Path, version: str) -> None:
    data = json.loads(path.read_text())
    data["transformers_version"] = version
    path.write_text(json.dumps(data, indent=4))  # another writer: other indentation, other key order too


def _converted_smollm2() -> Path:
    from harness.models.catalog import model_catalog

    return model_catalog().fetch("zoo:smollm2-135m")


def test_a_converted_model_keeps_its_fingerprint_under_another_transformers_version(tmp_path, smollm2):
    folder = _converted_smollm2()
    before = content_fingerprint(folder)
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json"} <= set(before)
    copy = _copy(folder, tmp_path)
    for name in ("config.json", "generation_config.json"):
        _restamp(copy / name, "9.99.0")
    assert json.loads((copy / "config.json").read_text())["transformers_version"] == "9.99.0"
    assert content_fingerprint(copy) == before
    # loaded from the restamped folder, the model keys every cache as before (the spec aside)
    moved = load_model(str(copy))
    assert identity(moved.origin)["content"] == identity(smollm2.origin)["content"]


def test_a_config_field_that_computes_changes_the_fingerprint(tmp_path, bert_tiny):
    folder = Path(bert_tiny.model.name_or_path)
    copy = _copy(folder, tmp_path)
    data = json.loads((copy / "config.json").read_text())
    data["layer_norm_eps"] = data["layer_norm_eps"] * 10
    (copy / "config.json").write_text(json.dumps(data))
    changed = content_fingerprint(copy)
    assert changed["config.json"] != content_fingerprint(folder)["config.json"]
    assert changed["model.safetensors"] == content_fingerprint(folder)["model.safetensors"]


def test_weights_are_tensors_not_file_bytes(tmp_path, bert_tiny):
    """The same tensors saved with other safetensors metadata are the same model; one ulp is another."""
    folder = Path(bert_tiny.model.name_or_path)
    copy = _copy(folder, tmp_path)
    tensors = load_file(copy / "model.safetensors")
    save_file(tensors, copy / "model.safetensors", metadata={"format": "pt", "writer": "someone else"})
    assert (copy / "model.safetensors").read_bytes() != (folder / "model.safetensors").read_bytes()
    assert content_fingerprint(copy) == content_fingerprint(folder)
    name = sorted(tensors)[0]
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = torch.nextafter(tensors[name].view(-1)[0], torch.tensor(float("inf")))
    save_file(tensors, copy / "model.safetensors", metadata={"format": "pt"})
    assert content_fingerprint(copy)["model.safetensors"] != content_fingerprint(folder)["model.safetensors"]


def test_a_tokenizer_change_changes_the_fingerprint_and_reports_do_not(tmp_path, bert_tiny):
    folder = Path(bert_tiny.model.name_or_path)
    copy = _copy(folder, tmp_path)
    for name, text in (("build_report.json", '{"seconds": 123.4}'), ("training_log.json", "[]"),
                       ("training_curve.png", "\x89PNG"), ("README.md", "# a model card")):
        (copy / name).write_text(text)
    assert content_fingerprint(copy) == content_fingerprint(folder)
    data = json.loads((copy / "tokenizer.json").read_text())
    vocab = data["model"]["vocab"]
    first, second = sorted(vocab, key=vocab.get)[1000:1002]
    vocab[first], vocab[second] = vocab[second], vocab[first]
    (copy / "tokenizer.json").write_text(json.dumps(data))
    assert content_fingerprint(copy)["tokenizer.json"] != content_fingerprint(folder)["tokenizer.json"]


def test_a_folder_without_weights_or_with_corrupt_weights_is_a_one_line_error(tmp_path, bert_tiny):
    from harness.errors import HarnessError

    copy = _copy(Path(bert_tiny.model.name_or_path), tmp_path)
    for garbage in (b"\x10\x00\x00\x00\x00\x00\x00\x00{not json", b"not a safetensors file", b"\x01"):
        (copy / "model.safetensors").write_bytes(garbage)
        with pytest.raises(HarnessError, match="could not load model .*model.safetensors cannot be read"):
            load_model(str(copy))
    (copy / "model.safetensors").unlink()
    with pytest.raises(HarnessError, match="holds no weights"):
        load_model(str(copy))


def _recipe_catalog(tmp_path: Path) -> ModelCatalog:
    import yaml

    text = tmp_path / "corpus.txt"
    text.write_text("\n".join(f"Document {i} says that she went to the market and he stayed at home, "
                              f"talking about number {i} for a long while." for i in range(600)))
    source = Path(__file__).resolve().parent.parent / "harness" / "catalog" / "models.yaml"
    raw = yaml.safe_load(source.read_text())
    raw["zoo"]["tiny-recipe"] = {
        "description": "test recipe", "kind": "masked", "format": "recipe",
        "recipe": {"base": "zoo:bert-tiny", "corpus": str(text),
                   "training": {"steps": 3, "batch_size": 4, "seq_len": 32, "lr": 5e-4, "eval_every": 3,
                                "eval_blocks": 4}}}
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(raw))
    return ModelCatalog.from_yaml(path)


def test_a_rebuilt_recipe_model_with_the_same_weights_keeps_its_keys(tmp_path, private_cache, monkeypatch):
    """zoo:bert-tiny-mlm's fingerprint used to hash build_report.json and training_log.json (timings)."""
    import harness.models.build as build_module
    import harness.models.catalog as catalog_module

    catalog = _recipe_catalog(tmp_path)
    monkeypatch.setattr(catalog_module, "model_catalog", lambda: catalog)
    builds = iter(range(2))
    write = build_module.write_build_outputs  # what timings do on a real machine, made certain: reports differ
    monkeypatch.setattr(build_module, "write_build_outputs",
                        lambda folder, report, extra: write(folder, report, {**extra, "build": next(builds)}))
    first = catalog.fingerprint("zoo:tiny-recipe")
    folder = catalog.cache_path(catalog.entry("zoo:tiny-recipe"))
    report_before = (folder / "build_report.json").read_text()
    key_before = model_identity(load_model("zoo:tiny-recipe"))
    catalog.fetch("zoo:tiny-recipe", force=True)
    second = catalog.fingerprint("zoo:tiny-recipe")
    assert (folder / "build_report.json").read_text() != report_before  # other timings …
    assert second["files"] != first["files"]  # … so the files' checksums differ
    assert second["content"] == first["content"]  # but not the model
    assert model_identity(load_model("zoo:tiny-recipe")) == key_before
    assert set(first["content"]).isdisjoint({"build_report.json", "training_log.json", "training_curve.png"})


def test_a_cache_entry_from_before_content_fingerprints_is_upgraded_in_place(tmp_path, private_cache):
    catalog = ModelCatalog.from_yaml()
    folder = catalog.fetch("zoo:bert-tiny")
    fresh = catalog.fingerprint("zoo:bert-tiny")
    marker = folder / ".complete.json"
    old = json.loads(marker.read_text())
    del old["content"]
    marker.write_text(json.dumps(old))
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert catalog.fingerprint("zoo:bert-tiny") == fresh
    assert json.loads(marker.read_text())["content"] == fresh["content"]
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp  # upgraded, not rebuilt


@pytest.mark.parametrize("marker", [{"files": {}}, {"files": {}, "wheel": 3}, [], "x"])
def test_a_cache_manifest_without_its_fields_is_rebuilt_not_a_key_error(tmp_path, private_cache, marker):
    catalog = ModelCatalog.from_yaml()
    folder = catalog.fetch("zoo:bert-tiny")
    fresh = catalog.fingerprint("zoo:bert-tiny")
    (folder / ".complete.json").write_text(json.dumps(marker))
    assert catalog.cached(catalog.entry("zoo:bert-tiny")) is None
    assert catalog.fingerprint("zoo:bert-tiny") == fresh  # fetch rebuilt the entry
