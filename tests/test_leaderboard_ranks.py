"""Proportional ranks exactly as the GRADIEND paper defines them, on hand-built records (see leaderboard_records)."""

from __future__ import annotations

import pytest

from harness.errors import HarnessError
from harness.records import load_records
from leaderboard.ranking import NA, build, display_name, pareto_front, proportional_ranks
from leaderboard.table import latest_records
from leaderboard_records import GRID, ORDER, make_record, write_grid


@pytest.fixture
def board(tmp_path):
    write_grid(tmp_path, GRID)
    return build(latest_records(load_records(tmp_path)), order=ORDER)


def rows(board):
    return {r.variant: r for r in board.rows}


def test_per_model_ranks_ties_and_single_variant(board):
    ranks = board.per_model_ranks
    assert ranks[("m1", "ss")] == pytest.approx({"base": 0, "a": 1 / 3, "b": 2 / 3, "c": 1})  # a/b tie: a first
    assert ranks[("m2", "ss")] == pytest.approx({"a": 0, "base": 1 / 3, "c": 2 / 3, "b": 1})
    assert ranks[("m3", "ss")] == pytest.approx({"a": 0, "base": 0.5, "c": 1})  # b not run on m3
    assert ranks[("m2", "seat")] == pytest.approx({"base": 0, "a": 0.5, "b": 1})  # base/a tie: base first
    assert ranks[("m3", "seat")] == {"base": 0.5}  # n = 1


def test_columns_mean_and_row_order(board):
    by = rows(board)
    assert by["base"].bias["ss"] == pytest.approx((0 + 1 / 3 + 0.5) / 3)
    assert by["a"].bias["ss"] == pytest.approx((1 / 3 + 0 + 0) / 3)
    assert by["b"].bias["ss"] == pytest.approx((2 / 3 + 1) / 2)  # only the models where b was ranked
    assert by["c"].bias["ss"] == pytest.approx((1 + 2 / 3 + 1) / 3)
    assert by["base"].bias["seat"] == pytest.approx((0 + 0 + 0.5) / 3)
    assert by["b"].bias["seat"] == pytest.approx(1.0)
    assert by["c"].bias["seat"] == NA  # not applicable on m2, not run elsewhere
    assert by["c"].mean == pytest.approx(by["c"].bias["ss"])  # Mean over the columns it has
    assert by["a"].mean == pytest.approx((1 / 9 + 0.5) / 2)
    assert [r.variant for r in board.rows] == ["b", "c", "a", "base"]  # Mean descending
    assert board.models == ["m1", "m2", "m3"]


def test_quality_average_and_signed_delta_over_shared_models(board):
    by = rows(board)
    assert by["base"].quality["lms"] == pytest.approx((80 + 90 + 60) / 3)
    assert by["a"].quality["lms"] == pytest.approx((78 + 88 + 61) / 3)
    assert by["a"].delta["lms"] == pytest.approx(((78 - 80) + (88 - 90) + (61 - 60)) / 3)
    # b has LMS on m1 only: its average and Δ use m1 alone, so Δ ≠ avg(b) − avg(base)
    assert by["b"].quality["lms"] == pytest.approx(81) and by["b"].delta["lms"] == pytest.approx(1)
    assert by["a"].delta["glue"] == pytest.approx(2) and by["b"].quality["glue"] == NA
    assert by["c"].quality["glue"] is None and by["base"].delta["lms"] is None
    assert by["a"].models["lms"] == ["m1", "m2", "m3"] and by["b"].models["lms"] == ["m1"]


def test_configured_order_breaks_ties_only(tmp_path):
    grid = {(m, v, "stereoset"): {"ss": ss}
            for m in ("m1", "m2") for v, ss in (("base", 60.0), ("x", 40.0), ("y", 55.0))}
    write_grid(tmp_path, grid)
    records = load_records(tmp_path)
    first = build(records, bias=("ss",), order=["base", "x", "y"])
    flipped = build(records, bias=("ss",), order=["x", "base", "y"])
    assert first.per_model_ranks[("m1", "ss")] == {"base": 0.0, "x": 0.5, "y": 1.0}  # |60−50| = |40−50|
    assert flipped.per_model_ranks[("m1", "ss")] == {"x": 0.0, "base": 0.5, "y": 1.0}
    assert [r.variant for r in first.rows] == ["y", "x", "base"]


def test_seeds_are_averaged_before_ranking(tmp_path):
    from leaderboard_records import write

    for seed, ss in ((0, 70.0), (1, 50.0)):  # seed mean 60: worse than y's 55
        write(tmp_path, make_record("m", "x", "stereoset", {"ss": ss}, seed=seed))
    write(tmp_path, make_record("m", "y", "stereoset", {"ss": 55.0}))
    board = build(load_records(tmp_path), bias=("ss",))
    assert board.per_model_ranks[("m", "ss")] == {"x": 0.0, "y": 1.0}
    assert board.seeds == {"x": 2, "y": 1}


def test_proportional_ranks_edge_cases():
    assert proportional_ranks([]) == {}
    assert proportional_ranks([("only", 3.0)]) == {"only": 0.5}
    assert proportional_ranks([("a", 0.0), ("b", 0.0)]) == {"a": 0.0, "b": 1.0}


def test_flags_names_and_bad_columns(tmp_path):
    write_grid(tmp_path, {("m", v, "stereoset"): {"ss": 50.0} for v in ("base", "cda+inlp", "gradiend")})
    board = build(load_records(tmp_path), bias=("ss",))
    by = rows(board)
    assert (by["base"].weight, by["base"].post) == (False, False)
    assert (by["cda+inlp"].weight, by["cda+inlp"].post) == (True, True)
    assert (by["gradiend"].weight, by["gradiend"].post) == (True, False)
    assert display_name("gradiend+inlp") == "GRADIEND + INLP" and display_name("base") == "Base Model"
    assert display_name("cda+mystery") == "CDA + mystery"
    with pytest.raises(HarnessError, match="unknown bias column 'kl'"):
        build(load_records(tmp_path), bias=("kl",))


def test_pareto_front():
    points = [("a", 1.0, 80.0), ("b", 2.0, 90.0), ("c", 2.0, 85.0), ("d", 0.5, 70.0), ("e", 3.0, 90.0)]
    assert pareto_front(points) == ["a", "b", "d"]  # c is dominated by b, e by b
