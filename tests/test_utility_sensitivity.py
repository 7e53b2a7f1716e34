"""The utility columns can see damage: the ``damage`` control (a seeded projection removing 95% of the hidden
dimensions) must drop LMS, lm-quality accuracy and the GLUE probe of zoo:bert-tiny-mlm outside their intervals."""

from __future__ import annotations

import pytest
import torch

from harness.config import parse_config
from harness.pipeline import run_experiment
from harness.records import load_records
from methods.damage import random_subspace_removal


def test_damage_hook_is_a_seeded_orthogonal_projection():
    hook, removed = random_subspace_removal(128, 0.95, seed=3)
    p = hook.matrix.double()
    assert removed == 122 and hook.bias is None
    torch.testing.assert_close(p @ p, p, rtol=0, atol=1e-6)  # a projection (float32 storage)
    torch.testing.assert_close(p, p.T, rtol=0, atol=1e-7)  # orthogonal
    assert torch.linalg.matrix_rank(p, atol=1e-4) == 128 - 122
    assert torch.equal(random_subspace_removal(128, 0.95, seed=3)[0].matrix, hook.matrix)
    assert not torch.allclose(random_subspace_removal(128, 0.95, seed=4)[0].matrix, hook.matrix, atol=1e-2)


def test_utility_columns_drop_outside_their_intervals_under_damage(mirror, tmp_path):
    config = parse_config({
        "name": "sensitivity", "models": ["zoo:bert-tiny-mlm"], "variants": ["base", "damage"], "seeds": [0],
        "protocol": "cpu", "results_dir": str(tmp_path / "runs"),
        "benchmarks": [{"name": "lm-quality", "options": {"n_sentences": 200, "resamples": 300}},
                       "stereoset",
                       {"name": "glue", "options": {"protocol": "probe", "tasks": ["sst2"], "max_train": 2000,
                                                    "resamples": 300}}]})
    run_experiment(config, progress=False)
    scores = {(r.variant, r.benchmark): r.scores for r in load_records(tmp_path / "runs")}
    damage = next(r for r in load_records(tmp_path / "runs") if r.variant == "damage")
    assert damage.variant_steps[0]["notes"]["kept_dimensions"] == 6
    for benchmark, metric in (("lm-quality", "accuracy"), ("stereoset", "lms"), ("glue", "score")):
        base, broken = scores[("base", benchmark)][metric], scores[("damage", benchmark)][metric]
        assert broken.high < base.low, (benchmark, metric, base, broken)
    assert scores[("base", "glue")]["floor"].value == \
        scores[("damage", "glue")]["floor"].value == pytest.approx(444 / 872 * 100)
