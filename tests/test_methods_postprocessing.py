"""Post-processing methods (INLP, SentDebias, LEACE, RLACE, SelfDebias) on the real zoo models and corpus."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from conftest import EPS32, fp32_error_bound, restore_bert_tiny_origin
from harness.api import RunContext, WeightChangingMethod
from harness.attribute_data import attribute_sentences, counterfactual_sets, encode, majority_rate, probe_accuracy
from harness.attributes import AttributeLexicon
from harness.data.corpus import is_heldout, load_documents
from harness.errors import HarnessError
from harness.hooks import AffineHook
from harness.registry import METHODS, get_method
from harness.variants import apply_variant, parse_variant

# small fits that still erase the concept on bert-tiny (hidden size 128): one shared encoding of
# 600 sentences per class serves INLP, LEACE and RLACE (cached under the context's cache_dir)
N_FIT = 600
FIT_OPTIONS = {"inlp": {"n_per_class": N_FIT, "iterations": 35},
               "leace": {"n_per_class": N_FIT},
               "rlace": {"n_per_class": N_FIT}}  # the cpu protocol's 2,000 steps


@pytest.fixture(scope="module")
def method_cache(tmp_path_factory):
    from conftest import require_mirror

    require_mirror()
    return tmp_path_factory.mktemp("method-cache")


keep_bert_tiny_origin = pytest.fixture(autouse=True)(restore_bert_tiny_origin)


def _ctx(cache, **kwargs) -> RunContext:
    return RunContext(cache_dir=cache, progress=False, **kwargs)


@pytest.fixture(scope="module")
def heldout(bert_tiny, method_cache):
    """Held-out gender sentences (documents never used for fitting): plain features, labels, documents."""
    data = attribute_sentences("gender", 400, seed=0, split="heldout")
    features = encode(bert_tiny, data.texts, _ctx(method_cache))
    return features, np.asarray(data.labels), np.asarray(data.documents)


@pytest.fixture(scope="module")
def fitted(bert_tiny, method_cache):
    hooks, notes = {}, {}
    for name, options in FIT_OPTIONS.items():
        method = get_method(name)(**options)
        hooks[name] = method.fit(bert_tiny, _ctx(method_cache))
        notes[name] = method.notes
    return hooks, notes


def _by_document(x: np.ndarray, y: np.ndarray, documents: np.ndarray) -> tuple[float, float]:
    """Probe accuracy and majority rate, the probe trained on even documents and tested on odd ones (a
    split by sentence would let the probe learn which documents are about women, not the concept)."""
    train, test = documents % 2 == 0, documents % 2 == 1
    return probe_accuracy(x[train], y[train], x[test], y[test]), majority_rate(y[test])


@pytest.mark.parametrize("name", ["inlp", "leace", "rlace"])
def test_fresh_probe_on_heldout_projected_features_is_at_majority(name, fitted, heldout):
    hooks, notes = fitted
    features, labels, documents = heldout
    if name == "rlace":  # RLACE erases the binary concept male vs female
        keep = labels != 2
        features, labels, documents = features[keep], labels[keep], documents[keep]
    projected = hooks[name].apply_to_features(features).double().numpy()
    original, majority = _by_document(features.double().numpy(), labels, documents)
    erased, _ = _by_document(projected, labels, documents)
    assert isinstance(hooks[name], AffineHook)
    assert original > majority + 0.15, (original, majority)
    assert erased <= majority + 0.05, (erased, majority, notes[name])
    assert notes[name]["probe_accuracy_after"] < notes[name]["probe_accuracy_before"]
    assert notes[name]["protocol"] == "cpu" and notes[name]["cache_hit"] is False


def test_inlp_projection_is_an_orthogonal_projection_removing_the_classifiers(fitted):
    hooks, notes = fitted
    p = hooks["inlp"].matrix.double()
    # fitted in float64, stored in float32: P + E with |E| ≤ u|P|; rows of an orthogonal projection have norm ≤ 1,
    # so |(P+E)² − (P+E)| ≤ |PE| + |EP| + |E| ≤ 3u < eps32, and P − Pᵀ is at most one ulp of an entry
    torch.testing.assert_close(p @ p, p, atol=2 * EPS32, rtol=0)
    torch.testing.assert_close(p, p.T, atol=EPS32 * float(p.abs().max()), rtol=0)
    assert round(float(torch.trace(p))) == 128 - notes["inlp"]["rank_removed"]
    assert 0 < notes["inlp"]["rank_removed"] <= 3 * 35  # one-vs-rest over 3 classes: ≤ 3 directions per round


def test_leace_equalises_class_means_and_matches_the_package_eraser(heldout):
    from concept_erasure import LeaceFitter

    from methods.leace import leace_hook

    features, labels, _ = heldout
    x, y = features.double(), torch.from_numpy(labels)
    hook = leace_hook(x, y, 3)
    erased = hook.apply_to_features(features).double()
    means = torch.stack([erased[y == k].mean(0) for k in range(3)])
    before = torch.stack([x[y == k].mean(0) for k in range(3)])
    assert (before - before.mean(0)).abs().max() > 0.05
    # the float32 hook (A x + b, stored in fp32) on the scale of its summed terms |x|·|A|ᵀ + |b|, H terms
    terms = x.abs() @ hook.matrix.double().abs().T + hook.bias.double().abs()
    bound = fp32_error_bound(float(terms.max()), x.shape[1])
    assert (means - means.mean(0)).abs().max() <= 2 * bound  # each class mean within the bound of the common one
    eraser = LeaceFitter.fit(x, torch.nn.functional.one_hot(y.long(), 3).double()).eraser
    assert hook.bias is not None and hook.bias.abs().max() > 0  # the mean term is part of the hook
    torch.testing.assert_close(erased, eraser(x), atol=bound, rtol=0)  # the package erases in float64


def test_sentdebias_output_is_orthogonal_to_the_removed_direction(bert_tiny, method_cache):
    method = get_method("sentdebias")(n_examples=150)
    hook = method.fit(bert_tiny, _ctx(method_cache))
    values, vectors = torch.linalg.eigh(torch.eye(hook.dim) - hook.matrix.double())
    # I − M for M = I − vvᵀ stored in fp32: eigenvalues move by ≤ ‖E‖₂ ≤ u·‖M‖_F = u·√(H − 1)
    moved = fp32_error_bound(1.0, hook.dim)
    assert values[-1] == pytest.approx(1.0, abs=moved) and values[-2] == pytest.approx(0.0, abs=moved)
    direction = vectors[:, -1].float()
    batch = bert_tiny.tokenize(["He said his brother is a nurse.", "She told her sister about the new job."])
    plain = bert_tiny.final_hidden_states(**batch)
    bert_tiny.add_hidden_hook(hook)
    try:
        hidden = bert_tiny.final_hidden_states(**batch)
    finally:
        bert_tiny.clear_hooks()
    assert (plain @ direction).abs().max() > 0.1
    # h·Mᵀ then ·v in fp32: 2H-term sums on the scale of |h|·|M|ᵀ, plus M's and v's own fp32 rounding
    terms = plain.detach().abs() @ hook.matrix.abs().T
    assert (hidden @ direction).abs().max() <= fp32_error_bound(float(terms.max()), 2 * hook.dim)
    assert method.notes["n_tuples"] == 150 and method.notes["explained_variance_ratio"][0] > 0


def test_fits_are_cached_per_step_and_reused(bert_tiny, tmp_path, mirror):
    ctx = RunContext(cache_dir=tmp_path, progress=False)
    steps = parse_variant("sentdebias", {"sentdebias": {"n_examples": 40}})
    origin = copy.deepcopy(bert_tiny.origin)
    first, log1 = apply_variant(bert_tiny, steps, ctx)
    first.clear_hooks()
    bert_tiny.origin = copy.deepcopy(origin)  # as a fresh load of the model in another run
    second, log2 = apply_variant(bert_tiny, steps, ctx)
    hook = second.hooks[0]
    second.clear_hooks()
    assert log1[0]["cache_key"] == log2[0]["cache_key"]
    assert log1[0]["notes"]["cache_hit"] is False and log2[0]["notes"]["cache_hit"] is True
    cached = AffineHook.load(tmp_path / "methods" / "sentdebias" / log1[0]["cache_key"])
    torch.testing.assert_close(cached.matrix, hook.matrix)


class _PerturbWeights(WeightChangingMethod):
    """A stand-in weight step: a clone with one weight matrix scaled (the real ΔW methods train)."""

    name = "test-perturb"

    def apply(self, lm, ctx):
        changed = lm.clone()
        with torch.no_grad():
            next(iter(changed.backbone_parameters(include=["*.layer.1.output.dense.weight"]).values())).mul_(1.5)
        return changed


def test_combination_fits_on_the_changed_model_not_the_base(bert_tiny, tmp_path, monkeypatch, mirror):
    monkeypatch.setitem(METHODS, "test-perturb", _PerturbWeights)
    ctx = RunContext(cache_dir=tmp_path, progress=False)
    options = {"inlp": {"n_per_class": 60, "iterations": 2}}
    origin = copy.deepcopy(bert_tiny.origin)
    base_lm, base_log = apply_variant(bert_tiny, parse_variant("inlp", options), ctx)
    base_hook = base_lm.hooks[0]
    base_lm.clear_hooks()
    bert_tiny.origin = origin  # as a fresh load of the model
    combined, log = apply_variant(bert_tiny, parse_variant("test-perturb+inlp", options), ctx)
    assert combined is not bert_tiny and log[1]["method"] == "inlp"
    assert log[1]["cache_key"] != base_log[0]["cache_key"]
    assert log[1]["notes"]["cache_hit"] is False
    assert (tmp_path / "methods" / "inlp" / log[1]["cache_key"] / "hook.safetensors").is_file()
    assert not torch.allclose(combined.hooks[0].matrix, base_hook.matrix)
    assert combined.origin["lineage"][0]["method"] == "test-perturb"


def test_bad_input_gives_one_line_errors(monkeypatch, mirror):
    monkeypatch.setitem(METHODS, "test-perturb", _PerturbWeights)
    with pytest.raises(HarnessError, match="unknown method 'nosuch'"):
        parse_variant("nosuch")
    with pytest.raises(HarnessError, match="after a post-processing one"):
        parse_variant("inlp+test-perturb")
    with pytest.raises(HarnessError, match="has no option"):
        parse_variant("leace", {"leace": {"iterations": 3}})
    with pytest.raises(HarnessError, match="no attribute words for bias type 'age'"):
        attribute_sentences("age", 10)
    unseen = AttributeLexicon("gender", (("zzqxman", "zzqxwoman"),))
    with pytest.raises(HarnessError, match="class\\(es\\) male, female"):
        attribute_sentences("gender", 10, lexicon=unseen)
    with pytest.raises(HarnessError, match="contains a gender attribute word"):
        counterfactual_sets("gender", 10, lexicon=unseen)


def test_attribute_sets_are_deterministic_labelled_and_split(mirror):
    lexicon = AttributeLexicon.load("gender")
    a = attribute_sentences("gender", 200, seed=1)
    assert a == attribute_sentences("gender", 200, seed=1)
    assert a.texts != attribute_sentences("gender", 200, seed=2).texts
    assert a.counts() == {"male": 200, "female": 200, "neutral": 200}
    for text, label in zip(a.texts, a.labels):
        assert lexicon.classes_in(text) == ({label} if label < 2 else set())
    train = attribute_sentences("gender", 300, clip=False)
    heldout = attribute_sentences("gender", 300, clip=False, split="heldout")
    documents = load_documents()
    assert not any(is_heldout(documents[d]) for d in train.documents)
    assert all(is_heldout(documents[d]) for d in heldout.documents)
    assert all(text in documents[d] for text, d in zip(heldout.texts, heldout.documents))
    race = attribute_sentences("race", 50, grouping="per-class")
    assert race.class_names == ("black", "caucasian", "asian", "neutral")
    pairs = counterfactual_sets("gender", 30, seed=0)
    for male, female in pairs.tuples:
        assert lexicon.classes_in(male) == {0} and lexicon.classes_in(female) == {1}
        assert lexicon.swap(male, to_class=0) == male and lexicon.swap(female, to_class=1) == female


def test_selfdebias_without_prefix_effect_equals_the_base_model(bert_tiny):
    texts = ["The nurse said that [MASK] would come.", "My [MASK] works as an engineer in the city."]
    batch = bert_tiny.tokenize(texts)
    positions = (batch["input_ids"] == bert_tiny.tokenizer.mask_token_id).nonzero(as_tuple=True)
    with torch.no_grad():
        base = bert_tiny.token_log_probs(**batch, positions=positions)
        outputs = {}
        for label, options in {"no-decay": {"decay_constant": 0.0}, "empty-prefix": {"prefixes": [""]},
                               "default": {}}.items():
            method = get_method("selfdebias")(**options)
            bert_tiny.add_prediction_hook(method.fit(bert_tiny, RunContext()))
            try:
                outputs[label] = bert_tiny.token_log_probs(**batch, positions=positions)
            finally:
                bert_tiny.clear_hooks()
    # without a factor (λ = 0; or an empty prefix, which reruns the very same forward, so α = 0) only the
    # renormalisation log p − logsumexp(log p) rounds: a V-term fp32 sum on the scale of |log p|
    renormalised = fp32_error_bound(float(base.abs().max()), bert_tiny.vocab_size)
    torch.testing.assert_close(outputs["no-decay"], base, atol=renormalised, rtol=0)
    torch.testing.assert_close(outputs["empty-prefix"], base, atol=renormalised, rtol=0)
    assert (outputs["default"] - base).abs().max() > 10 * renormalised  # far beyond rounding
    torch.testing.assert_close(outputs["default"].exp().sum(-1), torch.ones(2), atol=renormalised, rtol=0)
    # undamped tokens all gain the same renormalisation shift; damped ones lose at most a factor epsilon
    change = outputs["default"] - base
    shift = change.max(dim=-1, keepdim=True).values
    assert (change >= shift + np.log(0.01) - 2 * renormalised).all()
    assert ((shift - change) <= 2 * renormalised).float().mean() > 0.3


def test_selfdebias_scores_do_not_depend_on_its_chunking(bert_tiny):
    hook = get_method("selfdebias")().fit(bert_tiny, RunContext())
    batch = bert_tiny.tokenize(["The nurse said that [MASK] would come.", "He is a doctor.", "My [MASK] cooks."])
    positions = (batch["attention_mask"] > 0).nonzero(as_tuple=True)
    with torch.no_grad():
        log_probs = bert_tiny.token_log_probs(**batch, positions=positions)
        whole = hook(bert_tiny, batch["input_ids"], batch["attention_mask"], positions, log_probs)
        hook.max_positions = 3  # one input row per forward pass
        chunked = hook(bert_tiny, batch["input_ids"], batch["attention_mask"], positions, log_probs)
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=0)
    assert (whole - log_probs).abs().max() > 1e-3


def _check_prefix_insertion(lm, texts):
    from methods.selfdebias import DEBIASING_PREFIXES, insert_prefix

    batch = lm.tokenize(texts)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    rows, cols = (mask[:, 1:] > 0).nonzero(as_tuple=True)
    prefix = lm.tokenizer(DEBIASING_PREFIXES["gender"], add_special_tokens=False)["input_ids"]
    new_ids, new_mask, (new_rows, new_cols) = insert_prefix(lm, ids, mask, (rows, cols), prefix)
    assert new_ids.shape == (ids.shape[0], ids.shape[1] + len(prefix))
    assert new_mask.sum() == mask.sum() + ids.shape[0] * len(prefix)
    scored = cols + 1 if lm.kind == "causal" else cols  # the token each row's distribution is about
    moved = new_cols + 1 if lm.kind == "causal" else new_cols
    assert torch.equal(new_ids[new_rows, moved], ids[rows, scored])
    return new_ids


def test_selfdebias_prefix_goes_after_cls_like_bias_bench(bert_tiny):
    from methods.selfdebias import DEBIASING_PREFIXES

    texts = ["The nurse said that [MASK] would come.", "He is a doctor."]
    new_ids = _check_prefix_insertion(bert_tiny, texts)
    as_text = bert_tiny.tokenize([DEBIASING_PREFIXES["gender"] + t for t in texts])["input_ids"]
    assert torch.equal(new_ids, as_text)


@pytest.mark.slow
def test_selfdebias_on_a_causal_lm(smollm2):
    _check_prefix_insertion(smollm2, ["The nurse said that she would come.", "He is a doctor."])
    batch = smollm2.tokenize(["The nurse said that she would come."])
    with torch.no_grad():
        base = smollm2.token_log_probs(**batch)
        smollm2.add_prediction_hook(get_method("selfdebias")(decay_constant=0.0).fit(smollm2, RunContext()))
        try:
            same = smollm2.token_log_probs(**batch)
        finally:
            smollm2.clear_hooks()
    torch.testing.assert_close(same, base, atol=1e-4, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["inlp", "leace", "rlace", "sentdebias"])
def test_representation_methods_fit_on_smollm2(name, smollm2, method_cache):
    options = {"inlp": {"n_per_class": 300}, "leace": {"n_per_class": 300}, "rlace": {"n_per_class": 300},
               "sentdebias": {"n_examples": 200}}[name]
    method = get_method(name)(**options)
    hook = method.fit(smollm2, _ctx(method_cache))  # the shared feature cache: one encoding for three methods
    assert isinstance(hook, AffineHook) and hook.dim == smollm2.hidden_size
    if name != "sentdebias":
        assert method.notes["probe_accuracy_after"] < method.notes["probe_accuracy_before"]
    if name == "inlp":
        assert method.notes["iterations"] == 10  # causal LMs: bias-bench's GPT-2 setting


def _grid(tmp_path, variants, method_options=None):
    from harness.config import parse_config

    return parse_config({
        "name": "pp", "models": ["zoo:bert-tiny"], "variants": variants, "seeds": [0],
        "benchmarks": [{"name": "seat", "options": {"tests": ["sent-weat6"], "n_permutations": 1000}},
                       {"name": "lm-quality", "options": {"n_sentences": 40, "resamples": 200}}],
        "results_dir": str(tmp_path / "runs"), "method_options": method_options or {}})


def test_selfdebias_runs_in_the_pipeline_and_seat_is_not_applicable(tmp_path, mirror):
    from harness.pipeline import run_experiment
    from harness.records import read_record

    summary = run_experiment(_grid(tmp_path, ["selfdebias"]), progress=False)
    records = {r.benchmark: r for r in map(read_record, summary.written)}
    assert records["seat"].status == "not_applicable" and records["seat"].scores == {}
    assert "only changes token predictions" in records["seat"].details["reason"]
    assert records["lm-quality"].status == "ok" and records["lm-quality"].scores["accuracy"].n == 40
    assert records["lm-quality"].variant_steps[0]["notes"]["prefix_tokens"][0] > 5


@pytest.mark.slow
def test_every_post_processing_method_writes_records_in_a_grid(tmp_path, mirror):
    from harness.pipeline import run_experiment
    from harness.records import read_record

    options = {"inlp": {"n_per_class": 300, "iterations": 10}, "leace": {"n_per_class": 300},
               "rlace": {"n_per_class": 300, "steps": 500}, "sentdebias": {"n_examples": 200}}
    variants = ["inlp", "sentdebias", "leace", "rlace", "selfdebias"]
    summary = run_experiment(_grid(tmp_path, variants, options), progress=False)
    records = [read_record(p) for p in summary.written]
    assert len(records) == 2 * len(variants)
    for record in records:
        expected = "not_applicable" if (record.variant, record.benchmark) == ("selfdebias", "seat") else "ok"
        assert record.status == expected, (record.variant, record.benchmark, record.details)
        assert record.variant_steps[0]["method"] == record.variant and record.protocol == "cpu"
    again = run_experiment(_grid(tmp_path, variants, options), progress=False, force=True)
    hits = {read_record(p).variant: read_record(p).variant_steps[0]["notes"].get("cache_hit") for p in again.written}
    assert all(hits[v] for v in ("inlp", "sentdebias", "leace", "rlace"))
