"""`gradiend-bench compare`: paired bootstrap on per-example scores stored in the records, with known differences."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.cli import main
from harness.errors import HarnessError
from harness.examples import Examples, digest
from leaderboard.compare import compare, p_two_sided
from leaderboard_records import make_record, write

N = 400


def crows(model, variant, plus, seed=0, ids="pairs"):
    prefs = np.array([1] * plus + [-1] * (N - plus), dtype=np.int8)
    rec = make_record(model, variant, "crows", {"score": 100 * plus / N}, seed=seed)
    rec.per_example = Examples("pair", {"preference": prefs, "stereo": np.ones(N, np.uint8)},
                               digest(f"{ids}{i}" for i in range(N))).to_json()
    return rec


def test_known_difference_on_crows(tmp_path, capsys):
    records = [crows("m", "a", 300), crows("m", "b", 200)]  # 75 % vs 50 %, paired: A ≥ B on every pair
    rows = compare(records, "a", "b", "crows", resamples=4000)
    raw, bias = rows
    assert (raw.a, raw.b, raw.diff, raw.n) == (75.0, 50.0, 25.0, N)
    # d_i ∈ {0, 1} with mean 1/4: the CI is 100·(1/4 ± 1.96·sqrt(3/16/N)) ≈ 25 ± 4.2
    assert raw.low == pytest.approx(25 - 4.24, abs=0.8) and raw.high == pytest.approx(25 + 4.24, abs=0.8)
    assert raw.p_value == pytest.approx(2 / 4001)  # no resample reaches 0
    assert bias.quantity == "|crows − 50|" and bias.diff == 25.0  # A is the more biased one

    for rec in records:
        write(tmp_path, rec)
    assert main(["compare", "a", "b", "--metric", "crows", "--results", str(tmp_path), "--resamples", "500"]) == 0
    out = capsys.readouterr().out
    assert "+25.00" in out and "|crows − 50|" in out
    assert main(["compare", "a", "b", "--metric", "crows", "--results", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["diff"] == 25.0


def test_identical_and_tiny_differences_are_not_significant():
    same = compare([crows("m", "a", 210), crows("m", "b", 210)], "a", "b", "crows", resamples=2000)[0]
    assert (same.diff, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    tiny = compare([crows("m", "a", 202), crows("m", "b", 200)], "a", "b", "crows", resamples=4000)[0]
    assert tiny.diff == pytest.approx(0.5) and tiny.low == 0.0
    # P(no differing pair drawn) = (1 − 2/N)^N ≈ e^−2, so p ≈ 2·0.135
    assert tiny.p_value == pytest.approx(2 * np.exp(-2), abs=0.05)


def test_p_value_is_two_sided():
    assert p_two_sided(np.array([1.0, 2.0, 3.0])) == pytest.approx(2 / 4)
    assert p_two_sided(np.array([-1.0, 1.0, 2.0, 3.0])) == pytest.approx(4 / 5)


def test_errors_name_the_fix(tmp_path):
    with pytest.raises(HarnessError, match="compare has no metric 'glue'.*choose one of: crows, icat, lms, seat, ss"):
        compare([], "a", "b", "glue")
    with pytest.raises(HarnessError, match="no model has crows records of both"):
        compare([crows("m", "a", 10)], "a", "b", "crows")
    with pytest.raises(HarnessError, match="not scored on the same crows examples"):
        compare([crows("m", "a", 10), crows("m", "b", 10, ids="other")], "a", "b", "crows")
    old = [make_record("m", v, "stereoset", {"ss": 50.0}) for v in ("a", "b")]
    with pytest.raises(HarnessError, match="stereoset record of m/a seed 0 has no per-example scores.*re-run"):
        compare(old, "a", "b", "ss")
    broken = crows("m", "b", 10)
    broken.per_example["arrays"]["preference"]["data"] = "not base64!"
    with pytest.raises(HarnessError, match="m/b crows seed 0: per-example array is corrupt"):
        compare([crows("m", "a", 10), broken], "a", "b", "crows")


def test_stereoset_on_the_real_gold_file(mirror):
    """Synthetic predictions over the real dev clusters; the point values equal the benchmark's own evaluation."""
    from benchmarks.stereoset import cluster_examples, evaluate, load_clusters
    from harness.data.catalog import resolve

    path = resolve("stereoset-dev", ["dev.jsonl"]).path("dev.jsonl")
    clusters, _ = load_clusters(path)
    preds = {"a": {}, "b": {}}
    for i, c in enumerate(clusters):
        (s, _), (a, _), (u, _) = (c.sentences[k] for k in ("stereotype", "anti-stereotype", "unrelated"))
        preds["a"].update({s: 0.9, a: 0.5, u: 0.1})  # always stereotypical, always related
        preds["b"].update({s: 0.5 if i % 3 else 0.9, a: 0.9 if i % 3 else 0.5, u: 0.95 if i % 2 else 0.1})
    records = []
    for v, scores in preds.items():
        rec = make_record("m", v, "stereoset", {"ss": 0.0})
        rec.per_example = cluster_examples(clusters, scores, ss_domain="gender").to_json()
        records.append(rec)
    for metric, domain in (("ss", "gender"), ("lms", "overall"), ("icat", "overall")):
        raw = compare(records, "a", "b", metric, resamples=300)[0]
        want_a = evaluate(clusters, preds["a"])[domain][metric].value
        want_b = evaluate(clusters, preds["b"])[domain][metric].value
        assert (raw.a, raw.b) == (pytest.approx(want_a), pytest.approx(want_b))
        assert raw.low <= raw.diff <= raw.high and raw.p_value < 0.01
    assert compare(records, "a", "b", "ss", resamples=300)[0].a == 100.0


def test_seat_comparison_from_stored_associations():
    """SEAT resamples target sentences within each test's X and Y; B's X sentences are less associated."""
    from benchmarks.seat import effect_size_from_association, stimulus_examples

    rng = np.random.default_rng(0)
    x, y = rng.normal(0.05, 0.02, 30), rng.normal(0.0, 0.02, 30)
    texts = ([f"x{i}" for i in range(30)], [f"y{i}" for i in range(30)])
    records = []
    for v, shift in (("a", 0.0), ("b", -0.04)):
        rec = make_record("m", v, "seat", {"effect_size_mean_abs": 0.0})
        rec.per_example = stimulus_examples(["t"], {"t": (x + shift, y)}, {"t": texts}).to_json()
        records.append(rec)
    raw, bias = compare(records, "a", "b", "seat", resamples=2000)
    assert raw.a == pytest.approx(abs(effect_size_from_association(x, y)), rel=1e-9)
    assert raw.b == pytest.approx(abs(effect_size_from_association(x - 0.04, y)), rel=1e-9)
    assert raw.diff > 0 and raw.low > 0 and raw.p_value < 0.01
    assert bias.quantity == "|seat − 0|"
