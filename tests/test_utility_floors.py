"""Floors beside the GLUE/SuperGLUE scores: each task's constant-answer score by hand, the suite floor and
WNLI outside the mean, the floors of the real validation sets, and the zero-shot records' floors."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from benchmarks.glue_suite import suite_mean, with_floors
from benchmarks.glue_tasks import GLUE_TASKS, SUPERGLUE_TASKS, Split, load_task
from benchmarks.probe import floor_score
from harness.api import RunContext, Score
from harness.registry import get_benchmark

SPECS = {**{f"glue-{t.name}": t for t in GLUE_TASKS}, **{f"superglue-{t.name}": t for t in SUPERGLUE_TASKS}}


def _split(labels, groups=None) -> Split:
    labels = np.asarray(labels)
    return Split(["x"] * len(labels), [None] * len(labels), labels, None if groups is None else np.asarray(groups))


def test_floors_by_hand():
    # accuracy: the majority class's share (3 of 5)
    assert floor_score(SPECS["glue-sst2"], _split([1, 1, 0, 1, 0])) == pytest.approx(3 / 5)
    # MRPC F1 of always "paraphrase": 2p/(1+p) with p = 3/4 (always "not paraphrase" has F1 0)
    assert floor_score(SPECS["glue-mrpc"], _split([1, 1, 1, 0])) == pytest.approx(2 * 0.75 / 1.75)
    # CoLA MCC and STS-B Pearson: a constant answer has no correlation
    assert floor_score(SPECS["glue-cola"], _split([1, 0, 1, 1])) == 0.0
    assert floor_score(SPECS["glue-stsb"], _split([0.5, 3.0, 4.5])) == 0.0
    # CB: (acc + macro-F1)/2 of the best constant; always class 1 (3 of 5): (3/5 + (0 + 3/4 + 0)/3)/2
    assert floor_score(SPECS["superglue-cb"], _split([1, 1, 1, 0, 2])) == pytest.approx((3 / 5 + 0.25) / 2)
    # COPA: always the first choice is right in 2 of 3 examples (rows in choice order, label 1 = the right one)
    copa = _split([1, 0, 0, 1, 1, 0], [0, 0, 1, 1, 2, 2])
    assert floor_score(SPECS["superglue-copa"], copa) == pytest.approx(2 / 3)
    # MultiRC: always "true" — F1a 2·3/(2·3 + 2) = 3/4, EM: question 1 (all answers true) → 1/2; mean 5/8
    multirc = _split([1, 1, 0, 1, 0], [1, 1, 0, 0, 0])
    assert floor_score(SPECS["superglue-multirc"], multirc) == pytest.approx((3 / 4 + 1 / 2) / 2)


def _dev_labels(path: Path, column: str) -> list[str]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return [row[column] for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)]


def test_floors_of_the_real_dev_sets(mirror):
    from harness.data.catalog import resolve

    wnli = _dev_labels(Path(mirror) / "glue/WNLI/dev.tsv", "label")
    rte = _dev_labels(Path(mirror) / "glue/RTE/dev.tsv", "label")
    mrpc = [int(q) for q in _dev_labels(Path(mirror) / "glue/MRPC/dev.tsv", "Quality")]
    expected = {"glue-wnli": max(wnli.count("0"), wnli.count("1")) / len(wnli),
                "glue-rte": max(rte.count("entailment"), rte.count("not_entailment")) / len(rte),
                "glue-mrpc": 2 * np.mean(mrpc) / (1 + np.mean(mrpc))}
    for name, want in expected.items():
        _, evals = load_task(SPECS[name], resolve(name).files)
        assert floor_score(SPECS[name], evals["validation"]) == pytest.approx(want), name
    assert expected["glue-wnli"] == pytest.approx(40 / 71)  # the "majority class 56.3"


def test_suite_floor_is_the_mean_of_the_same_tasks_and_wnli_stays_outside():
    scores = {"cola": Score(10.0, 5.0, 15.0, 9), "rte": Score(60.0, 55.0, 65.0, 9), "wnli": Score(20.0, 10.0, 30.0, 9)}
    floors = {"cola": 0.0, "rte": 52.0, "wnli": 56.0}
    draws = {"cola": np.array([8.0, 12.0]), "rte": np.array([58.0, 62.0]), "wnli": np.array([0.0, 100.0])}
    per_task = {name: {} for name in scores}
    out, summary = with_floors(scores, floors, draws, per_task)
    assert out["score"].value == 35.0 and out["floor"].value == 26.0 and out["score"].n == out["floor"].n == 2
    assert (out["score"].low, out["score"].high) == pytest.approx((33.1, 36.9))  # draws' means 33 and 37
    assert summary == {"mean_over": ["cola", "rte"], "below_floor": ["wnli"]}
    assert per_task["wnli"] == {"floor": 56.0, "below_floor": True, "in_mean": False}
    assert per_task["rte"]["below_floor"] is False and out["wnli"] is scores["wnli"]
    assert suite_mean(["wnli"]) == ["wnli"]  # alone it is the suite


def test_glue_records_carry_floors_and_flags(bert_tiny, mirror, tmp_path):
    result = get_benchmark("glue")(protocol="probe", tasks="wnli,rte", max_train=200, resamples=100).run(
        bert_tiny, RunContext(cache_dir=tmp_path, progress=False))
    per_task = result.details["per_task"]
    assert result.details["mean_over"] == ["rte"] and per_task["wnli"]["in_mean"] is False
    assert result.scores["score"].value == result.scores["rte"].value
    assert result.scores["floor"].value == per_task["rte"]["floor"] == pytest.approx(146 / 277 * 100)
    assert per_task["wnli"]["floor"] == pytest.approx(40 / 71 * 100)
    for name in ("rte", "wnli"):
        assert per_task[name]["below_floor"] == (result.scores[name].value < per_task[name]["floor"])
    assert result.details["below_floor"] == [n for n in ("rte", "wnli") if per_task[n]["below_floor"]]
    assert "cheap stand-in" in result.details["note"]


@pytest.mark.slow
def test_zero_shot_protocol_runs_the_lm_eval_scorer_with_floors(bert_tiny, mirror, tmp_path):
    result = get_benchmark("glue")(protocol="zero-shot", tasks="wnli,stsb", resamples=100).run(
        bert_tiny, RunContext(cache_dir=tmp_path, progress=False))
    assert result.protocol == "zero-shot" and result.details["scorer"] == "glue-zs"
    assert "no zero-shot definition of stsb" in result.details["unavailable"]["stsb"]
    assert result.scores["floor"].value == pytest.approx(40 / 71 * 100)
    assert result.scores["score"].value == result.scores["wnli"].value  # WNLI alone is the suite


def test_leaderboard_shows_each_suite_score_with_its_floor(tmp_path):
    """Cells read "score (floor x)" with x averaged over the same models; the CSV gains glue_floor; the probe is
    labelled; a record without a floor shows none; records without floors change nothing."""
    import csv as csv_module
    import io

    from harness.records import load_records
    from leaderboard import export, html
    from leaderboard.ranking import build
    from leaderboard_records import make_record, write

    records = [make_record("m1", "base", "glue", {"score": 70.0, "floor": 40.0}),
               make_record("m2", "base", "glue", {"score": 60.0, "floor": 50.0}),
               make_record("m1", "a", "glue", {"score": 41.0, "floor": 40.0}),
               make_record("m2", "a", "glue", {"score": 59.0}),  # an old record: no floor
               make_record("m1", "base", "stereoset", {"ss": 60.0, "lms": 80.0}),
               make_record("m1", "a", "stereoset", {"ss": 55.0, "lms": 78.0})]
    for rec in records:
        rec.protocol = "probe" if rec.benchmark == "glue" else "cpu"
        write(tmp_path, rec)
    board = build(load_records(tmp_path), order=["base", "a"])
    cells = dict((row[0], row) for row in export.to_rows(board)[1])
    headers = export.to_rows(board)[0]
    assert cells["Base Model"][headers.index("GLUE")] == "65.00 (floor 45.00)"  # mean over m1 and m2
    assert cells["a"][headers.index("GLUE")] == "50.00"  # m2's record has no floor: none shown
    assert cells["a"][headers.index("LMS")] == "78.00"  # no floor declared for LMS
    rows = {r["variant"]: r for r in csv_module.DictReader(io.StringIO(export.to_csv(board)))}
    assert (rows["base"]["glue"], rows["base"]["glue_floor"], rows["a"]["glue_floor"]) == ("65.000000", "45.000000", "")
    assert "lms_floor" not in rows["base"] and "superglue_floor" not in rows["base"]
    markdown, text = export.to_markdown(board), export.to_text(board)
    assert "(floor x) after GLUE" in markdown and "probe = a cheap stand-in" in markdown
    assert "(floor x): what a constant answer scores" in text and "glue: probe = a cheap stand-in" in text
    assert "65.00 (floor 45.00)" in html.to_html(board) and "probe, a cheap stand-in" in export.to_latex(board)
    for rec in records:
        rec.scores.pop("floor", None)
        rec.protocol = "cpu"
    plain = tmp_path / "plain"
    for rec in records:
        write(plain, rec)
    board = build(load_records(plain), order=["base", "a"])
    assert "floor" not in export.to_markdown(board) + export.to_csv(board) + export.to_text(board)
