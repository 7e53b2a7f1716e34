"""One method-cache mechanism and one cache setting (docs/caching.md), with every existing entry still found.

The pinned keys and folders below are those of the content fingerprints (harness/models/fingerprint.py), which
re-keyed every cache once: before, a model's fingerprint hashed every file of its folder, so a newer
``transformers`` stamping its version into SmolLM2's config.json (bit-identical weights) re-keyed every cache of
the model, and the fresh machine's run of this test failed. A changed value would orphan every cache entry
written since — GRADIEND on SmolLM2 retrains for an hour. tests/test_fingerprint.py checks that the keys no
longer depend on library stamps, timings or logs.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import tempfile
from pathlib import Path

import pytest

from harness.api import RunContext
from harness.attribute_data import _features_key
from harness.config import expand, parse_config
from harness.models.interface import LanguageModel
from harness.pipeline import RUN_CACHE_ENV, run_cache_dir, run_experiment
from harness.records import read_record, record_path
from harness.variants import (
    VariantStep,
    apply_variant,
    method_cache_key,
    parse_variant,
    step_cache_key,
    weights_identity,
)

TEXTS = ["The nurse said she would come.", "He is a doctor.", "ünïcödé ✓"]
LINEAGE = [{"method": "cda", "key": "0123456789abcdef", "acts_on": "weights"},
           {"method": "inlp", "key": "fedcba9876543210", "acts_on": "representations"}]
STEP = VariantStep("inlp", "post", {"iterations": 10, "n_per_class": 300})
CACHE = Path("results/cache")  # what the pipeline passes for --results results/runs: relative, as given


@contextlib.contextmanager
def with_lineage(lm, lineage):
    """``lm`` as if ``lineage`` had been applied to it (what apply_variant records), restored afterwards."""
    saved = lm.origin
    lm.origin = {**saved, "lineage": lineage}
    try:
        yield lm
    finally:
        lm.origin = saved


def test_step_feature_and_weight_keys_are_the_ones_existing_entries_carry(bert_tiny):
    from benchmarks.glue_encode import cache_key

    ctx = RunContext(seed=1, protocol="cpu", bias_type="gender", cache_dir=CACHE)
    assert step_cache_key(bert_tiny, STEP, 1, ctx) == "35265ccaf241dcea"
    assert ctx.method_folder("inlp", "35265ccaf241dcea") == Path("results/cache/methods/inlp/35265ccaf241dcea")
    assert RunContext(cache_dir=None).method_folder("inlp", "35265ccaf241dcea") is None
    assert weights_identity(bert_tiny) == "7a48803042466885"
    assert _features_key(bert_tiny, TEXTS, 128) == "c821a9988c43b9e56f811a66"
    assert cache_key(bert_tiny, TEXTS, [None, "x", "y"], max_length=128, precision="float32") == \
        "38bdfe23a010152973b3b520"
    with with_lineage(bert_tiny, LINEAGE) as lm:
        assert step_cache_key(lm, STEP, 1, ctx) == "8203718c583d852d"
        assert weights_identity(lm) == "f1a2aa841ece2c60"
        assert _features_key(lm, TEXTS, None) == "d6326a19a0f80c2b3829b7e5"


def test_gradiend_training_folder_is_the_one_existing_entries_live_in(bert_tiny):
    from methods.gradiend.adapter import GradiendBPI, shared_folder
    from methods.gradiend.workflow import Settings

    ctx = RunContext(seed=1, protocol="cpu", bias_type="gender", cache_dir=CACHE)
    small = Settings(max_steps=4, seeds=(0,))
    assert shared_folder(bert_tiny, GradiendBPI().settings(ctx), ctx) == \
        Path("results/cache/methods/gradiend-shared/df98e62e2b4587e5")
    assert shared_folder(bert_tiny, small, ctx) == Path("results/cache/methods/gradiend-shared/37c3079dd38970cd")
    # without a cache directory the shared cache still has a folder: the same key under the temp folder
    assert shared_folder(bert_tiny, small, RunContext(seed=1)) == \
        Path(tempfile.gettempdir()) / "gradiend-bench-cache/methods/gradiend-shared/37c3079dd38970cd"
    with with_lineage(bert_tiny, LINEAGE) as lm:
        assert shared_folder(lm, small, ctx) == Path("results/cache/methods/gradiend-shared/ba97a00a30419b94")


def test_smollm2_gradiend_keeps_its_hour_of_training(smollm2):
    """The converged SmolLM2 GRADIEND in results/cache (default options, run seed 0, cpu protocol) and its
    gradiend step folder, as the grid finds them."""
    from methods.gradiend.adapter import VERSION, GradiendBPI, shared_folder

    ctx = RunContext(seed=0, protocol="cpu", bias_type="gender", cache_dir=CACHE)
    assert shared_folder(smollm2, GradiendBPI().settings(ctx), ctx) == \
        Path("results/cache/methods/gradiend-shared/f4dfa6feb22644eb")
    step = VariantStep("gradiend", "weight", dict(GradiendBPI().options))
    assert step_cache_key(smollm2, step, VERSION, ctx) == "2f5f38111dfa2f18"


def test_shared_cache_adds_the_model_and_refuses_a_payload_that_would_replace_it(bert_tiny):
    ctx = RunContext(cache_dir=Path("/c"))
    payload = {"settings": {"a": 1}, "version": 3}
    folder = ctx.shared_cache("demo-shared", bert_tiny, payload)
    assert folder == Path("/c/methods/demo-shared") / method_cache_key(bert_tiny, payload)
    with with_lineage(bert_tiny, LINEAGE) as lm:  # another model state, another folder
        assert ctx.shared_cache("demo-shared", lm, payload) != folder
    with pytest.raises(ValueError, match="may not set \\['lineage'\\]"):
        ctx.shared_cache("demo-shared", bert_tiny, {"lineage": []})


def test_run_cache_is_the_flag_else_the_environment_else_beside_the_results(monkeypatch, tmp_path):
    monkeypatch.delenv(RUN_CACHE_ENV, raising=False)
    monkeypatch.setenv("GRADIEND_BENCH_CACHE", str(tmp_path / "downloads"))  # models and data: another cache
    assert run_cache_dir(Path("results/runs")) == Path("results/cache")
    monkeypatch.setenv(RUN_CACHE_ENV, str(tmp_path / "env"))
    assert run_cache_dir(Path("results/runs")) == tmp_path / "env"
    assert run_cache_dir(Path("results/runs"), tmp_path / "flag") == tmp_path / "flag"


def test_run_context_and_gradiend_settings_are_frozen():
    from methods.gradiend.cli import register, train_settings
    from methods.gradiend.workflow import Settings

    with pytest.raises(dataclasses.FrozenInstanceError):
        RunContext().step_cache = Path("x")
    saved = Settings(bf16=True, seeds=(0, 1, 2))
    with pytest.raises(dataclasses.FrozenInstanceError):
        saved.max_steps = 5
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["gradiend", "train", "--dir", "g", "--max-steps", "5", "--seeds", "3", "4"])
    assert train_settings(saved, args) == dataclasses.replace(saved, max_steps=5, seeds=(3, 4))
    assert saved == Settings(bf16=True, seeds=(0, 1, 2))  # the cache key it came from is unchanged
    plain = parser.parse_args(["gradiend", "train", "--dir", "g"])
    assert train_settings(saved, plain) == saved


def test_language_model_leaves_the_callers_tokenizer_unchanged(bert_tiny):
    import copy

    given = copy.deepcopy(bert_tiny.tokenizer)
    given.padding_side = "left"
    given.pad_token = None
    lm = LanguageModel(bert_tiny.clone().model, given, "masked", "copy")
    assert given.padding_side == "left" and given.pad_token is None
    assert lm.tokenizer is not given and lm.tokenizer.padding_side == "right"
    assert lm.tokenizer.pad_token == given.unk_token  # BERT has no end-of-text token
    ready = bert_tiny.clone()
    assert LanguageModel(ready.model, ready.tokenizer, "masked", "copy").tokenizer is ready.tokenizer


def test_the_chosen_cache_holds_the_fits_and_the_record_names_it(tmp_path, mirror, monkeypatch):
    monkeypatch.delenv(RUN_CACHE_ENV, raising=False)
    grid = {"name": "t", "models": ["zoo:bert-tiny"], "seeds": [0], "variants": ["sentdebias"],
            "method_options": {"sentdebias": {"n_examples": 40}},
            "benchmarks": [{"name": "lm-quality", "options": {"n_sentences": 40, "resamples": 200}}]}
    config = parse_config({**grid, "results_dir": str(tmp_path / "a" / "runs")})
    chosen = tmp_path / "chosen-cache"
    first = read_record(run_experiment(config, cache_dir=chosen, progress=False).written[0])
    key = first.variant_steps[0]["cache_key"]
    assert first.environment["cache_dir"] == str(chosen) and "cache_dir" not in json.dumps(first.config)
    assert (chosen / "methods" / "sentdebias" / key).is_dir()
    assert not (tmp_path / "a" / "cache" / "methods").exists()  # beside the results: record locks only
    assert first.variant_steps[0]["notes"]["cache_hit"] is False
    # another results folder, the same cache through the environment: the fit is reused, the record named alike
    monkeypatch.setenv(RUN_CACHE_ENV, str(chosen))
    other = parse_config({**grid, "results_dir": str(tmp_path / "b" / "runs")})
    path = run_experiment(other, progress=False).written[0]
    second = read_record(path)
    assert second.variant_steps[0]["notes"]["cache_hit"] is True and second.environment["cache_dir"] == str(chosen)
    assert path == record_path(tmp_path / "b" / "runs", expand(other)[0])
    assert path.name == record_path(tmp_path / "a" / "runs", expand(config)[0]).name
    assert second.scores["accuracy"].value == first.scores["accuracy"].value


def test_apply_variant_gives_each_step_its_folder_and_leaves_the_context_as_it_was(bert_tiny, tmp_path, mirror):
    ctx = RunContext(cache_dir=tmp_path, progress=False)
    before = dataclasses.asdict(ctx)
    with with_lineage(bert_tiny, []):
        lm, log = apply_variant(bert_tiny, parse_variant("sentdebias", {"sentdebias": {"n_examples": 40}}), ctx)
        lm.clear_hooks()
    assert dataclasses.asdict(ctx) == before and ctx.step_cache is None
    assert (ctx.method_folder("sentdebias", log[0]["cache_key"]) / ".sha256.json").is_file()


def test_artifacts_go_to_the_flag_else_the_environment_else_beside_the_results(tmp_path, mirror, monkeypatch):
    from harness.pipeline import ARTIFACTS_ENV, artifacts_root

    monkeypatch.delenv(ARTIFACTS_ENV, raising=False)
    assert artifacts_root(Path("results/runs")) == Path("results/artifacts")
    monkeypatch.setenv(ARTIFACTS_ENV, str(tmp_path / "env"))
    assert artifacts_root(Path("results/runs")) == tmp_path / "env"
    assert artifacts_root(Path("results/runs"), tmp_path / "flag") == tmp_path / "flag"
    config = parse_config({"name": "t", "models": ["zoo:bert-tiny"], "seeds": [0], "variants": ["base"],
                           "benchmarks": [{"name": "crows", "options": {"resamples": 10}}],
                           "results_dir": str(tmp_path / "a" / "runs")})
    chosen = tmp_path / "chosen-artifacts"
    path = run_experiment(config, artifacts_dir=chosen, progress=False).written[0]
    written = Path(read_record(path).artifacts["pair_scores"])
    relative = path.relative_to(tmp_path / "a" / "runs").with_suffix("")
    assert written == chosen / relative / "crows_pair_scores.json" and written.is_file()
    assert not (tmp_path / "a" / "artifacts").exists() and not (tmp_path / "env").exists()
