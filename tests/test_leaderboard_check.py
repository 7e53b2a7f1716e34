"""`gradiend-bench check`: passes on identical records, fails (exit 1, a table) on a moved or missing score."""

from __future__ import annotations

import json

import pytest

from harness.cli import main
from leaderboard_records import GRID, make_record, write, write_grid


@pytest.fixture
def setup(tmp_path):
    runs = tmp_path / "runs"
    write_grid(runs, GRID)
    baseline = tmp_path / "baseline.json"
    assert main(["check", "--baseline", str(baseline), "--results", str(runs), "--update"]) == 0
    return runs, baseline


def check(runs, baseline, *extra):
    return main(["check", "--baseline", str(baseline), "--results", str(runs), *extra])


def test_identical_records_pass(setup, capsys):
    runs, baseline = setup
    capsys.readouterr()
    assert check(runs, baseline) == 0
    out = capsys.readouterr().out
    stored = json.loads(baseline.read_text())
    assert f"{len(stored['scores'])} baseline score(s) checked: 0 moved or missing" in out
    entry = next(e for e in stored["scores"] if e["model"] == "m1" and e["variant"] == "a" and e["metric"] == "ss")
    assert (entry["value"], entry["low"], entry["high"]) == (55.0, 50.0, 60.0)
    assert {"model": "m2", "variant": "c", "benchmark": "seat", "metric": "*", "status": "not_applicable"} in stored["scores"]


def test_score_outside_ci_fails_inside_passes(setup, capsys):
    runs, baseline = setup
    write(runs, make_record("m1", "a", "stereoset", {"ss": (59.0, 54.0, 64.0), "lms": (78.0, 76.0, 80.0)}))
    assert check(runs, baseline) == 0  # 59 is inside the baseline CI [50, 60]
    write(runs, make_record("m1", "a", "stereoset", {"ss": (61.0, 56.0, 66.0), "lms": (78.0, 76.0, 80.0)}))
    capsys.readouterr()
    assert check(runs, baseline) == 1
    out = capsys.readouterr().out
    moved = [line.split() for line in out.splitlines() if line.startswith("m1")]
    assert moved == [["m1", "a", "stereoset", "ss", "55.0000", "61.0000", "95%", "CI", "[50.0000,", "60.0000]", "moved"]]
    assert "1 moved or missing" in out
    assert check(runs, baseline, "--tolerance", "10") == 0  # an absolute tolerance replaces the CI
    assert check(runs, baseline, "--tolerance", "5") == 1


def test_scores_without_ci_must_match_and_missing_or_new_records(setup, capsys):
    runs, baseline = setup
    path = write(runs, make_record("m2", "b", "seat", {"effect_size_mean_abs": 0.1 + 1e-4}))
    assert check(runs, baseline) == 1  # no CI: any real change counts
    write(runs, make_record("m2", "b", "seat", {"effect_size_mean_abs": 0.1}))
    assert check(runs, baseline) == 0
    path.unlink()
    capsys.readouterr()
    assert check(runs, baseline) == 1
    assert "missing" in capsys.readouterr().out
    write(runs, make_record("m2", "b", "seat", {"effect_size_mean_abs": 0.1}))
    write(runs, make_record("m9", "base", "seat", {"effect_size_mean_abs": 0.4}))
    assert check(runs, baseline) == 0  # a new score is reported, not failed
    assert "1 new score(s) not in the baseline" in capsys.readouterr().out


def test_update_rewrites_the_baseline(setup, capsys):
    runs, baseline = setup
    write(runs, make_record("m1", "a", "stereoset", {"ss": (70.0, 65.0, 75.0), "lms": (78.0, 76.0, 80.0)}))
    assert check(runs, baseline) == 1
    before = baseline.read_bytes()
    assert check(runs, baseline, "--update") == 0
    assert baseline.read_bytes() != before
    assert check(runs, baseline) == 0
    assert check(runs, baseline, "--update") == 0 and check(runs, baseline) == 0  # idempotent


def test_selection_from_config_and_bad_baselines(tmp_path, setup, capsys):
    runs, _ = setup
    config = tmp_path / "grid.yaml"
    config.write_text("name: g\nmodels: [m1]\nvariants: [base]\nbenchmarks: [stereoset]\n")
    baseline = tmp_path / "demo.json"
    assert check(runs, baseline, "--update", "--config", str(config)) == 0
    stored = json.loads(baseline.read_text())
    assert {(e["model"], e["variant"], e["benchmark"]) for e in stored["scores"]} == {("m1", "base", "stereoset")}
    capsys.readouterr()
    assert check(runs, baseline) == 0
    assert "new score" not in capsys.readouterr().out  # records outside the selection are out of scope
    assert check(runs, tmp_path / "absent.json") == 2
    assert "--update" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text('{"version": 1, "scores": [{"model": "m"}]}')
    assert check(runs, tmp_path / "bad.json") == 2
    assert "malformed" in capsys.readouterr().err
