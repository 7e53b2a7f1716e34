"""CDA and Dropout: augmentation properties, raised dropout, training on the shared engine, caching."""

import random

import pytest
import torch

from harness.api import RunContext
from harness.attributes import AttributeLexicon
from harness.errors import HarnessError
from harness.registry import get_method
from harness.variants import VariantStep, apply_variant, parse_variant, step_cache_key

TINY = {"steps": 6, "batch_size": 8, "seq_len": 32, "lr": 5e-4}


def test_cda_doubles_exactly_the_attribute_sentences(mirror):
    from methods.cda import augment

    lexicon = AttributeLexicon.load("gender")
    sentences = ["He met his uncle in Paris.", "The weather was fine.", "My Mother called.", "Rain fell all day."]
    augmented = augment(sentences, lexicon, random.Random(0))
    assert augmented == ["He met his uncle in Paris.", "My Mother called.",
                         "She met her aunt in Paris.", "My Father called."]


def test_swap_round_trips_and_keeps_casing(mirror):
    lexicon = AttributeLexicon.load("gender")
    text = "HE said He and he saw the King."
    swapped = lexicon.swap(text)
    assert swapped == "SHE said She and she saw the Queen."
    assert lexicon.swap(swapped) == text


def test_race_triples_swap_to_another_member(mirror):
    lexicon = AttributeLexicon.load("race")
    out = {lexicon.swap("A Black family.", random.Random(seed)) for seed in range(20)}
    assert out and all(o != "A Black family." and o.startswith("A ") for o in out)
    assert out <= {"A Caucasian family.", "A Asian family.", "A White family."}


def test_missing_attribute_words_are_a_clear_error(mirror):
    with pytest.raises(HarnessError, match="no attribute words for bias type 'age'"):
        AttributeLexicon.load("age")


def _ctx(tmp_path, protocol="cpu"):
    return RunContext(seed=0, protocol=protocol, cache_dir=tmp_path / "cache", progress=False)


def test_dropout_trains_with_raised_dropout_and_is_cached(bert_tiny, mirror, tmp_path):
    ctx = _ctx(tmp_path)
    steps = parse_variant("dropout", {"dropout": TINY})
    model, log = apply_variant(bert_tiny.clone(), steps, ctx)
    config = model.model.config
    assert config.hidden_dropout_prob == 0.2 and config.attention_probs_dropout_prob == 0.15
    training = log[0]["notes"]["training"]
    assert training["final"]["loss"] < training["initial"]["loss"]
    assert training["cache_hit"] is False and log[0]["notes"]["protocol"] == "cpu"
    changed = [n for (n, a), b in zip(model.model.named_parameters(), bert_tiny.model.parameters())
               if not torch.equal(a, b)]
    assert changed  # weights changed; the base model was left alone (apply works on a copy)
    again, log_again = apply_variant(bert_tiny.clone(), steps, _ctx(tmp_path))
    assert log_again[0]["notes"]["training"]["cache_hit"] is True
    assert log_again[0]["cache_key"] == log[0]["cache_key"]
    for a, b in zip(model.model.parameters(), again.model.parameters()):
        torch.testing.assert_close(a, b)


def test_cda_trains_on_augmented_sentences_and_changes_the_lineage(bert_tiny, mirror, tmp_path):
    ctx = _ctx(tmp_path)
    model, log = apply_variant(bert_tiny.clone(), parse_variant("cda", {"cda": TINY}), ctx)
    notes = log[0]["notes"]
    assert notes["augmented_sentences"] == 2 * notes["attribute_sentences"] > 1000
    assert notes["training"]["final"]["loss"] < notes["training"]["initial"]["loss"]
    # a post-processing step fitted after CDA gets a different cache folder than one on the base model
    post = VariantStep("inlp", "post", {})
    assert step_cache_key(model, post, 1, ctx) != step_cache_key(bert_tiny, post, 1, ctx)


def test_training_protocols_differ_and_unknown_options_fail():
    from harness.pretraining import resolve_training

    corpus_cpu, cpu = resolve_training({}, "cpu", "masked")
    corpus_full, full = resolve_training({}, "full", "masked")
    assert corpus_cpu == "corpus-en" and corpus_full == "wikipedia-en"
    assert full.batch_size * full.grad_accumulation == 512 and full.seq_len == 512 and full.lr == 5e-5
    assert resolve_training({"steps": 7}, "cpu", "causal")[1].steps == 7
    with pytest.raises(HarnessError, match="has no option"):
        get_method("cda")(stepz=3)
