"""The CI regression grid (configs/ci.yaml, results/baselines/ci.json) is real and its check can fail.

`make ci-check` runs the whole grid (~1.5 min); here one cell of it — zoo:bert-tiny, base, CrowS-Pairs —
is run for real through the CLI and checked against the committed baseline's values and measured
tolerances. A copy of the CrowS scorer with a planted off-by-one (it drops the first pair) then moves the
score by a fraction of a point: the measured tolerance fails it, while the old rule (inside the sampling
CI) would have passed it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.crows import CrowSPairs
from harness.cli import main
from harness.config import load_config
from harness.registry import BENCHMARKS
from leaderboard.check import read_baseline, rule_slack, tolerance_rule

ROOT = Path(__file__).resolve().parent.parent
CI_CONFIG = ROOT / "configs" / "ci.yaml"
CI_BASELINE = ROOT / "results" / "baselines" / "ci.json"
CELL = ("zoo:bert-tiny", "base", "crows")


class CrowSDroppingFirstPair(CrowSPairs):
    """The CrowS scorer with an off-by-one: the pair loop starts at 1."""

    def pairs(self, ctx):
        return super().pairs(ctx)[1:]


def test_ci_baseline_covers_the_ci_grid_with_measured_tolerances():
    config = load_config(CI_CONFIG)
    baseline = read_baseline(CI_BASELINE)
    grid = {(m, v.name, b.name) for m in config.models for v in config.variants for b in config.benchmarks}
    assert {(e["model"], e["variant"], e["benchmark"]) for e in baseline["scores"]} == grid
    assert baseline["selection"]["variants"] == [v.name for v in config.variants]
    rules = baseline["tolerances"]["rules"]
    assert baseline["tolerances"]["measured"] and baseline["tolerances"]["runs"] >= 4
    for entry in baseline["scores"]:
        rule = tolerance_rule(baseline, entry["benchmark"], entry["metric"])
        assert rule is not None, f"no measured tolerance for {entry['benchmark']} {entry['metric']}"
        if "low" in entry:  # far below the sampling CI, which let 3-point regressions pass
            assert rule_slack(rule, entry["value"]) < (entry["high"] - entry["low"]) / 4
    for rule in rules:  # each tolerance covers what was measured, absolute or relative to the score
        assert (rule["absolute"] >= rule["observed_max_spread"]
                or rule["relative"] >= rule["observed_max_relative_spread"])
        assert rule["absolute"] > 0 or rule["relative"] > 0


def _cell_baseline(tmp_path: Path, with_rules: bool) -> Path:
    """The committed CI baseline restricted to one cell (the other cells are not run here)."""
    data = json.loads(CI_BASELINE.read_text())
    data["scores"] = [e for e in data["scores"] if (e["model"], e["variant"], e["benchmark"]) == CELL]
    data["selection"] = {"models": [CELL[0]], "variants": [CELL[1]], "benchmarks": [CELL[2]],
                         "bias_types": ["gender"]}
    if not with_rules:
        del data["tolerances"]
    path = tmp_path / ("cell.json" if with_rules else "cell_ci_only.json")
    path.write_text(json.dumps(data))
    return path


def _run_cell(tmp_path: Path, name: str) -> Path:
    crows = next(b for b in load_config(CI_CONFIG).benchmarks if b.name == "crows")
    config = tmp_path / f"{name}.yaml"
    config.write_text(json.dumps({"name": "ci", "models": [CELL[0]], "variants": [CELL[1]], "seeds": [0],
                                  "benchmarks": [{"name": "crows", "options": crows.options}],
                                  "protocol": "cpu", "bias_type": "gender"}))
    results = tmp_path / name / "runs"
    assert main(["run", str(config), "--results", str(results), "--quiet"]) == 0
    return results


def test_a_planted_off_by_one_in_a_scorer_fails_the_ci_check(mirror, tmp_path, monkeypatch, capsys):
    baseline = _cell_baseline(tmp_path, with_rules=True)
    honest = _run_cell(tmp_path, "honest")
    capsys.readouterr()
    assert main(["check", "--baseline", str(baseline), "--results", str(honest)]) == 0
    assert "3 baseline score(s) checked: 0 moved or missing" in capsys.readouterr().out

    monkeypatch.setitem(BENCHMARKS, "crows", CrowSDroppingFirstPair)
    planted = _run_cell(tmp_path, "planted")
    capsys.readouterr()
    assert main(["check", "--baseline", str(baseline), "--results", str(planted)]) == 1
    out = capsys.readouterr().out
    rows = {row[3]: row for row in (line.split() for line in out.splitlines()) if row and row[0] == CELL[0]}
    assert rows["score"][-2:] == ["(measured)", "moved"]  # dropping one pair always moves the pair ratio
    then, now = float(rows["score"][4]), float(rows["score"][5])
    assert 0 < abs(now - then) < 1.0  # a fraction of a point: one pair of ~260

    # the old rule (inside the 95 % CI, ~±6 points) lets the same regression pass
    assert main(["check", "--baseline", str(_cell_baseline(tmp_path, with_rules=False)),
                 "--results", str(planted)]) == 0


def test_inlp_does_not_amplify_a_one_ulp_change_of_its_features(mirror, bert_tiny):
    """Another CPU's kernels move the fp32 features by about one ulp (ATEN_CPU_CAPABILITY=default: 80 % of
    the elements). INLP v1 (liblinear stopped at tol 1e-4) turned that into another number of classifiers
    and a projection 0.1 apart; v2 must give the same classifiers and nearly the same projection."""
    import numpy as np

    from harness.attribute_data import attribute_sentences, bias_bench_split, single_threaded
    from methods.inlp import nullspace_projection

    data = attribute_sentences("gender", 1000, 0)
    features = bert_tiny.pooled(list(data.texts), batch_size=64).numpy()
    rng = np.random.default_rng(0)
    direction = np.where(rng.random(features.shape) < 0.5, np.inf, -np.inf).astype(np.float32)
    nudged = np.where(rng.random(features.shape) < 0.8, np.nextafter(features, direction), features)
    assert 0 < np.abs(nudged - features).max() <= 2 * np.spacing(np.abs(features).max())
    y = np.asarray(data.labels)
    train, dev, _ = bias_bench_split(len(y), 0)
    fits = []
    for x in (features.astype(np.float64), nudged.astype(np.float64)):
        with single_threaded():
            fits.append(nullspace_projection(x[train], y[train], x[dev], y[dev], 80, stop_at_majority=True))
    (p1, acc1), (p2, acc2) = fits
    assert len(acc1) > 5  # the stop rule is reached after several classifiers, not at once
    assert acc1 == acc2
    assert np.abs(p1 - p2).max() < 1e-4


def test_inlp_notes_how_close_its_stop_rule_came_to_another_decision():
    """The stop is a threshold on a count of dev examples, so no rule of that kind is immune to another machine's
    features (docs/regression-check.md, "INLP across machines"); the notes say how many dev examples the closest
    decision lay from the threshold, i.e. how far another build's features would have to move it."""
    import numpy as np

    from methods.inlp import INLP, INLPEraser

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 900)
    x = rng.normal(size=(900, 12)) + 0.8 * np.eye(12)[y]  # three classes, each along its own direction
    eraser = INLPEraser(20, stop_at_majority=True).fit(x[:600], y[:600], eval_set=(x[600:], y[600:]))
    threshold = np.bincount(y[600:]).max() / 300 + 0.01
    counts = np.round(np.array(eraser.accuracies_) * 300)
    assert eraser.accuracies_[-1] <= threshold < min(eraser.accuracies_[:-1])  # stopped at the first crossing
    assert len(eraser.accuracies_) > 1
    assert eraser.closest_call_ == pytest.approx(np.abs(counts - threshold * 300).min(), abs=1e-9)
    notes = INLP().fit_notes(eraser)
    assert notes["stop_closest_call_dev_examples"] == round(eraser.closest_call_, 2)
    assert "stop_closest_call_dev_examples" not in INLP().fit_notes(INLPEraser(3).fit(x[:600], y[:600]))
