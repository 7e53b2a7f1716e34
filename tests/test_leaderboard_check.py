"""`gradiend-bench check`: passes on identical records, fails (exit 1, a table) on a moved or missing score."""

from __future__ import annotations

import json

import pytest

from harness.cli import main
from harness.errors import HarnessError
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
    assert ({"model": "m2", "variant": "c", "benchmark": "seat", "metric": "*", "status": "not_applicable"}
            in stored["scores"])


def test_score_outside_ci_fails_inside_passes(setup, capsys):
    runs, baseline = setup
    write(runs, make_record("m1", "a", "stereoset", {"ss": (59.0, 54.0, 64.0), "lms": (78.0, 76.0, 80.0)}))
    assert check(runs, baseline) == 0  # 59 is inside the baseline CI [50, 60]
    write(runs, make_record("m1", "a", "stereoset", {"ss": (61.0, 56.0, 66.0), "lms": (78.0, 76.0, 80.0)}))
    capsys.readouterr()
    assert check(runs, baseline) == 1
    out = capsys.readouterr().out
    moved = [line.split() for line in out.splitlines() if line.startswith("m1")]
    assert moved == [["m1", "a", "stereoset", "ss", "55.0000", "61.0000", "95%", "CI", "[50.0000,", "60.0000]",
                      "moved"]]
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


def _with_rules(baseline, rules):
    data = json.loads(baseline.read_text())
    data["tolerances"] = {"measured": "by hand for the test", "rules": rules}
    baseline.write_text(json.dumps(data))


def test_per_metric_tolerances_replace_the_ci_and_the_exact_rule(setup, capsys):
    runs, baseline = setup
    _with_rules(baseline, [{"benchmark": "stereoset", "metric": "ss*", "absolute": 0.5},
                           {"benchmark": "seat", "metric": "effect_size*", "relative": 0.01}])
    # m1/a SS 55 has the CI [50, 60]: 3 points inside the CI passed before, the measured ±0.5 fails it
    write(runs, make_record("m1", "a", "stereoset", {"ss": (58.0, 53.0, 63.0), "lms": (78.0, 76.0, 80.0)}))
    capsys.readouterr()
    assert check(runs, baseline) == 1
    moved = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("m1")]
    assert moved == [["m1", "a", "stereoset", "ss", "55.0000", "58.0000", "±0.5", "(measured)", "moved"]]
    write(runs, make_record("m1", "a", "stereoset", {"ss": (55.4, 50.4, 60.4), "lms": (78.0, 76.0, 80.0)}))
    assert check(runs, baseline) == 0
    # lms matches no rule: its CI still applies
    write(runs, make_record("m1", "a", "stereoset", {"ss": (55.0, 50.0, 60.0), "lms": (79.9, 76.0, 80.0)}))
    assert check(runs, baseline) == 0
    # SEAT m2/b 0.1 without a CI: ±1 % relative instead of exact
    write(runs, make_record("m2", "b", "seat", {"effect_size_mean_abs": 0.1 + 5e-4}))
    assert check(runs, baseline) == 0
    write(runs, make_record("m2", "b", "seat", {"effect_size_mean_abs": 0.1 + 2e-3}))
    assert check(runs, baseline) == 1
    assert check(runs, baseline, "--tolerance", "2") == 0  # the command line overrides the rules (and CIs)


def test_update_keeps_the_measured_rules_and_bad_rules_are_one_line_errors(setup, tmp_path, capsys):
    runs, baseline = setup
    rules = [{"benchmark": "stereoset", "metric": "ss*", "absolute": 0.5, "observed_max_spread": 0.1}]
    _with_rules(baseline, rules)
    assert check(runs, baseline, "--update") == 0
    assert json.loads(baseline.read_text())["tolerances"]["rules"] == rules
    for bad in ([{"benchmark": "stereoset", "metric": "ss"}],
                [{"benchmark": "stereoset", "metric": "ss", "absolute": -1}],
                [{"metric": "ss", "absolute": 1}], "ss"):
        path = tmp_path / "bad_rules.json"
        data = json.loads(baseline.read_text())
        data["tolerances"] = {"rules": bad} if bad != "ss" else bad
        path.write_text(json.dumps(data))
        capsys.readouterr()
        assert check(runs, path) == 2
        err = capsys.readouterr().err
        assert "malformed" in err and "tolerance" in err and len(err.strip().splitlines()) == 1


def test_measured_spread_gives_the_rules(tmp_path):
    from harness.records import load_records
    from leaderboard.check import tolerance_rule
    from leaderboard.spread import SPREAD_FACTOR, SPREAD_FLOOR, measure_spread

    grids = {}
    for name, shift in (("one", 0.0), ("two", 0.2), ("three", -0.1)):
        root = tmp_path / name
        write(root, make_record("m", "a", "stereoset", {"ss": (55.0 + shift, 50.0, 60.0), "ss:gender": 55.0,
                                                         "lms": (80.0, 78.0, 82.0)}))
        write(root, make_record("m", "a", "lm-quality", {"perplexity": 1000.0 * (1 + shift / 100)}))
        write(root, make_record("m", "a", "seat", {"effect_size_mean_abs": 0.5, "effect_size:w6": 0.4}))
        grids[name] = load_records(root)
    rules = measure_spread(grids)
    baseline = {"tolerances": {"rules": rules}}
    ss = tolerance_rule(baseline, "stereoset", "ss:gender")
    assert ss["metric"] == "ss*" and ss["observed_max_spread"] == pytest.approx(0.3)
    assert ss["absolute"] == pytest.approx(SPREAD_FACTOR * 0.3) and ss["relative"] == 0.0
    assert tolerance_rule(baseline, "stereoset", "lms")["absolute"] == SPREAD_FLOOR  # no spread: the floor
    ppl = tolerance_rule(baseline, "lm-quality", "perplexity")
    assert ppl["absolute"] == 0.0 and ppl["relative"] == pytest.approx(SPREAD_FACTOR * 3.0 / 1002.0)
    # the longer family is listed first, so "effect_size*" does not swallow effect_size_mean_abs
    assert tolerance_rule(baseline, "seat", "effect_size_mean_abs")["metric"] == "effect_size_mean_abs"
    assert tolerance_rule(baseline, "seat", "effect_size:w6")["metric"] == "effect_size*"
    write(tmp_path / "one", make_record("m", "b", "crows", {"score": 50.0}))  # a score only one setting has
    grids["one"] = load_records(tmp_path / "one")
    with pytest.raises(HarnessError, match="m/b/crows/score is missing"):
        measure_spread(grids)
