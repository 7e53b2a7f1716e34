"""The erasure template (harness/erasure.py): the erasers on plain arrays, the adapter around them on
zoo:bert-tiny, and the worked example of docs/adding-a-method.md, run as written."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import fp32_error_bound, restore_bert_tiny_origin
from harness.api import RunContext
from harness.attribute_data import (
    attribute_sentences,
    bias_bench_split,
    counterfactual_sets,
    encode,
    majority_rate,
    probe_accuracy,
)
from harness.erasure import OrthogonalProjection
from harness.registry import METHODS, get_method
from harness.variants import apply_variant, parse_variant
from methods.inlp import INLPEraser
from methods.leace import LeaceEraser
from methods.rlace import RLACEEraser
from methods.sentdebias import MAX_LENGTH, SentDebiasEraser

DOC = Path(__file__).resolve().parents[1] / "docs" / "adding-a-method.md"

keep_bert_tiny_origin = pytest.fixture(autouse=True)(restore_bert_tiny_origin)


def _documented_example(monkeypatch) -> dict:
    """Run the first ``python`` block of docs/adding-a-method.md; its method stays registered for one test."""
    source = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    monkeypatch.setitem(METHODS, "mean-difference", None)  # undone after the test: the name is removed again
    namespace = {"__name__": "mean_difference_example"}
    exec(compile(source, str(DOC), "exec"), namespace)
    return namespace


def _fp64_bound(scale: float, reduction: int) -> float:
    """conftest.fp32_error_bound's rounding bound of an n-term sum, for float64 (eps64 = 2^-52)."""
    return 4 * 2.0 ** -52 * reduction ** 0.5 * scale


def _planted(n_per_class: int = 500, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two classes of isotropic noise whose means differ by 3 units along a random direction."""
    rng = np.random.default_rng(seed)
    direction = rng.standard_normal(dim)
    y = np.repeat([0, 1], n_per_class)
    x = rng.standard_normal((len(y), dim)) + np.outer(3.0 * y, direction / np.linalg.norm(direction))
    return x, y


def _erasers(monkeypatch) -> dict:
    return {"inlp": INLPEraser(10, stop_at_majority=True), "leace": LeaceEraser(),
            "rlace": RLACEEraser(steps=1500, evaluate_every=250),
            "mean-difference": _documented_example(monkeypatch)["MeanDifferenceEraser"]()}


@pytest.mark.parametrize("name", ["inlp", "leace", "rlace", "mean-difference"])
def test_eraser_on_arrays_removes_a_planted_concept(name, monkeypatch):
    eraser = _erasers(monkeypatch)[name]
    x, y = _planted()
    with pytest.raises(RuntimeError, match="not fitted"):
        eraser.transform(x)
    rows = np.random.default_rng(1).permutation(len(y))
    fit, held_out = rows[: len(y) // 2], rows[len(y) // 2:]
    assert eraser.fit(x[fit], y[fit]) is eraser
    erased = eraser.transform(x)
    before = probe_accuracy(x[fit], y[fit], x[held_out], y[held_out])
    after = probe_accuracy(erased[fit], y[fit], erased[held_out], y[held_out])
    assert before > 0.9 and after < majority_rate(y[held_out]) + 0.06, (before, after)
    hook = eraser.hook()  # the same map in float32: what a model applies
    assert torch.equal(hook.matrix, torch.from_numpy(eraser.projection_).float())
    assert (hook.bias is None) == (eraser.bias_ is None)
    if isinstance(eraser, OrthogonalProjection):  # P = Pᵀ = P², up to its float32 values (RLACE's game)
        p = eraser.projection_
        assert np.abs(p - p.T).max() <= fp32_error_bound(1.0, 1) and eraser.bias_ is None
        assert np.abs(p @ p - p).max() <= fp32_error_bound(1.0, p.shape[0])
        assert eraser.rank_removed_ == 1 or (name == "inlp" and eraser.rank_removed_ > 1)
    else:  # LEACE, affine: the class means of the erased rows it was fitted on are equal
        means = [erased[fit][y[fit] == c].mean(0) for c in (0, 1)]
        assert np.abs(means[0] - means[1]).max() <= 2 * _fp64_bound(float(np.abs(x).max()), len(fit))


def test_sentdebias_eraser_finds_the_planted_counterfactual_direction():
    rng = np.random.default_rng(0)
    direction = rng.standard_normal(16)
    direction /= np.linalg.norm(direction)
    sentences = rng.standard_normal((200, 16)) + 5.0  # away from 0: the versions are L2-normalised
    versions = [sentences + sign * 0.5 * direction + 0.01 * rng.standard_normal((200, 16)) for sign in (1, -1)]
    eraser = SentDebiasEraser().fit(np.concatenate(versions), np.repeat([0, 1], 200))
    assert eraser.components_.shape == (1, 16) and eraser.explained_variance_ratio_[0] > 0.9
    # the direction between the normalised versions is close to, not exactly, the planted one
    assert abs(float(eraser.components_[0] @ direction)) > 0.95
    erased = eraser.transform(np.concatenate(versions))
    # X P then · v in float64: 2H-term sums on the scale of |x|
    assert np.abs(erased @ eraser.components_[0]).max() <= _fp64_bound(float(np.abs(versions[0]).max()), 32)
    with pytest.raises(ValueError, match="one version of each tuple"):
        SentDebiasEraser().fit(np.concatenate(versions)[:-1], np.repeat([0, 1], 200)[:-1])


@pytest.mark.parametrize("name", ["inlp", "leace", "rlace", "sentdebias"])
def test_adapter_fits_its_eraser_on_the_encoded_split(name, bert_tiny, tmp_path, mirror):
    """The adapter's hook is the eraser fitted by hand on the data the module docstrings describe."""
    options = {"inlp": {"n_per_class": 100, "iterations": 3}, "leace": {"n_per_class": 100},
               "rlace": {"n_per_class": 100, "steps": 30, "evaluate_every": 10},
               "sentdebias": {"n_examples": 60}}[name]
    ctx = RunContext(cache_dir=tmp_path, progress=False, seed=1)
    method = get_method(name)(**options)
    hook = method.fit(bert_tiny, ctx)
    if name == "sentdebias":
        tuples = counterfactual_sets("gender", 60, 1).tuples
        x = np.concatenate([encode(bert_tiny, [t[c] for t in tuples], ctx, max_length=MAX_LENGTH).double().numpy()
                            for c in (0, 1)])
        direct = SentDebiasEraser().fit(x, np.repeat([0, 1], 60))
        assert method.notes["n_tuples"] == 60
    else:
        data = attribute_sentences("gender", 100, 1)
        x, y = encode(bert_tiny, data.texts, ctx).double().numpy(), np.asarray(data.labels)
        if name == "rlace":  # male vs female
            x, y = x[y != 2], y[y != 2]
        train, dev, _ = bias_bench_split(len(y), 1)
        fit_on = np.concatenate([train, dev])
        if name == "inlp":  # cpu protocol: stops at the majority rate
            direct = INLPEraser(3, stop_at_majority=True, seed=1).fit(x[train], y[train], eval_set=(x[dev], y[dev]))
            assert method.notes["classifiers_trained"] == len(direct.accuracies_)
        elif name == "leace":
            direct = LeaceEraser().fit(x[fit_on], y[fit_on])
        else:
            direct = RLACEEraser(steps=30, evaluate_every=10, seed=1).fit(x[fit_on], y[fit_on])
            assert method.notes["steps_run"] == direct.log_["steps_run"]
        assert method.notes["n_sentences"] == len(y)
    expected = direct.hook()
    assert torch.equal(hook.matrix, expected.matrix)
    assert (hook.bias is None and expected.bias is None) or torch.equal(hook.bias, expected.bias)


def test_documented_example_registers_and_runs_as_a_variant_step(bert_tiny, tmp_path, monkeypatch, mirror):
    _documented_example(monkeypatch)
    ctx = RunContext(cache_dir=tmp_path, progress=False)
    origin = copy.deepcopy(bert_tiny.origin)
    steps = parse_variant("mean-difference", {"mean-difference": {"n_per_class": 300}})
    lm, log = apply_variant(bert_tiny, steps, ctx)
    (hook,) = lm.hooks
    lm.clear_hooks()
    notes = log[0]["notes"]
    assert notes["classes"] == {"male": 300, "female": 300} and notes["n_sentences"] == 600
    assert notes["rank_removed"] == 1 and notes["cache_hit"] is False
    assert notes["probe_accuracy_after"] < notes["probe_accuracy_before"] - 0.1
    # the hook equalises the male and female means of the rows it was fitted on
    data = attribute_sentences("gender", 300, 0)
    x, y = encode(bert_tiny, data.texts, ctx).double(), np.asarray(data.labels)
    x, y = x[torch.from_numpy(y != 2)], y[y != 2]
    train, dev, _ = bias_bench_split(len(y), 0)
    rows = torch.from_numpy(np.concatenate([train, dev]))
    x, y = x[rows], torch.from_numpy(y)[rows]
    erased = hook.apply_to_features(x).double()
    gap = (x[y == 0].mean(0) - x[y == 1].mean(0)).abs().max()
    # the float32 hook on the scale of its summed terms |x|·|A|ᵀ; a mean keeps the bound, a difference doubles it
    bound = 2 * fp32_error_bound(float((x.abs() @ hook.matrix.double().abs().T).max()), hook.dim)
    assert gap > 100 * bound and (erased[y == 0].mean(0) - erased[y == 1].mean(0)).abs().max() <= bound
    bert_tiny.origin = origin  # as a fresh load of the model in another run
    again, log = apply_variant(bert_tiny, steps, ctx)  # the fit is kept in the step's cache folder
    assert log[0]["notes"]["cache_hit"] is True and torch.equal(again.hooks[0].matrix, hook.matrix)
    again.clear_hooks()
