"""GRADIEND data builder on the real corpus and name list; failure behaviour of the cached workflow."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from harness.errors import HarnessError
from methods.gradiend.data import GradiendData, build_data
from methods.gradiend.training import sample_batch


@pytest.fixture(scope="module")
def documents():
    from conftest import require_mirror
    from harness.data.corpus import load_documents, split_documents

    require_mirror()

    return split_documents(load_documents())[0]


@pytest.fixture(scope="module")
def gender_data(documents):
    return build_data("gender", 0, max_templates=400, n_neutral=200, documents=documents)


def test_builder_is_deterministic_per_seed(documents):
    part = documents[:5000]  # determinism holds for any corpus; a part keeps the test quick
    first, again = (build_data("gender", 0, max_templates=200, n_neutral=50, documents=part) for _ in range(2))
    pd.testing.assert_frame_equal(first.templates, again.templates)
    pd.testing.assert_frame_equal(first.names, again.names)
    assert first.neutral == again.neutral
    other = build_data("gender", 1, max_templates=200, n_neutral=50, documents=part)
    assert not other.names.equals(first.names)
    assert not other.templates.equals(first.templates)


def test_name_split_is_disjoint_85_5_10_per_class_and_training_uses_train_names_only(gender_data):
    names = gender_data.names
    assert names["name"].is_unique
    for cls in (0, 1):
        part = names[names["cls"] == cls]
        share = part["split"].value_counts(normalize=True)
        assert (abs(share["train"] - 0.85) < 0.01 and abs(share["val"] - 0.05) < 0.01
                and abs(share["test"] - 0.10) < 0.01)
    train = set(names[names["split"] == "train"]["name"])
    held = set(names[names["split"] != "train"]["name"])
    assert not train & held
    texts, fact, counter = sample_batch(gender_data, "train", 1, 32, random.Random(0))
    used = {w for t in texts for w in t.split()}
    assert not used & (held - train)
    assert set(fact) <= {"she", "She"} and set(counter) <= {"he", "He"}


def test_templates_have_one_slot_a_name_and_class_consistent_rendering(gender_data):
    from harness.attributes import AttributeLexicon

    lexicon = AttributeLexicon.load("gender")
    t = gender_data.templates
    assert len(t) >= 300 and set(t["split"]) == {"train", "val", "test"}
    assert (t["text_0"].str.count(r"\[TARGET\]") == 1).all() and t["text_0"].str.contains(r"\[NAME\]", regex=True).all()
    assert (t["text_0"].str.find("[NAME]") < t["text_0"].str.find("[TARGET]")).all()  # the name comes first
    for text in t["text_0"]:
        assert 1 not in lexicon.classes_in(text)  # the male rendering has no female words
    assert set(t["cls"]) == {0, 1}


def test_neutral_sentences_have_no_attribute_words(gender_data):
    from harness.attributes import AttributeLexicon

    lexicons = [AttributeLexicon.load(b) for b in ("gender", "race", "religion")]
    assert len(gender_data.neutral) == 200
    assert not any(lex.contains(s) for lex in lexicons for s in gender_data.neutral)


def test_data_round_trips_through_parquet_and_csv(gender_data, tmp_path):
    gender_data.save(tmp_path / "data")
    assert (tmp_path / "data" / "templates.csv").is_file() and (tmp_path / "data" / "names.csv").is_file()
    loaded = GradiendData.load(tmp_path / "data")
    pd.testing.assert_frame_equal(loaded.templates, gender_data.templates)
    assert loaded.classes == gender_data.classes
    (tmp_path / "data" / "templates.parquet").write_bytes(b"not parquet")
    with pytest.raises(HarnessError, match="unreadable.*delete"):
        GradiendData.load(tmp_path / "data")


def test_race_pair_templates_target_the_attribute_word(documents):
    data = build_data("race", 0, pair=(0, 1), n_neutral=10, documents=documents)
    assert data.classes.names[0] != data.classes.names[1]
    row = data.templates.iloc[0]
    assert row["target_0"].lower() in data.classes.words[0] and row["target_1"].lower() in data.classes.words[1]


def test_diverging_workflow_raises_and_leaves_no_output(bert_tiny, gender_data, tmp_path):
    from methods.gradiend.workflow import Settings, filter_templates, fit

    filter_templates(bert_tiny, gender_data, 2, 0)
    assert gender_data.templates["kept"].any()
    folder = tmp_path / "gradiend"
    with pytest.raises(HarnessError, match="diverged"):
        fit(bert_tiny, Settings(lr=1e30, max_steps=4, seeds=(0,)), folder, data=gender_data, batch_size=4)
    assert not folder.exists()
    # only the lock file guarding the folder may stay (harness/locks.py never deletes lock files)
    leftovers = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert leftovers in ([], [".locks", ".locks/gradiend.lock"]), leftovers
