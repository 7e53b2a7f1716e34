"""SEAT: the statistics against hand computations, the hook path on a real model, both zoo models, bad files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from benchmarks.seat import (
    SEAT,
    SETS,
    TESTS_BY_BIAS,
    association,
    effect_size,
    effect_size_from_association,
    load_seat_test,
    permutation_p_value,
    stimulus_examples,
    weighted_effect_sizes,
)
from harness.api import RunContext
from harness.errors import HarnessError


def test_effect_size_equals_hand_computation():
    # Rows need not be unit length: cosine normalises them. Unit versions: X = (1,0), (.6,.8); Y = (0,1), (.8,.6).
    x = np.array([[2.0, 0.0], [3.0, 4.0]])
    y = np.array([[0.0, 1.0], [8.0, 6.0]])
    a = np.array([[1.0, 0.0], [0.6, 0.8]])
    b = np.array([[0.0, 5.0]])
    # s(w) = (cos(w,a1) + cos(w,a2))/2 - cos(w,b) = (w1 + .6 w1 + .8 w2)/2 - w2 = .8 w1 - .6 w2 for unit w
    s_x = [0.8 * 1 - 0.6 * 0, 0.8 * 0.6 - 0.6 * 0.8]  # [0.8, 0.0]
    s_y = [0.8 * 0 - 0.6 * 1, 0.8 * 0.8 - 0.6 * 0.6]  # [-0.6, 0.28]
    np.testing.assert_allclose(association(np.concatenate([x, y]), a, b), s_x + s_y, atol=1e-12)
    numerator = (0.8 + 0.0) / 2 - (-0.6 + 0.28) / 2  # 0.4 - (-0.16) = 0.56
    mean = (0.8 + 0.0 - 0.6 + 0.28) / 4  # 0.12
    std = math.sqrt(((0.8 - mean) ** 2 + (0.0 - mean) ** 2 + (-0.6 - mean) ** 2 + (0.28 - mean) ** 2) / 3)  # ddof=1
    assert abs(effect_size(x, y, a, b) - numerator / std) < 1e-12
    assert abs(effect_size(x, y, a, b) - 0.96002) < 1e-5
    assert abs(effect_size(y, x, a, b) + numerator / std) < 1e-12  # swapping the targets flips the sign


@pytest.mark.parametrize("scale", [1.0, 0.1])  # 0.1: ties only up to rounding (0.5+0.4+0.0 vs 0.2+0.3+0.4)
def test_exact_p_value_on_3_plus_3_counted_by_hand(scale):
    s_x, s_y = np.array([5.0, 4.0, 0.0]) * scale, np.array([3.0, 2.0, 1.0]) * scale
    # S(X) = 9. Of the C(6,3) = 20 subsets of {0..5}: sum > 9: {3,4,5}=12, {2,4,5}=11, {1,4,5}=10, {2,3,5}=10;
    # sum = 9 (ties count, conservative): {0,4,5}, {1,3,5}, {2,3,4}. So p = 7/20.
    p, exact = permutation_p_value(s_x, s_y)
    assert exact and abs(p - 7 / 20) < 1e-12
    # Swapped: S(Y) = 6; sums < 6 are {0,1,2}=3, {0,1,3}=4, {0,1,4}=5, {0,2,3}=5, so p = (20 - 4)/20.
    p, exact = permutation_p_value(s_y, s_x)
    assert exact and abs(p - 16 / 20) < 1e-12


def test_random_partitions_are_seeded_and_approximate_the_exact_p():
    rng = np.random.default_rng(7)
    s_x, s_y = rng.normal(0.3, 1, 5), rng.normal(0, 1, 5)  # C(10,5) = 252 partitions
    exact_p, exact = permutation_p_value(s_x, s_y)
    assert exact and 0.02 < exact_p < 0.98
    p1, exact1 = permutation_p_value(s_x, s_y, n_permutations=20_000, exact_limit=100, seed=3)
    p2, _ = permutation_p_value(s_x, s_y, n_permutations=20_000, exact_limit=100, seed=3)
    p3, _ = permutation_p_value(s_x, s_y, n_permutations=20_000, exact_limit=100, seed=4)
    assert not exact1 and p1 == p2 and p1 != p3
    assert abs(p1 - exact_p) < 0.02 and abs(p3 - exact_p) < 0.02  # 5 binomial standard errors ≈ 0.017
    assert permutation_p_value(s_x, s_y, n_permutations=1, exact_limit=100)[0] == 1.0  # biased by one
    big = rng.normal(size=512)  # C(512, 256) partitions: random path, p ≥ 1/n_permutations
    p, exact = permutation_p_value(big[:256] + 10, big[256:], n_permutations=1000)
    assert not exact and p == 1 / 1000


def _hand_effect_sizes(lm, tests, mirror, P=None):
    data = {t: load_seat_test(mirror / "seat" / f"{t}.jsonl") for t in tests}
    sentences = sorted({e for d in data.values() for k in SETS for e in d[k]["examples"]})
    reps = lm.pooled(sentences, normalize=False, batch_size=17)
    if P is not None:
        reps = reps @ P  # the projection by hand on the pooled (mean) state = mean of projected token states
    reps = torch.nn.functional.normalize(reps, dim=-1).double().numpy()
    row = {s: i for i, s in enumerate(sentences)}
    return {t: effect_size(*(reps[[row[e] for e in d[k]["examples"]]] for k in SETS)) for t, d in data.items()}


def test_projection_hook_changes_seat_exactly_as_projecting_by_hand(bert_tiny, mirror, monkeypatch):
    tests = ["sent-weat6", "sent-weat7"]
    weat6 = load_seat_test(mirror / "seat" / "sent-weat6.jsonl")
    v = bert_tiny.pooled(weat6["targ1"]["examples"]).mean(0) - bert_tiny.pooled(weat6["targ2"]["examples"]).mean(0)
    v = v / v.norm()
    P = torch.eye(bert_tiny.hidden_size) - torch.outer(v, v)
    expected = _hand_effect_sizes(bert_tiny, tests, mirror, P)
    unprojected = _hand_effect_sizes(bert_tiny, tests, mirror)

    calls = []
    original = bert_tiny.pooled
    monkeypatch.setattr(bert_tiny, "pooled", lambda texts, **kw: calls.append(list(texts)) or original(texts, **kw))
    hook = lambda h: h @ P  # noqa: E731
    bert_tiny.add_hidden_hook(hook)
    try:
        result = SEAT(tests=tests, n_permutations=500).run(bert_tiny, RunContext(progress=False))
    finally:
        bert_tiny.remove_hidden_hook(hook)
    assert len(calls) == 1 and len(calls[0]) == len(set(calls[0])) == result.details["sentences_encoded"]
    for t in tests:
        assert abs(result.scores[f"effect_size:{t}"].value - expected[t]) < 1e-5
    assert abs(expected["sent-weat6"] - unprojected["sent-weat6"]) > 0.1  # the hook really changed SEAT
    mean_abs = np.mean([abs(expected[t]) for t in tests])
    assert abs(result.scores["effect_size_mean_abs"].value - mean_abs) < 1e-5
    assert not bert_tiny.hooks


def test_gender_seat_runs_on_both_zoo_models(any_lm, mirror):
    result = SEAT(n_permutations=5000).run(any_lm, RunContext(seed=1, bias_type="gender", progress=False))
    tests = TESTS_BY_BIAS["gender"]
    assert set(result.scores) == {"effect_size_mean_abs"} | {f"{k}:{t}" for t in tests
                                                             for k in ("effect_size", "p_value")}
    sizes = [result.scores[f"effect_size:{t}"].value for t in tests]
    assert all(math.isfinite(d) and abs(d) < 2 for d in sizes)  # |d| ≤ 2 for equal-size target sets
    assert all(1 / 5000 <= result.scores[f"p_value:{t}"].value <= 1 for t in tests)
    mean_abs = result.scores["effect_size_mean_abs"]
    assert abs(mean_abs.value - np.mean(np.abs(sizes))) < 1e-12
    assert mean_abs.low <= mean_abs.value <= mean_abs.high
    assert result.details["tests"]["sent-weat6"]["p_value_method"] == "random"
    # the stored per-sentence associations reproduce every d (fp64 sums of ~100 terms: 1e-9 is generous)
    examples = result.per_example
    assert examples.n == sum(result.details["tests"][t]["sizes"]["targ1"] * 2 for t in tests)
    np.testing.assert_allclose(weighted_effect_sizes(examples.arrays, np.ones((1, examples.n)))[0], sizes, atol=1e-9)


def test_weighted_effect_size_is_caliskans_d_of_the_resampled_sets():
    """Frequency weights equal repeating sentences: weight 2 on x_0 is the d of X with x_0 listed twice."""
    s_x, s_y = np.array([0.8, 0.0, 0.3]), np.array([-0.6, 0.28, 0.1])
    examples = stimulus_examples(["t"], {"t": (s_x, s_y)}, {"t": (["x0", "x1", "x2"], ["y0", "y1", "y2"])})
    w = np.array([[1, 1, 1, 1, 1, 1], [2, 0, 1, 1, 1, 1]], dtype=float)
    got = weighted_effect_sizes(examples.arrays, w)[:, 0]
    assert got[0] == pytest.approx(effect_size_from_association(s_x, s_y), abs=1e-12)
    assert got[1] == pytest.approx(effect_size_from_association([0.8, 0.8, 0.3], s_y), abs=1e-12)


GOOD = {k: {"category": k, "examples": [f"{k} one.", f"{k} two."]} for k in SETS}


@pytest.mark.parametrize("content, problem", [
    ({k: v for k, v in GOOD.items() if k != "attr2"}, "lacks key(s) attr2"),
    ({**GOOD, "targ2": {"category": "T", "examples": []}}, "'targ2' has an empty example list"),
    ("{not json", "is not valid JSON"),
    ({**GOOD, "targ1": {"category": "T", "examples": ["a.", "b.", "c."]}}, "targ1 has 3 examples but targ2 has 2"),
    ([1, 2], "is not a JSON object"),
])
def test_malformed_files_raise_one_line_errors(tmp_path, content, problem):
    import json

    path = tmp_path / "sent-bad.jsonl"
    path.write_text(content if isinstance(content, str) else json.dumps(content, indent=2))
    with pytest.raises(HarnessError) as info:
        load_seat_test(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and problem in message
    path.write_text(json.dumps(GOOD))
    assert load_seat_test(path)["attr1"]["examples"] == ["attr1 one.", "attr1 two."]


def test_unknown_test_and_bias_type_are_rejected():
    with pytest.raises(HarnessError, match="unknown SEAT test.*sent-weat99.*allowed:.*sent-weat6b"):
        SEAT(tests=["sent-weat6", "sent-weat99"]).tests(RunContext())
    with pytest.raises(HarnessError, match="no tests for bias type 'age'"):
        SEAT().tests(RunContext(bias_type="age"))
    assert SEAT(tests="sent-weat6, sent-religion1").tests(RunContext()) == ["sent-weat6", "sent-religion1"]
    assert SEAT().tests(RunContext(bias_type="religion")) == list(TESTS_BY_BIAS["religion"])
