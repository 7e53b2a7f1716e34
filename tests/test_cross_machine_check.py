"""The cross-machine check (leaderboard/cross_machine.py): machine noise passes, regressions fail.

"Another machine" is zoo:bert-tiny with every weight moved by one ulp in a random direction (what another CPU's
kernels do to a recipe build: bit-different weights, identical behaviour up to round-off), served from a
private download cache under the same spec, so its records pair with the baseline's. Against a baseline of the
unchanged model the check must pass it, and must fail a planted off-by-one in StereoSet's scorer (it compares
the stereotype with the wrong sentence of the cluster), a 3-point SS shift, and CrowS-Pairs dropping its first
pair — with a measured noise of zero, so only the stated effect sizes and the changed-examples floor protect.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import benchmarks.stereoset as stereoset
from benchmarks.crows import CrowSPairs
from harness.atomic import sha256_file
from harness.cli import main
from harness.examples import Examples
from harness.models.fingerprint import content_fingerprint
from harness.records import load_records
from harness.registry import BENCHMARKS
from leaderboard import cross_machine as cm

GRID = {"name": "xm", "models": ["zoo:bert-tiny"], "variants": ["base"], "seeds": [0],
        "benchmarks": [{"name": "stereoset", "options": {"resamples": 100}},
                       {"name": "crows", "options": {"resamples": 100}},
                       {"name": "seat", "options": {"tests": ["sent-weat6", "sent-weat7"], "n_permutations": 500,
                                                    "resamples": 100}}],
        "protocol": "cpu", "bias_type": "gender"}
NO_MEASURED_NOISE = {"measured": "none (the test's stated effect sizes and floor only)", "runs": 0, "factor": 3.0,
                     "floor": 1e-6, "rules": [{"benchmark": "seat", "metric": "p_value*", "absolute": 0.01,
                                               "relative": 0.0}],
                     "alpha": cm.ALPHA, "discordance_floor": cm.Q_FLOOR, "resamples": 1000,
                     "effect_sizes": list(cm.EFFECT_SIZES), "noise": []}


def _run(tmp_path, name: str) -> str:
    config = tmp_path / "grid.yaml"
    config.write_text(json.dumps(GRID))
    results = tmp_path / name / "runs"
    assert main(["run", str(config), "--results", str(results), "--quiet"]) == 0
    return str(results)


def _check(baseline, results, *extra) -> int:
    return main(["check", "--baseline", str(baseline), "--results", results, *extra])


def _one_ulp_model(monkeypatch, tmp_path) -> None:
    """zoo:bert-tiny with every weight one ulp up or down, in a private download cache (same spec)."""
    from harness.models.catalog import model_catalog

    source = model_catalog().fetch("zoo:bert-tiny")
    cache = tmp_path / "other-machine-cache"
    target = cache / "models" / "bert-tiny"
    shutil.copytree(source, target)
    tensors = load_file(target / "model.safetensors")
    generator = torch.Generator().manual_seed(0)
    for name, tensor in tensors.items():
        if tensor.is_floating_point():
            up = torch.rand(tensor.shape, generator=generator) < 0.5
            toward = torch.where(up, torch.tensor(float("inf")), torch.tensor(float("-inf")))
            tensors[name] = torch.nextafter(tensor, toward.to(tensor.dtype))
    save_file(tensors, target / "model.safetensors", metadata={"format": "pt"})
    manifest = json.loads((target / ".complete.json").read_text())
    manifest["files"]["model.safetensors"] = sha256_file(target / "model.safetensors")
    manifest["content"] = content_fingerprint(target)
    (target / ".complete.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("GRADIEND_BENCH_CACHE", str(cache))
    model_catalog.cache_clear()


@pytest.fixture
def baseline(tmp_path, mirror, monkeypatch):
    honest = _run(tmp_path, "honest")
    path = tmp_path / "baseline.json"
    assert main(["check", "--baseline", str(path), "--results", honest, "--update"]) == 0
    data = json.loads(path.read_text())
    assert {k.split("|")[2] for k in data["per_example"]} == {"stereoset", "crows", "seat"}
    assert _check(path, honest, "--mode", "cross-machine") == 2  # no measurement yet: a one-line refusal
    data["cross_machine"] = NO_MEASURED_NOISE
    path.write_text(json.dumps(data))
    return path


def test_machine_noise_passes_and_planted_regressions_fail(baseline, tmp_path, monkeypatch, capsys):
    from harness.models.catalog import model_catalog

    # another machine: bit-different weights, the same model
    with monkeypatch.context() as patch:
        _one_ulp_model(patch, tmp_path)
        other = _run(tmp_path, "other-machine")
    model_catalog.cache_clear()
    stored = json.loads(baseline.read_text())["per_example"]
    for rec in load_records(Path(other)):  # not a rerun of the same bits: every SEAT association moved
        if rec.benchmark == "seat":
            then = Examples.from_json(stored[cm.record_key(rec)]).arrays["association"]
            assert (rec.examples().arrays["association"] != then).mean() > 0.5
    capsys.readouterr()
    assert _check(baseline, other, "--mode", "cross-machine") == 0, capsys.readouterr().out
    assert "checked across machines (per-example scores paired): 0 moved or missing" in capsys.readouterr().out

    # a planted off-by-one: the stereotype compared with the unrelated sentence instead of the anti-stereotype
    with monkeypatch.context() as patch:
        patch.setattr(stereoset, "LABELS", ("stereotype", "unrelated", "anti-stereotype"))
        planted = _run(tmp_path, "off-by-one")
    capsys.readouterr()
    assert _check(baseline, planted, "--mode", "cross-machine") == 1
    moved = _moved(capsys.readouterr().out)
    assert ("stereoset", "(examples)") in moved and ("stereoset", "lms") in moved

    # CrowS-Pairs dropping its first pair: other examples
    with monkeypatch.context() as patch:
        patch.setitem(BENCHMARKS, "crows", type("DropFirst", (CrowSPairs,), {
            "pairs": lambda self, ctx: CrowSPairs.pairs(self, ctx)[1:]}))
        dropped = _run(tmp_path, "drop-first-pair")
    capsys.readouterr()
    assert _check(baseline, dropped, "--mode", "cross-machine") == 1
    assert _moved(capsys.readouterr().out) == {("crows", "(examples)")}


def test_a_three_point_ss_shift_fails(baseline, tmp_path, monkeypatch, capsys):
    counts = stereoset.example_counts

    def shifted(clusters, scores):
        pro, related = counts(clusters, scores)
        anti_gender = [i for i, c in enumerate(clusters) if c.bias_type == "gender" and pro[i] == 0]
        n_gender = sum(c.bias_type == "gender" for c in clusters)
        pro = pro.copy()
        pro[anti_gender[:round(0.03 * n_gender)]] = 1.0  # 3 % of the gender clusters turn stereotypical
        return pro, related

    monkeypatch.setattr(stereoset, "example_counts", shifted)
    planted = _run(tmp_path, "ss-shift")
    capsys.readouterr()
    assert _check(baseline, planted, "--mode", "cross-machine") == 1
    out = capsys.readouterr().out
    moved = _moved(out)
    assert ("stereoset", "ss") in moved and ("stereoset", "ss:gender") in moved
    assert ("stereoset", "ss:race") not in moved and ("crows", "score") not in moved  # only what moved
    row = next(r for r in _rows(out) if r[2:4] == ["stereoset", "ss"])
    assert 2.5 < float(row[5]) - float(row[4]) < 4.0


def _rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines() if line.startswith("zoo:bert-tiny")]


def _moved(out: str) -> set[tuple[str, str]]:
    return {(r[2], r[3]) for r in _rows(out) if r[-1] == "moved"}


def _examples(pro, related=None) -> Examples:
    pro = np.asarray(pro, dtype=np.uint8)
    n = len(pro)
    arrays = {"pro": pro, "related": np.asarray(related if related is not None else [2] * n, dtype=np.uint8),
              "term": np.zeros(n, dtype=np.int32), "domain": np.zeros(n, dtype=np.uint8),
              "ss_domain": np.ones(n, dtype=np.uint8)}
    return Examples("cluster", arrays, "ids", labels={"term": ["t"], "domain": ["gender"]})


def test_paired_change_and_discordance_by_hand():
    then = _examples([1] * 50 + [0] * 50)
    one_flip = _examples([1] * 51 + [0] * 49)
    assert cm.discordance(then, one_flip) == pytest.approx(0.01)
    change = cm.paired_changes("stereoset", then, one_flip, resamples=2000)["ss"]
    assert change.then == 50.0 and change.now == 51.0 and change.p_value > 0.2  # one example: noise
    ten_flips = _examples([1] * 60 + [0] * 40)
    change = cm.paired_changes("stereoset", then, ten_flips, resamples=2000)["ss"]
    assert change.delta == pytest.approx(10.0) and change.p_value < 0.01  # ten, all one way: a shift
    swapped = _examples([0] * 10 + [1] * 50 + [0] * 40)  # ten flip each way: the mean stays, outcomes do not
    assert cm.discordance(then, swapped) == pytest.approx(0.2)
    assert cm.paired_changes("stereoset", then, swapped, resamples=2000)["ss"].delta == 0.0
    floats = Examples("s", {"a": np.array([1.0, -2.0, 0.5])}, "ids")
    nudged = Examples("s", {"a": np.array([1.0 + 1e-9, -2.0, 0.5 + 0.1])}, "ids")
    assert cm.discordance(floats, nudged) == pytest.approx(1 / 3)  # only the real move counts


def test_a_method_that_decided_otherwise_is_named_but_fails_nothing():
    from leaderboard.check import Finding, report

    then = [{"method": "inlp", "classifiers_trained": 25, "rank_removed": 72, "stop_at_majority": True}]
    now = [{"method": "inlp", "classifiers_trained": 26, "rank_removed": 75, "stop_at_majority": True}]
    assert cm.decision_changes(then, now) == ["inlp classifiers_trained 25 → 26", "inlp rank_removed 72 → 75"]
    assert cm.decision_changes(then, then) == []
    note = Finding(("m", "inlp", "stereoset", "(decision)"), "", "inlp classifiers_trained 25 → 26", "seed 0", "note")
    ok, text = report(3, [note], "cross-machine")
    assert ok and "m inlp: inlp classifiers_trained 25 → 26 (seed 0)" in text and "0 moved or missing" in text


def test_the_committed_demo_baseline_serves_both_modes_and_covers_every_score():
    """results/baselines/demo.json: cross-machine by default (a user's demo runs elsewhere), exact for `make check`;
    every score is either paired through its record's embedded per-example scores or has a tolerance measured
    across machines, and the measurement says what it ran on."""
    from leaderboard.check import read_baseline, supported_modes, tolerance_rule

    path = Path(__file__).resolve().parent.parent / "results" / "baselines" / "demo.json"
    baseline = read_baseline(path)
    assert supported_modes(baseline) == ["exact", "cross-machine"] and baseline["default_mode"] == "cross-machine"
    measurement = baseline["cross_machine"]
    assert measurement["runs"] >= 3 and "ATEN_CPU_CAPABILITY" in measurement["measured"]
    rules = {"tolerances": measurement}
    for entry in baseline["scores"]:
        if entry.get("status") == "not_applicable":
            continue
        key = "|".join((entry["model"], entry["variant"], entry["benchmark"], "0"))
        if key in baseline["per_example"]:
            examples = Examples.from_json(baseline["per_example"][key])
            if entry["metric"] in cm.statistics_of(entry["benchmark"], examples):
                continue
        assert tolerance_rule(rules, entry["benchmark"], entry["metric"]) is not None, entry
