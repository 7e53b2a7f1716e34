"""Corrupted, unfinished and malformed cache entries are detected and rebuilt, never used (issue 14:
cases 1, 3 and 8b), on the real bert-tiny and the real corpus."""

from __future__ import annotations

import copy
import json
import logging
import os
import subprocess
import sys

import pytest
import torch

from conftest import restore_bert_tiny_origin
from harness.api import RunContext
from harness.atomic import atomic_directory
from harness.attribute_data import attribute_sentences, encode
from harness.hooks import AffineHook
from harness.variants import apply_variant, parse_variant

keep_bert_tiny_origin = pytest.fixture(autouse=True)(restore_bert_tiny_origin)


def _overwrite(path, offset: int, size: int = 4096) -> None:
    """Overwrite ``size`` bytes inside ``path`` (the file keeps its length and stays parseable)."""
    data = bytearray(path.read_bytes())
    assert len(data) > offset + 16, f"{path} is too small to corrupt at {offset}"
    end = min(len(data), offset + size)
    data[offset:end] = bytes((b + 101) % 256 for b in data[offset:end])
    path.write_bytes(bytes(data))


def test_corrupted_method_hook_is_detected_and_refitted(bert_tiny, private_cache, mirror, caplog):
    ctx = RunContext(cache_dir=private_cache, progress=False)
    steps = parse_variant("sentdebias", {"sentdebias": {"n_examples": 40}})
    origin = copy.deepcopy(bert_tiny.origin)
    first, log1 = apply_variant(bert_tiny, steps, ctx)
    original = first.hooks[0].matrix.clone()
    first.clear_hooks()
    hook_file = private_cache / "methods" / "sentdebias" / log1[0]["cache_key"] / "hook.safetensors"
    _overwrite(hook_file, 1000)
    bert_tiny.origin = copy.deepcopy(origin)  # as a fresh load of the model in another run
    with caplog.at_level(logging.WARNING):
        second, log2 = apply_variant(bert_tiny, steps, ctx)
    refitted = second.hooks[0].matrix
    second.clear_hooks()
    assert log2[0]["cache_key"] == log1[0]["cache_key"]
    assert log2[0]["notes"]["cache_hit"] is False  # the corrupt entry was not used
    assert str(hook_file) in caplog.text and "rebuilding" in caplog.text
    torch.testing.assert_close(refitted, original, rtol=0, atol=0)
    torch.testing.assert_close(AffineHook.load(hook_file.parent).matrix, original, rtol=0, atol=0)


def test_hook_load_refuses_a_corrupt_file_with_path_and_fix(tmp_path):
    from harness.errors import HarnessError

    AffineHook(torch.eye(64), torch.ones(64)).save(tmp_path / "hook")
    _overwrite(tmp_path / "hook" / "hook.safetensors", 200, 64)
    with pytest.raises(HarnessError, match=r"hook\.safetensors.*sha256.*delete .*hook to refit"):
        AffineHook.load(tmp_path / "hook")


def test_corrupted_features_cache_is_detected_and_recomputed(bert_tiny, private_cache, mirror, caplog):
    ctx = RunContext(cache_dir=private_cache, progress=False, batch_size=32)
    texts = attribute_sentences("gender", 40, seed=0).texts
    features = encode(bert_tiny, texts, ctx)
    (cache_file,) = (private_cache / "features").glob("*.safetensors")
    _overwrite(cache_file, 2000)
    with caplog.at_level(logging.WARNING):
        again = encode(bert_tiny, texts, ctx)
    assert str(cache_file) in caplog.text and "sha256" in caplog.text
    torch.testing.assert_close(again, features, rtol=0, atol=0)
    torch.testing.assert_close(encode(bert_tiny, texts, ctx), features, rtol=0, atol=0)  # repaired on disk


def test_features_cache_without_checksum_from_older_code_is_a_miss(bert_tiny, private_cache, mirror, caplog):
    ctx = RunContext(cache_dir=private_cache, progress=False, batch_size=32)
    texts = attribute_sentences("gender", 20, seed=1).texts
    features = encode(bert_tiny, texts, ctx)
    (cache_file,) = (private_cache / "features").glob("*.safetensors")
    cache_file.with_name(cache_file.name + ".sha256").unlink()
    with caplog.at_level(logging.WARNING):
        torch.testing.assert_close(encode(bert_tiny, texts, ctx), features, rtol=0, atol=0)
    assert "no checksum" in caplog.text and cache_file.with_name(cache_file.name + ".sha256").is_file()


def test_corrupted_glue_feature_cache_is_recomputed(bert_tiny, tmp_path, caplog):
    from benchmarks.glue_encode import features

    first = ["The cat sat on the mat.", "A man walked to work.", "She plays the piano."]
    plain, how = features(bert_tiny, first, None, cache_dir=tmp_path)
    assert how == "encoded"
    (cache_file,) = (tmp_path / "features").rglob("*.pt")
    _overwrite(cache_file, len(cache_file.read_bytes()) // 2, 256)
    with caplog.at_level(logging.WARNING):
        again, how = features(bert_tiny, first, None, cache_dir=tmp_path)
    assert how == "encoded" and str(cache_file) in caplog.text
    torch.testing.assert_close(again, plain, rtol=0, atol=0)
    assert features(bert_tiny, first, None, cache_dir=tmp_path)[1] == "cached"


def test_stale_partial_of_a_dead_process_is_removed_and_a_live_one_kept(tmp_path):
    from harness.atomic import remove_stale_scratch

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # reaped: its pid no longer exists
    parent = tmp_path / "models"
    with atomic_directory(parent / "zoo-x") as live:
        (live / "w.bin").write_bytes(b"x")
        stale = parent / live.name.replace(f"-{os.getpid()}.", f"-{dead.pid}.")
        stale.mkdir()
        (stale / "half-written.bin").write_bytes(b"y")
        old_style = parent / ".zoo-y.abc123.partial"  # older code: no owner in the name, left alone
        old_style.mkdir()
        assert remove_stale_scratch(parent) == [stale]
        assert live.is_dir() and not stale.exists() and old_style.is_dir()
    assert (parent / "zoo-x" / "w.bin").read_bytes() == b"x" and not live.exists()


def test_model_cache_partial_from_killed_build_is_cleaned_on_start(private_cache):
    """A `.partial` left by a model-cache build killed with SIGKILL is removed by the next catalog fetch."""
    from harness.models.catalog import model_catalog

    script = ("import os, signal\n"
              "from harness.atomic import atomic_directory\n"
              "from harness.models.catalog import model_catalog\n"
              "catalog = model_catalog()\n"
              "with atomic_directory(catalog.cache_path(catalog.entry('zoo:bert-tiny'))) as scratch:\n"
              "    (scratch / 'config.json').write_text('{}')\n"
              "    os.kill(os.getpid(), signal.SIGKILL)\n")
    killed = subprocess.run([sys.executable, "-c", script], env=os.environ.copy())
    assert killed.returncode == -9
    models = private_cache / "models"
    assert [p.name for p in models.iterdir() if p.name.endswith(".partial")]
    model_catalog().fetch("zoo:bert-tiny")
    assert not [p for p in models.iterdir() if p.name.endswith(".partial")]


@pytest.mark.parametrize("content", ["[]", "{}", '{"files": []}', "not json"])
def test_malformed_model_complete_marker_is_rebuilt(private_cache, content, caplog):
    from harness.models.catalog import model_catalog

    catalog = model_catalog()
    folder = catalog.fetch("zoo:bert-tiny")
    (folder / ".complete.json").write_text(content)
    with caplog.at_level(logging.WARNING):
        assert catalog.fetch("zoo:bert-tiny") == folder
    assert "rebuilding" in caplog.text
    assert isinstance(json.loads((folder / ".complete.json").read_text())["files"], dict)


@pytest.mark.parametrize("content", ["[]", "not json"])
def test_malformed_data_complete_marker_is_rebuilt(private_cache, no_mirror, content, caplog):
    from harness.data.catalog import catalog

    first = catalog().resolve("stereoset-dev", ["dev.jsonl"])
    marker = first.path("dev.jsonl").parent / ".complete.json"
    marker.write_text(content)
    with caplog.at_level(logging.WARNING):
        again = catalog().resolve("stereoset-dev", ["dev.jsonl"])
    assert again.checksums == first.checksums and "rebuilding" in caplog.text
    assert isinstance(json.loads(marker.read_text()), dict)


@pytest.mark.slow
def test_corrupted_gradiend_checkpoint_is_detected_and_retrained(bert_tiny, mirror, tmp_path, caplog):
    """A damaged checkpoint in the shared GRADIEND cache folder is found by the folder's manifest and
    retrained (same seed, same data: the same weights); a loader without a cache says which file is bad."""
    from harness.errors import HarnessError
    from methods.gradiend.model import Gradiend
    from methods.gradiend.workflow import Settings, fit, prepare_data

    settings = Settings(max_steps=4, seeds=(0,))
    data = prepare_data(bert_tiny, settings)
    folder = tmp_path / "gradiend-shared" / "entry"
    first = fit(bert_tiny, settings, folder, data=data)
    assert not first.cache_hit
    checkpoint = folder / "gradiend.safetensors"
    _overwrite(checkpoint, len(checkpoint.read_bytes()) // 2)
    with pytest.raises(HarnessError, match=f"{checkpoint}.*corrupt.*delete"):
        Gradiend.load(checkpoint)
    with caplog.at_level(logging.WARNING):
        again = fit(bert_tiny, settings, folder, data=data)
    assert not again.cache_hit and str(checkpoint) in caplog.text
    torch.testing.assert_close(again.model.w_d, first.model.w_d, rtol=0, atol=0)
    assert fit(bert_tiny, settings, folder, data=data).cache_hit
