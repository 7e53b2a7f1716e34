"""GRADIEND decoder-selection data: the shipped offline GENTypes substitute, its catalog source, the loaders."""

from __future__ import annotations

import json
import re
import string

import pytest

from benchmarks.crows import load_pairs
from benchmarks.seat import load_seat_test
from benchmarks.stereoset import load_clusters
from harness.attributes import AttributeLexicon
from harness.data.catalog import PACKAGE_DIR, DataCatalog, catalog
from harness.errors import HarnessError
from methods.gradiend.data import _name_table
from methods.gradiend.selection_data import (
    NOMQUAMGENDER_MIN_COUNT,
    NOMQUAMGENDER_MIN_SOURCES,
    load_name_genders,
    load_selection_prompts,
    namextend_names,
    read_prompts,
)

PREFIX = "My friend, [NAME], "
SHIPPED = PACKAGE_DIR / "catalog" / "data" / "gentypes-offline.jsonl"
# Gender cues beyond bias-bench's attribute words: object/possessive pronouns and words that name a gender.
EXTRA_GENDERED = {"he", "she", "him", "her", "his", "hers", "himself", "herself", "boyfriend", "girlfriend",
                  "fiance", "fiancee", "widow", "widower", "bachelor", "maiden", "masculine", "feminine", "manly",
                  "girly", "boyish", "maternity", "paternity", "niece", "nephew", "wife", "husband", "mother",
                  "father", "waitress", "hostess", "heroine", "sorority", "fraternity"}
# The descriptions name no one: their only capitalised words are days, months, acronyms and a fitness brand.
ALLOWED_CAPITALS = {"Sunday", "Sundays", "Saturday", "Thursday", "Friday", "November", "GPS", "Zumba"}


def _description(text: str) -> str:
    return text.removeprefix(PREFIX)


def _normalise(text: str) -> str:
    """Lower-cased, punctuation replaced by spaces, whitespace collapsed."""
    table = str.maketrans(string.punctuation, " " * len(string.punctuation))
    return " ".join(text.lower().translate(table).split())


@pytest.fixture(scope="module")
def shipped():
    return read_prompts(SHIPPED)


def test_offline_set_is_large_balanced_and_in_gentypes_form(shipped):
    assert len(shipped) >= 240
    assert sum(p.stereotype == "M" for p in shipped) == sum(p.stereotype == "F" for p in shipped) == len(shipped) // 2
    assert len({_normalise(_description(p.text)) for p in shipped}) == len(shipped)  # no duplicates
    for prompt in shipped:
        description = _description(prompt.text)
        assert prompt.text.startswith(PREFIX), prompt.text
        assert description[0].islower() and description.endswith("."), prompt.text
        assert not re.search(r"[.!?;]", description[:-1]), f"not one plain sentence: {prompt.text}"
        assert "[" not in description, prompt.text  # the prefix holds the only slot
        capitals = set(re.findall(r"\b[A-Z][A-Za-z]*\b", description))
        assert capitals <= ALLOWED_CAPITALS, f"{prompt.text}: {capitals - ALLOWED_CAPITALS}"


def test_offline_set_has_no_gendered_words(mirror, shipped):
    lexicon = AttributeLexicon.load("gender")
    gendered = {w for group in lexicon.groups for w in group} | EXTRA_GENDERED
    assert {"she", "actress", "wife"} <= gendered
    for prompt in shipped:
        words = set(re.findall(r"[a-z]+(?:'[a-z]+)?", _description(prompt.text).lower()))
        words |= {w.split("'")[0] for w in words}  # "children's" → "children"
        assert not words & gendered, f"{prompt.text}: {words & gendered}"


def _evaluation_sentences() -> list[str]:
    """Every sentence of StereoSet (dev: all text fields of both tasks; test subset), CrowS-Pairs and SEAT."""
    cat = catalog()
    sentences = []
    dev = cat.resolve("stereoset-dev", ["dev.jsonl"]).path("dev.jsonl")
    for line in dev.read_text().splitlines():
        row = json.loads(line)
        sentences += [row[k] for k in ("context", "stereotype", "anti-stereotype", "unrelated")]
    clusters, _ = load_clusters(cat.resolve("stereoset-test-subset").path("test_subset.json"))
    sentences += [c.context for c in clusters] + [text for c in clusters for _, text in c.sentences.values()]
    for pair in load_pairs(cat.resolve("crows-pairs").path("crows_pairs_anonymized.csv")):
        sentences += [pair.sent_more, pair.sent_less]
    seat = cat.resolve("seat")
    for file_name in seat.files:
        sentences += [e for group in load_seat_test(seat.path(file_name)).values() for e in group["examples"]]
    return sentences


def test_no_selection_prompt_occurs_in_an_evaluation_set(mirror, shipped):
    sentences = [_normalise(s) for s in _evaluation_sentences()]
    assert len(sentences) > 30000  # all four sources were read
    everything = "\n".join(sentences)
    assert _normalise("The chess player was asian.") in everything  # a real StereoSet sentence is found
    prompts = {_normalise(p.text) for p in shipped}
    assert not prompts & set(sentences)
    leaked = [p.text for p in shipped if _normalise(_description(p.text)) in everything]
    assert not leaked, leaked


def test_loader_returns_the_offline_substitute_with_provenance(private_cache, shipped):
    prompts, provenance = load_selection_prompts()
    assert prompts == shipped
    assert provenance["dataset"] == "gentypes" and provenance["substitute"] is True
    assert provenance["n_prompts"] == len(shipped)
    assert provenance["source"] == "project catalog/data/gentypes-offline.jsonl (offline substitute)"
    assert provenance["sha256"] == catalog().entry("gentypes").files["gentypes-offline.jsonl"]
    hub = catalog().entry("gentypes").sources[0]
    assert (hub.kind, hub.hub_id) == ("hub", "aieng-lab/gentypes")  # online, the real data set comes first


def test_project_source_reads_in_place_pins_checksum_and_stays_in_the_package(tmp_path):
    relative = "catalog/data/gentypes-offline.jsonl"
    pin = catalog().entry("gentypes").files["gentypes-offline.jsonl"]

    def catalog_with(pin: str, location: str = relative) -> DataCatalog:
        path = tmp_path / "datasets.yaml"
        path.write_text(f"datasets:\n  p:\n    files: {{x.jsonl: '{pin}'}}\n    sources:\n"
                        f"    - {{kind: project, note: offline substitute, files: {{x.jsonl: '{location}'}}}}\n")
        return DataCatalog.from_yaml(path)

    resolved = catalog_with(pin).resolve("p")
    assert resolved.path("x.jsonl").samefile(SHIPPED)
    assert resolved.source == f"project {relative} (offline substitute)"
    with pytest.raises(HarnessError, match=r"sha256 82e9933983.*expected 000000000000"):
        catalog_with("0" * 64).resolve("p")
    with pytest.raises(HarnessError, match=r"missing .*catalog/data/absent.jsonl"):
        catalog_with(pin, "catalog/data/absent.jsonl").resolve("p")
    with pytest.raises(HarnessError, match="outside the harness package"):
        catalog_with(pin, "../README.md")


@pytest.mark.parametrize("line, problem", [
    ('{"text": "My friend, [NAME], likes [NAME].", "stereotype": "M"}', "2 [NAME] slots"),
    ('{"text": "My friend likes to knit.", "stereotype": "F"}', "0 [NAME] slots"),
    ('{"text": "My friend, [NAME], likes to knit", "stereotype": "F"}', "does not end with '.'"),
    ('{"text": "My friend, [NAME], likes to knit.", "stereotype": "female"}', "is not M or F"),
    ('{"prompt": "My friend, [NAME], likes to knit."}', "not a JSON object with a string 'text'"),
    ("My friend, [NAME], likes to knit.", "not a JSON object"),
])
def test_malformed_prompt_file_is_a_one_line_error(tmp_path, line, problem):
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"text": "My friend, [NAME], sews.", "stereotype": "F"}\n\n' + line + "\n")
    with pytest.raises(HarnessError) as info:
        read_prompts(path)
    message = info.value.one_line()
    assert f"{path}, line 3: " in message and problem in message and "\n" not in message
    assert "exactly one [NAME] slot" in message  # the fix


def test_empty_prompt_file_is_an_error(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(HarnessError, match="has no prompts"):
        read_prompts(tmp_path / "empty.jsonl")


def test_names_fall_back_to_filtered_nomquamgender_offline(private_cache):
    names, provenance = load_name_genders()
    assert provenance["dataset"] == "first-names" and provenance["substitute"] is True
    assert provenance["source"] == "wheel nomquamgender==0.1.4"
    assert "namextend" in provenance["unavailable"] and "offline" in provenance["unavailable"]
    assert provenance["n_names"] == len(names) > 10000
    table = names.set_index("name")
    assert table.loc["Mary", "gender"] == "F" and table.loc["John", "gender"] == "M"
    assert table.loc["Mary", "prob"] > 0.95 and table.loc["John", "prob"] > 0.95
    assert names["prob"].between(0.5, 1.0).all() and set(names["gender"]) == {"M", "F"}
    assert names["name"].is_unique and names["name"].str.fullmatch(r"[A-Z][a-z]*").all()
    raw = _name_table(str(catalog().resolve("first-names").path("name_data.json")))
    kept = {k.lower() for k in names["name"]}
    rare = next(k for k, v in raw.items() if k.isalpha() and k.isascii() and v[0] >= NOMQUAMGENDER_MIN_SOURCES
                and v[1] < NOMQUAMGENDER_MIN_COUNT)
    few_sources = next(k for k, v in raw.items() if k.isalpha() and k.isascii()
                       and v[0] < NOMQUAMGENDER_MIN_SOURCES and v[1] >= NOMQUAMGENDER_MIN_COUNT)
    assert rare not in kept and few_sources not in kept
    ambiguous = next(k for k in kept if 0.3 < raw[k][2] < 0.7)  # a truly mixed name keeps its majority gender
    assert table.loc[ambiguous.capitalize(), "gender"] == ("F" if raw[ambiguous][2] >= 0.5 else "M")


def test_namextend_rows_give_the_probability_of_their_own_gender(tmp_path):
    path = tmp_path / "train.jsonl"
    rows = [{"name": "Alex", "gender": "M", "count": 9, "probability": 0.1, "prob_F": 0.2},
            {"name": "Alex", "gender": "F", "count": 3, "probability": 0.1, "prob_F": 0.2},
            {"name": "Mia", "gender": "F", "count": 7, "probability": 0.1, "prob_F": 0.99}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    names = namextend_names(path)
    assert names.values.tolist() == [["Alex", "M", pytest.approx(0.8)], ["Alex", "F", 0.2], ["Mia", "F", 0.99]]
    path.write_text(json.dumps({"name": "Alex", "gender": "X", "prob_F": 0.2}) + "\n")
    with pytest.raises(HarnessError, match="genders other than M/F"):
        namextend_names(path)
