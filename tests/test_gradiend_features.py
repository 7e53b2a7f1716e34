"""GRADIEND feature specs: mining on a hand-made corpus, the shipped bias types' data unchanged, malformed
specs, and the top-k comparison of any number of runs."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import pytest
import torch

from harness.errors import HarnessError
from methods.gradiend.comparison import Run, compare_runs, stability, write_comparison
from methods.gradiend.data import build_data, feature_classes
from methods.gradiend.feature_spec import load_feature, parse_feature, shipped_features
from methods.gradiend.gradients import ParamMap
from methods.gradiend.mining import mine_word_templates
from methods.gradiend.model import Gradiend

NUMBER = {"name": "number",
          "classes": [{"name": "3SG", "words": ["he", "she", "it"]}, {"name": "3PL", "words": ["they"]}],
          "min_words": 4, "min_left_words": 1, "next_words": ["is", "are", "was", "were", "said"],
          "render": {"scope": "next-word", "pairs": [["is", "are"], ["was", "were"]]}}

CORPUS = [
    ["In the end it was quiet there.",          # 3SG it + was -> kept, rendered were
     "After lunch they are at the park.",       # 3PL they + are -> kept, rendered is
     "He is here today, said Ann.",             # no word before the pronoun (min_left_words 1) -> dropped
     "Later she said it was fine.",             # two class words -> dropped
     "Then they slept at home again.",          # next word not allowed -> dropped
     "Yes he is."],                             # too short (min_words 4) -> dropped
    ["Since Monday He was away from home.",     # capitalised mid-sentence -> casing kept (He/They)
     "In the end it was quiet there."],         # a duplicate template -> once
]


def test_word_mining_keeps_exactly_the_sentences_the_spec_allows():
    spec = parse_feature(NUMBER, "number.yaml")
    rows = mine_word_templates(CORPUS, spec, (("he", "she", "it"), ("they",)), (0, 1), seed=0)
    by_text = {r["text_0"]: r for r in rows}
    assert len(rows) == 3
    quiet = by_text["In the end [TARGET] was quiet there."]
    assert quiet == {"text_0": "In the end [TARGET] was quiet there.",
                     "text_1": "In the end [TARGET] were quiet there.", "target_0": "it", "target_1": "they", "cls": 0}
    park = by_text["After lunch [TARGET] is at the park."]
    assert park["text_1"] == "After lunch [TARGET] are at the park." and park["cls"] == 1
    assert park["target_1"] == "they" and park["target_0"] in ("he", "she", "it")
    away = by_text["Since Monday [TARGET] was away from home."]
    assert (away["target_0"], away["target_1"], away["text_1"]) == ("He", "They", "Since Monday [TARGET] were away "
                                                                                  "from home.")


def test_counterparts_follow_corpus_frequencies_and_the_seed():
    spec = parse_feature(NUMBER, "number.yaml")
    corpus = [[f"On day {i} they are out."] for i in range(300)] + [["Some say it was there."] * 1]
    corpus += [[f"By noon {n} he was there."] for n in range(200)]  # he is 200× as frequent as it, she absent
    with pytest.raises(HarnessError, match="word 'she' never occurs in the corpus"):
        mine_word_templates(corpus, spec, (("he", "she", "it"), ("they",)), (0, 1), seed=0)
    corpus.append(["Once she was there too."])
    rows = mine_word_templates(corpus, spec, (("he", "she", "it"), ("they",)), (0, 1), seed=0)
    drawn = [r["target_0"] for r in rows if r["cls"] == 1]
    assert drawn.count("he") > 0.9 * len(drawn)  # ≈ 200/202 expected
    again = mine_word_templates(corpus, spec, (("he", "she", "it"), ("they",)), (0, 1), seed=0)
    other = mine_word_templates(corpus, spec, (("he", "she", "it"), ("they",)), (0, 1), seed=1)
    assert again == rows  # seeded
    assert [r["target_0"] for r in other] != [r["target_0"] for r in rows]  # by the seed, not the process


def test_a_capitalised_class_word_keeps_its_case_and_its_counterpart_follows_the_position():
    spec = parse_feature({"name": "person", "classes": [{"name": "1SG", "words": ["I"]},
                                                        {"name": "3SG", "words": ["he"]}],
                          "render": {"scope": "next-word", "pairs": [["am", "is"]]}})
    rows = mine_word_templates([["Today I am at home.", "I am at home now.", "Today he is at home."]], spec,
                               (("I",), ("he",)), (0, 1), seed=0)
    got = {(r["text_0"], r["target_0"], r["target_1"]) for r in rows}
    assert got == {("Today [TARGET] am at home.", "I", "he"), ("[TARGET] am at home now.", "I", "He")}
    assert {r["text_1"] for r in rows} == {"Today [TARGET] is at home.", "[TARGET] is at home now."}


# sha256 (first 16 hex) of the CSV/JSON files the builders this code path replaced (commit 83e364d) wrote from the
# first 6,000 training documents of the corpus: the shipped gender/race/religion specs must give the same bytes for
# the same seed (checked on the whole corpus too, for seeds 0-2 and the cpu cap, when the specs were introduced)
LEGACY = {
    ("gender", 1, (0, 1)): {"data.json": "88b165f95b7e7107", "names.csv": "80e75e05ede29ab1",
                            "neutral.csv": "37a240a2264beed9", "templates.csv": "dc27bf04707f830b"},
    ("race", 2, (0, 2)): {"data.json": "2b16babdd7393104", "names.csv": "bc5290e6fb7d8dbc",
                          "neutral.csv": "cf14408797ad8421", "templates.csv": "3738d0b715f0f7a5"},
    ("religion", 1, (1, 2)): {"data.json": "abb2b21d1881e912", "names.csv": "bc5290e6fb7d8dbc",
                              "neutral.csv": "37a240a2264beed9", "templates.csv": "39c136e60b9368f7"},
}


@pytest.fixture(scope="module")
def corpus_part():
    from conftest import require_mirror
    from harness.data.corpus import load_documents, split_documents

    require_mirror()
    return split_documents(load_documents())[0][:6000]


def _digests(data) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        data.save(Path(tmp))
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:16] for p in sorted(Path(tmp).iterdir())
                if p.suffix in (".csv", ".json")}


@pytest.mark.parametrize("case", sorted(LEGACY), ids=lambda c: f"{c[0]}-seed{c[1]}")
def test_shipped_bias_type_specs_give_the_replaced_builders_bytes(corpus_part, case):
    bias_type, seed, pair = case
    data = build_data(bias_type, seed, pair=pair, n_neutral=100, max_templates=200, documents=corpus_part)
    assert _digests(data) == LEGACY[case]


def test_shipped_specs_load_and_bias_types_keep_their_classes():
    assert {"gender", "race", "religion", "number-3sg-3pl", "person"} <= set(shipped_features())
    assert feature_classes("gender").key == "gender:male-female"
    number = load_feature("number-3sg-3pl")
    assert number.shipped and number.source == "methods/gradiend/features/number-3sg-3pl.yaml"
    assert [c.words for c in number.classes] == [("he", "she", "it"), ("they",)]
    assert load_feature("gender").objective == "name-prediction" and load_feature("race").objective == "class-words"


MALFORMED = [
    ({**NUMBER, "colour": "red"}, "unknown key 'colour'"),
    ({**NUMBER, "classes": [{"name": "3SG", "words": []}, {"name": "3PL", "words": ["they"]}]},
     "class '3SG' has no words"),
    ({**NUMBER, "classes": [{"name": "3SG", "words": ["he"]}]}, "needs exactly two classes"),
    ({**NUMBER, "classes": [{"name": "A", "words": ["he"]}, {"name": "B", "words": ["He"]}]},
     "word 'he' is in both classes"),
    ({**NUMBER, "classes": [{"name": "A", "words": ["he is"]}, {"name": "B", "words": ["they"]}]},
     "is not one word"),
    ({**NUMBER, "mining": "regex"}, "mining 'regex' is not known"),
    ({**NUMBER, "render": {"scope": "sentence"}}, "render scope 'sentence' is not known"),
    ({**NUMBER, "render": {"pairs": [["is"]]}}, "render pairs must be"),
    ({**NUMBER, "splits": {"train": 0.9, "val": 0.1, "test": 0.1}}, "are not positive fractions summing to 1"),
    ({**NUMBER, "min_left_words": -1}, "min_left_words must be a non-negative integer"),
    ({k: v for k, v in NUMBER.items() if k != "name"}, "has no name"),
    (["not", "a", "mapping"], "is not a mapping"),
]


@pytest.mark.parametrize("raw,message", MALFORMED, ids=[m for _, m in MALFORMED])
def test_malformed_specs_fail_in_one_line_naming_the_spec(raw, message):
    with pytest.raises(HarnessError) as err:
        parse_feature(raw, "my-spec.yaml")
    text = err.value.one_line()
    assert message in text and "my-spec.yaml" in text and "\n" not in text


def test_unreadable_or_missing_spec_files_fail_in_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(HarnessError, match="bad.yaml is not valid YAML at line 1"):
        load_feature(bad)
    with pytest.raises(HarnessError, match="'nope' is neither a shipped feature nor a file"):
        load_feature("nope")


# -- comparison ------------------------------------------------------------------------------------
def _run(folder: Path, names: list[str], w_d: torch.Tensor, feature: str, seed: int = 0) -> Run:
    dim = w_d.shape[-1]
    model = Gradiend(torch.zeros(1, dim), torch.zeros(1), w_d.reshape(1, dim), torch.zeros(1, dim), [seed])
    param_map = ParamMap(names, [(dim // len(names),)] * len(names))
    identity = {"folder": str(folder), "model": "m", "feature": feature, "run_seed": seed}
    return Run(folder, f"{feature}/s{seed}", model, param_map, identity)


def test_overlap_is_one_with_itself_and_zero_on_disjoint_parameters(tmp_path):
    a = _run(tmp_path / "a", ["layer.0.weight"], torch.arange(8.0), "number")
    b = _run(tmp_path / "b", ["layer.1.weight"], torch.arange(8.0), "person")
    flipped = _run(tmp_path / "c", ["layer.0.weight"], -torch.arange(8.0), "number", seed=1)  # |W_d| is the same
    result = compare_runs([a, b, flipped], 4, importance="weight")
    assert result["overlap"] == [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 1.0]]
    assert result["run_stability"]["number on m"]["mean_pairwise_overlap"] == 1.0
    paths = write_comparison(result, tmp_path / "overlap")
    assert [p.suffix for p in paths] == [".csv", ".json", ".png"] and all(p.is_file() for p in paths)
    saved = json.loads(paths[1].read_text())
    assert saved["runs"][1]["feature"] == "person" and saved["labels"] == ["number/s0", "person/s0", "number/s1"]
    assert paths[0].read_text().splitlines()[1].startswith("number/s0,1.0000,0.0000,1.0000")


def test_runs_of_different_architectures_are_refused(tmp_path):
    a = _run(tmp_path / "a", ["layer.0.weight"], torch.arange(8.0), "number")
    b = _run(tmp_path / "b", ["layer.0.weight", "layer.1.weight"], torch.arange(8.0), "number")  # shape 4, not 8
    with pytest.raises(HarnessError, match="different shapes for layer.0.weight"):
        compare_runs([a, b], 2, importance="weight")


def test_learned_change_finds_the_trained_weights_under_a_shared_initialisation(tmp_path):
    dim, seed = 4000, 7
    init = Gradiend.init(dim, [seed]).w_d[0]
    first, second = torch.zeros(dim), torch.zeros(dim)
    first[:100] = 0.05 * init.abs().max()  # two features trained from the same initialisation, on other weights
    second[200:300] = -0.05 * init.abs().max()
    a = _run(tmp_path / "a", ["w"], init + first, "number", seed)
    b = _run(tmp_path / "b", ["w"], -(init + second), "person", seed)  # sign-normalised: the whole row flipped
    by_weight = compare_runs([a, b], 100, importance="weight")["overlap"][0][1]
    by_change = compare_runs([a, b], 100, importance="change")
    assert by_change["overlap"][0][1] == 0.0 and by_weight > 0.3  # |W_d| sees the shared initialisation
    assert a.keys(100) == {("w", i) for i in range(100)} and b.keys(100) == {("w", i) for i in range(200, 300)}
    assert by_change["importance"] == "change"


def test_stability_summarises_pairwise_overlaps_by_hand():
    a, b, c = {1, 2, 3, 4}, {1, 2, 3, 5}, {1, 2, 6, 7}
    s = stability([a, b, c], 4)
    overlaps = [3 / 4, 2 / 4, 2 / 4]
    assert s["mean_pairwise_overlap"] == pytest.approx(sum(overlaps) / 3)
    assert s["pairwise_overlap_std"] == pytest.approx(torch.tensor(overlaps).std(unbiased=False).item())
    assert (s["min_pairwise_overlap"], s["max_pairwise_overlap"]) == (0.5, 0.75)
    assert s["mean_pairwise_jaccard"] == pytest.approx((3 / 5 + 2 / 6 + 2 / 6) / 3)
    assert (s["intersection_size"], s["union_size"]) == (2, 7)
    assert stability([a], 4) is None


def test_the_variant_option_checks_the_spec_when_the_config_is_read_and_keeps_old_hashes():
    from harness.variants import parse_variant

    with pytest.raises(HarnessError, match="'nope' is neither a shipped feature nor a file"):
        parse_variant("gradiend", {"gradiend": {"feature": "nope"}})
    plain = parse_variant("gradiend")[0].options
    assert "feature" not in plain  # configs without the option hash as before it existed
    assert parse_variant("gradiend", {"gradiend": {"feature": "person"}})[0].options["feature"] == "person"


def test_cache_key_names_the_spec_content_only_when_a_feature_is_set(tmp_path):
    from dataclasses import replace

    from methods.gradiend.workflow import Settings

    plain = Settings()
    assert "feature" not in plain.key_fields()
    spec = tmp_path / "f.yaml"
    spec.write_text("name: f\nclasses:\n  - {name: A, words: [he]}\n  - {name: B, words: [they]}\n")
    first = replace(plain, feature=str(spec)).key_fields()["feature"]
    spec.write_text("name: f\nclasses:\n  - {name: A, words: [she]}\n  - {name: B, words: [they]}\n")
    assert replace(plain, feature=str(spec)).key_fields()["feature"]["sha256"] != first["sha256"]


def test_class_words_sharing_a_first_token_for_the_model_are_refused(bert_tiny):
    import pandas as pd

    from methods.gradiend.data import FeatureClasses, GradiendData
    from methods.gradiend.template_checks import check_targets

    assert bert_tiny.tokenizer.tokenize("shes")[0] == "she"  # WordPiece: she + ##s
    templates = pd.DataFrame({"text_0": ["Then [TARGET] left."], "text_1": ["Then [TARGET] left."],
                              "target_0": ["she"], "target_1": ["shes"], "cls": [0], "split": ["train"],
                              "kept": [True]})
    data = GradiendData(FeatureClasses("f", ("A", "B"), (("she",), ("shes",))), templates,
                        pd.DataFrame(columns=["name", "cls", "split"]), [])
    with pytest.raises(HarnessError, match="'she' and 'shes' start with the same token for zoo:bert-tiny"):
        check_targets(bert_tiny, data)
    data.templates["target_1"] = ["they"]
    check_targets(bert_tiny, data)
