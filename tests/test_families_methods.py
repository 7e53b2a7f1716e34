"""What each method does to each family's tiny model (tests/tiny_families.py), on the steps that the family grids
of test_families.py fitted (same options and cache, so nothing is fitted twice): the GRADIEND rewrite and its
JVP encoder, the MLM/CLM training of CDA through the family's whole head, Dropout's own fields per family, the
projection hooks at the family's hook point, and where SelfDebias puts its prefix."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from harness.attribute_data import attribute_sentences, bias_bench_split
from harness.hooks import AffineHook
from harness.models import load_model
from harness.models.tiny import FAMILIES
from harness.pretraining import set_dropout
from methods.selfdebias import DEBIASING_PREFIXES, insert_prefix
from tiny_families import VARIANTS

pytestmark = pytest.mark.usefixtures("one_thread")

TEMPLATE = "Mary told the children that [TARGET] would read them a story."

# (hidden fields, attention fields) of each family's config, and its nn.Dropout modules on attention probabilities
DROPOUT_FIELDS = {
    "bert": (("hidden_dropout_prob",), ("attention_probs_dropout_prob",), ".attention.self.dropout"),
    "roberta": (("hidden_dropout_prob",), ("attention_probs_dropout_prob",), ".attention.self.dropout"),
    "distilbert": (("dropout",), ("attention_dropout",), ".attention.dropout"),
    "gpt2": (("resid_pdrop", "embd_pdrop"), ("attn_pdrop",), ".attn.attn_dropout"),
    "llama": ((), ("attention_dropout",), None),  # no hidden dropout in the architecture
}
HEAD_NORM = {"bert": "cls.predictions.transform.LayerNorm.weight", "roberta": "lm_head.layer_norm.weight",
             "distilbert": "vocab_layer_norm.weight"}


@pytest.fixture
def family_grid(tiny_families, mirror):
    """Make sure the family's grid (and so every fitted step) exists before a test reuses its cache."""
    def run(family: str):
        return tiny_families.grid(family, VARIANTS, ["lm-quality"])
    return run


@pytest.mark.parametrize("family", FAMILIES)
def test_gradiend_rewrite_saved_with_save_pretrained_reloads_with_the_same_outputs(family, tiny_families,
                                                                                   family_grid, tmp_path):
    from harness.registry import get_method
    from methods.gradiend.adapter import shared_folder
    from methods.gradiend.rewrite import rewrite
    from methods.gradiend.workflow import fit

    family_grid(family)
    lm, ctx = tiny_families.lm(family), tiny_families.context(family)
    settings = get_method("gradiend")(**tiny_families.method_options()["gradiend"]).settings(ctx)
    artefacts = fit(lm, settings, shared_folder(lm, settings, ctx))
    assert artefacts.cache_hit
    changed = rewrite(lm, artefacts.param_map, artefacts.model.decode(1.0, 0), alpha=1.0)
    moved = [n for n, p in changed.model.named_parameters() if not torch.equal(p, dict(lm.model.named_parameters())[n])]
    assert moved and set(moved) <= set(lm.backbone_parameters())
    changed.save_pretrained(tmp_path / "rewritten")
    reloaded = load_model(str(tmp_path / "rewritten"))
    batch = changed.tokenize(["The nurse said she would come.", "He is a doctor."])
    with torch.no_grad():
        assert torch.equal(reloaded.model(**batch).logits, changed.model(**batch).logits)
        assert not torch.equal(lm.model(**batch).logits, changed.model(**batch).logits)


@pytest.mark.parametrize("family", FAMILIES)
def test_gradiend_jvp_encoding_equals_the_gradient_dot_product(family, tiny_families, mirror):
    """The encoder's forward-mode pass (body, then the family's head at the target) equals W_e·∇ℓ_i from one
    backward per example: the head in the JVP is the one the loss uses."""
    from methods.gradiend.gradients import GradientEngine, make_batch, select_parameters

    lm = tiny_families.lm(family)
    engine = GradientEngine(lm, select_parameters(lm))
    texts, words = [TEMPLATE, "When John came home, [TARGET] was tired."], ["she", "he"]
    direction = torch.randn(engine.map.dim, generator=torch.Generator().manual_seed(0))
    jvp = engine.directional(make_batch(lm, texts, words, words[::-1]), direction)
    each = torch.stack([engine.gradients(make_batch(lm, [t], [w], [w]), ("factual",))["factual"] @ direction
                        for t, w in zip(texts, words)])
    assert each.abs().min() > 1e-3  # far above the tolerance: a wrong head would not pass by being small
    torch.testing.assert_close(jvp, each, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_cda_trains_with_the_familys_own_objective_through_its_whole_head(family, tiny_families, family_grid):
    family_grid(family)
    base = tiny_families.lm(family)
    trained, log = tiny_families.apply(family, "cda")
    report = log[0]["notes"]["training"]
    assert report["objective"] == ("clm" if base.kind == "causal" else "mlm")
    assert np.isfinite(report["initial"]["loss"]) and np.isfinite(report["final"]["loss"])
    before, after = dict(base.model.named_parameters()), dict(trained.model.named_parameters())
    first = next(iter(base.backbone_parameters()))  # the word embeddings
    assert not torch.equal(before[first], after[first])
    if family in HEAD_NORM:  # a LayerNorm weight has no weight decay: it moves only if the loss reaches it
        assert not torch.equal(before[HEAD_NORM[family]], after[HEAD_NORM[family]])


@pytest.mark.parametrize("family", FAMILIES)
def test_dropout_sets_the_familys_own_fields_and_modules(family, tiny_families, family_grid):
    hidden_fields, attention_fields, attention_module = DROPOUT_FIELDS[family]
    lm = tiny_families.lm(family)
    report = set_dropout(lm.model, {"hidden": 0.25, "attention": 0.05})
    assert report["changed"] == {**{f: 0.25 for f in hidden_fields}, **{f: 0.05 for f in attention_fields}}
    assert report["not_in_architecture"] == ([] if hidden_fields else ["hidden"])
    modules = {n: m.p for n, m in lm.model.named_modules() if isinstance(m, nn.Dropout)}
    attention = {n for n in modules if attention_module and n.endswith(attention_module)}
    assert len(attention) == (2 if attention_module else 0)  # one per layer
    assert {modules[n] for n in attention} <= {0.05} and {p for n, p in modules.items() if n not in attention} <= {0.25}
    if family == "llama":  # Llama's attention reads the rate from a float attribute of each attention module
        rates = [m.attention_dropout for m in lm.model.modules() if isinstance(getattr(m, "attention_dropout", None),
                                                                                float)]
        assert rates == [0.05, 0.05]
    # through the pipeline's Dropout step: the trained model keeps the rates in its config
    family_grid(family)
    trained, log = tiny_families.apply(family, "dropout")
    assert log[0]["notes"]["training"]["dropout"]["changed"] == report["changed"]
    assert {f: getattr(trained.model.config, f) for f in hidden_fields + attention_fields} == report["changed"]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("method", ["inlp", "sentdebias", "leace", "rlace"])
def test_projection_hook_changes_representations_as_it_should(family, method, tiny_families, family_grid):
    family_grid(family)
    lm, log = tiny_families.apply(family, method)
    (hook,) = lm.hooks
    assert isinstance(hook, AffineHook) and hook.dim == lm.hidden_size
    texts = ["The nurse said she would come.", "He is an engineer at the plant."]
    batch = lm.tokenize(texts)
    with torch.no_grad():
        hooked_logits = lm.logits(**batch)
        lm.hooks.clear()
        plain_hidden = lm.final_hidden_states(**batch)
        plain_pooled = lm.pooled(texts)
        lm.hooks.append(hook)
        # the family's LM head sees the hooked final hidden state, and pooling commutes with the affine hook
        torch.testing.assert_close(hooked_logits, lm.head(hook(plain_hidden)), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(lm.pooled(texts), hook.apply_to_features(plain_pooled), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(lm.pooled(texts), plain_pooled)
    matrix = hook.matrix.double()
    eye = torch.eye(hook.dim, dtype=torch.float64)
    if method == "leace":  # the erased attribute features have equal class means (on the rows it was fitted on)
        data = attribute_sentences("gender", tiny_families.method_options()["leace"]["n_per_class"], 0)
        train, dev, _ = bias_bench_split(len(data.texts), 0)
        rows = np.concatenate([train, dev])
        erased = lm.pooled([data.texts[i] for i in rows]).double()
        labels = torch.tensor(data.labels)[rows]
        means = torch.stack([erased[labels == c].mean(0) for c in range(len(data.class_names))])
        assert (means - means.mean(0)).abs().max() < 1e-4 * erased.std(0).max()
    else:  # an orthogonal projection: the removed directions are gone from every hooked representation
        torch.testing.assert_close(matrix, matrix.T, rtol=0, atol=1e-6)
        torch.testing.assert_close(matrix @ matrix, matrix, rtol=0, atol=1e-5)
        removed = round(float(torch.trace(eye - matrix)))
        assert removed >= 1 and removed == {"sentdebias": 1, "rlace": 1}.get(method, removed)
        assert (lm.pooled(texts).double() @ (eye - matrix)).abs().max() < 1e-5


@pytest.mark.parametrize("family", FAMILIES)
def test_selfdebias_prefix_lands_after_the_familys_start_token(family, tiny_families, mirror):
    """[CLS]/<s>/<|begin_of_text|> stay first and the prefix follows; GPT-2's texts have no start token, so the
    prefix goes in front — except in the row of the start token alone (a causal LM's first-token score). The
    scored position moves to the same token (masked LMs) or to the token that predicts the same next token."""
    lm = tiny_families.lm(family)
    prefix = lm.token_ids([DEBIASING_PREFIXES["gender"]], add_special_tokens=False)[0]
    batch = lm.tokenize(["He is a nurse."])
    ids, mask = batch["input_ids"], batch["attention_mask"]
    position = (torch.tensor([0]), torch.tensor([1]))
    new_ids, new_mask, (_, cols) = insert_prefix(lm, ids, mask, position, prefix)
    k = len(prefix)
    start = 1 if family != "gpt2" else 0
    assert new_ids[0, :start].tolist() == ids[0, :start].tolist()
    assert new_ids[0, start:start + k].tolist() == prefix and new_ids[0, start + k:].tolist() == ids[0, start:].tolist()
    assert new_mask.sum() == mask.sum() + k and cols.item() == 1 + k
    assert new_ids[0, cols.item()] == ids[0, 1]
    if lm.kind == "causal":  # the first-token row: [start] alone, the prefix after it
        alone = torch.tensor([[lm.start_token_id]])
        first, _, (_, cols) = insert_prefix(lm, alone, torch.ones_like(alone), (torch.tensor([0]), torch.tensor([0])),
                                            prefix)
        assert first[0].tolist() == [lm.start_token_id, *prefix] and cols.item() == k


@pytest.mark.parametrize("family", FAMILIES)
def test_selfdebias_hook_rewrites_normalised_predictions(family, tiny_families, family_grid):
    family_grid(family)
    lm, log = tiny_families.apply(family, "selfdebias")
    assert lm.hooks == [] and len(lm.prediction_hooks) == 1 and log[0]["acts_on"] == "predictions"
    batch = lm.tokenize(["The nurse said she would come."])
    with torch.no_grad():
        debiased = lm.token_log_probs(**batch)
        hook = lm.prediction_hooks.pop()
        plain = lm.token_log_probs(**batch)
    torch.testing.assert_close(torch.logsumexp(debiased, -1), torch.zeros(debiased.shape[:2]), rtol=0, atol=1e-5)
    assert not torch.allclose(debiased, plain)
    lm.prediction_hooks.append(hook)


def test_gradiend_names_a_split_that_the_filter_left_empty(tiny_families, mirror):
    """A random model keeps templates by chance (RoBERTa's tiny model keeps no validation template): the run
    stops with one line naming the model, the split and the counts, before training."""
    from harness.errors import HarnessError
    from methods.gradiend.data import build_data
    from methods.gradiend.workflow import check_splits

    lm = tiny_families.lm("roberta")
    data = build_data("gender", 0, n_neutral=50, max_templates=400)
    data.templates["kept"] = data.templates["split"] != "val"
    data.info["filter"] = {"kept": int(data.templates["kept"].sum()), "total": len(data.templates)}
    with pytest.raises(HarnessError, match=r"no val template is left after the base-model filter \(kept \d+ of 400\)"):
        check_splits(lm, data)
    data.templates["kept"] = True
    check_splits(lm, data)
