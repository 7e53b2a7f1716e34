"""Bootstrap helper, corpus split and atomic writes."""

from __future__ import annotations

import os

import numpy as np
import pytest

from harness.atomic import atomic_directory, write_json_atomic
from harness.data.corpus import is_heldout, sentence_pool, sentences, split_documents
from harness.stats import bootstrap_ratio


def test_bootstrap_ratio_value_and_interval():
    hits = np.array([1, 0, 1, 1])
    score = bootstrap_ratio(hits, scale=100, resamples=2000, seed=0)
    assert score.value == 75.0 and score.n == 4
    assert 0 <= score.low < 75 <= score.high <= 100
    weighted = bootstrap_ratio(np.array([2.0, 1.0]), np.array([4.0, 1.0]), resamples=10)
    assert weighted.value == pytest.approx(3 / 5)
    assert bootstrap_ratio(hits, seed=1).to_dict() == bootstrap_ratio(hits, seed=1).to_dict()
    constant = bootstrap_ratio(np.ones(10))
    assert constant.low == constant.high == constant.value == 1.0


def test_split_is_deterministic_and_order_independent():
    docs = [f"Document number {i}. It has text." for i in range(400)]
    train, held = split_documents(docs)
    train_r, held_r = split_documents(list(reversed(docs)))
    assert set(held) == set(held_r) and set(train) == set(train_r)
    assert not set(train) & set(held) and 5 <= len(held) <= 40  # ~5% of 400
    assert all(is_heldout(d) for d in held)


def test_sentence_splitting():
    doc = "Dr. Smith went home. She said \"Hello there, friend.\" Then it rained all day long in the town."
    assert sentences(doc)[0] == "Dr. Smith went home."
    pool = sentence_pool([doc, doc], min_words=4)
    assert pool == ["Dr. Smith went home.", "She said \"Hello there, friend.\"",
                    "Then it rained all day long in the town."]


def test_atomic_writes_leave_nothing_half_written(tmp_path):
    target = tmp_path / "r.json"
    write_json_atomic(target, {"a": 1})
    with pytest.raises(TypeError):
        write_json_atomic(target, {"a": object()})
    assert target.read_text().strip().startswith("{") and '"a": 1' in target.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
    with pytest.raises(RuntimeError):
        with atomic_directory(tmp_path / "d") as scratch:
            (scratch / "x").write_text("partial")
            raise RuntimeError("interrupted")
    assert sorted(os.listdir(tmp_path)) == ["r.json"]
