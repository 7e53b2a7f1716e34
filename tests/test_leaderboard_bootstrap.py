"""The joint paired bootstrap of the leaderboard on records with per-example scores of known structure."""

from __future__ import annotations

import numpy as np
import pytest

from harness.cli import main
from harness.errors import HarnessError
from harness.examples import Examples, digest
from harness.stats import percentile_interval, replicate_draws, resample_weights
from leaderboard.bootstrap import build_board, replicate_ranks
from leaderboard.compare import paired_bootstrap, resampled_metrics
from leaderboard_records import make_record, write

N = 400


def crows(variant: str, prefs: np.ndarray, model: str = "m", seed: int = 0):
    rec = make_record(model, variant, "crows", {"score": 100 * float((prefs > 0).mean())}, seed=seed)
    rec.per_example = Examples("pair", {"preference": prefs.astype(np.int8), "stereo": np.ones(len(prefs), np.uint8)},
                               digest(map(str, range(len(prefs))))).to_json()
    return rec


def pattern(stereotypical: int, shift: int = 0) -> np.ndarray:
    """+1 on ``stereotypical`` of N pairs (spread evenly), −1 elsewhere, rotated by ``shift`` pairs."""
    prefs = -np.ones(N)
    prefs[np.linspace(0, N, stereotypical, endpoint=False).astype(int)] = 1
    return np.roll(prefs, shift)


def board(records, **options):
    return build_board(records, bias=("crows",), quality=(), order=["base", "a", "b"], **options)


def test_equal_variants_overlap_and_are_a_coin_flip():
    """Same share of stereotypical pairs on different pairs: equal point scores, every order in the replicates."""
    shuffled = pattern(260)[np.random.default_rng(0).permutation(N)]
    records = [crows("base", pattern(260)), crows("a", shuffled)]
    rows = {r.variant: r for r in board(records, replicates=2000).rows}
    assert rows["a"].intervals["crows"] == (0.0, 1.0) and rows["base"].intervals["crows"] == (0.0, 1.0)
    assert rows["a"].p_better == pytest.approx(0.5, abs=0.06)
    assert rows["a"].distinguishable() is False and rows["base"].p_better is None


def test_a_planted_large_effect_is_certain():
    """b prefers the stereotypical sentence on half the pairs (CrowS 50, unbiased); base on 70 %."""
    records = [crows("base", pattern(280)), crows("a", pattern(280, shift=7)), crows("b", pattern(200))]
    rows = {r.variant: r for r in board(records).rows}
    assert rows["b"].mean == 1.0 and rows["b"].intervals["mean"] == (1.0, 1.0)
    assert rows["b"].p_better == 1.0 and rows["b"].distinguishable() is True
    assert rows["a"].intervals["mean"][1] <= 0.5  # never above b, never certain about base


def test_same_seed_same_intervals_and_the_seed_matters():
    records = [crows("base", pattern(260)), crows("a", pattern(255, shift=3)), crows("b", pattern(250, shift=11))]
    first, again = board(records, seed=5), board(records, seed=5)
    assert [(r.intervals, r.p_better) for r in first.rows] == [(r.intervals, r.p_better) for r in again.rows]
    other = board(records, seed=6)
    assert [r.p_better for r in first.rows] != [r.p_better for r in other.rows]


def test_paired_resampling_is_narrower_than_unpaired_on_correlated_scores():
    """b differs from a on 12 of 400 pairs: pairing cancels the shared noise of the other 388."""
    a = pattern(240)
    b = a.copy()
    b[np.flatnonzero(a > 0)[:12]] = -1
    metric = resampled_metrics()["crows"][1]
    ex_a, ex_b = (Examples("pair", {"preference": p.astype(np.int8)}, digest(map(str, range(N)))) for p in (a, b))
    paired = paired_bootstrap(ex_a, ex_b, metric, "m", resamples=2000)[0]
    draws_a = replicate_draws(metric.statistic, ex_a.arrays, N, replicates=2000, seed=1)
    draws_b = replicate_draws(metric.statistic, ex_b.arrays, N, replicates=2000, seed=2)
    low, high = percentile_interval(draws_a - draws_b)
    assert paired.diff == pytest.approx(3.0) and paired.low > 0  # paired: a is more biased, surely
    assert (paired.high - paired.low) * 3 < high - low and low < 0  # unpaired: cannot tell


def test_seeds_are_a_second_level():
    """Three seeds that disagree widen the interval of a variant's score beyond one seed's."""
    one = [crows("base", pattern(260)), crows("a", pattern(230))]
    three = one + [crows("a", pattern(290, shift=1), seed=1), crows("a", pattern(230, shift=2), seed=2)]
    narrow, wide = (board(r, replicates=1000).score_intervals[("m", "a", "crows")] for r in (one, three))
    assert wide[1] - wide[0] > 1.3 * (narrow[1] - narrow[0])


def test_replicate_ranks_match_the_table_rule():
    distances = np.array([[3.0, 1.0, 2.0], [1.0, 1.0, 0.0]])  # second row: a tie, the earlier variant ranks lower
    np.testing.assert_array_equal(replicate_ranks(distances), [[0.0, 1.0, 0.5], [0.0, 0.5, 1.0]])


def test_stratified_weights_keep_every_stratum_size():
    strata = np.array([0] * 5 + [1] * 3 + [2] * 7)
    for w in resample_weights(len(strata), 1200, 0, strata):
        assert w.shape[1] == 15
        np.testing.assert_array_equal(np.stack([w[:, strata == s].sum(1) for s in (0, 1, 2)], 1),
                                      np.broadcast_to([5, 3, 7], (len(w), 3)))


def test_a_record_without_per_example_scores_is_named(tmp_path, capsys):
    records = [crows("base", pattern(260)), make_record("m", "a", "crows", {"score": 55.0})]
    with pytest.raises(HarnessError, match="crows record of m/a seed 0 has no per-example scores"):
        board(records)
    assert board(records, intervals=False).rows  # the point table still works
    for rec in records:
        write(tmp_path, rec)
    assert main(["leaderboard", "--results", str(tmp_path), "--bias", "crows"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "m/a seed 0 has no per-example scores" in err[0] and "re-run" in err[0]
    assert main(["leaderboard", "--results", str(tmp_path), "--bias", "crows", "--no-intervals"]) == 0


def test_bootstrap_mean_ranks_use_the_replicate_means():
    """|mean − 50| of the replicates differs from the point value's distance only through resampling noise,
    so on well-separated variants both rank inputs give the same order."""
    records = [crows("base", pattern(300)), crows("a", pattern(250, shift=3)), crows("b", pattern(205))]
    point, means = board(records), board(records, rank_input="bootstrap-mean")
    assert means.rank_input == "bootstrap-mean"
    assert [r.variant for r in point.rows] == [r.variant for r in means.rows] == ["b", "a", "base"]
    with pytest.raises(HarnessError, match="needs the bootstrap"):
        board(records, rank_input="bootstrap-mean", intervals=False)
