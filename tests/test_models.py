"""Model catalog and interface on the real zoo models (offline, from PyPI wheels)."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import forward_chain_length, fp32_error_bound, log_prob_bound
from harness.errors import HarnessError
from harness.models import load_model, model_catalog

SENTENCES = ["The nurse said that she would come back tomorrow.", "Hi.", "A man walked into the old library."]


def test_zoo_lists_both_models():
    specs = {e.spec for e in model_catalog().zoo.values()}
    assert {"zoo:bert-tiny", "zoo:smollm2-135m"} <= specs


def test_kinds_and_sizes(bert_tiny, smollm2):
    assert bert_tiny.kind == "masked" and smollm2.kind == "causal"
    assert 4.0e6 < sum(p.numel() for p in bert_tiny.model.parameters()) < 5.0e6
    assert 130e6 < sum(p.numel() for p in smollm2.model.parameters()) < 140e6
    assert bert_tiny.origin["type"] == "zoo" and "wheel_sha256" in bert_tiny.origin


def test_log_probs_sum_to_one(any_lm):
    batch = any_lm.tokenize(SENTENCES)
    with torch.no_grad():
        logp = any_lm.token_log_probs(**batch)
    assert logp.shape[-1] == any_lm.vocab_size
    kept = batch["attention_mask"].bool()
    total = logp.exp().sum(-1)[kept]
    # V rounded terms; each p carries the relative error of its log-probability, on the scale of |log p|
    bound = fp32_error_bound(float(logp[kept].abs().max()), any_lm.vocab_size)
    torch.testing.assert_close(total, torch.ones_like(total), rtol=0, atol=bound)


def test_log_probs_at_positions_equal_full_computation(any_lm):
    batch = any_lm.tokenize(SENTENCES)
    rows, cols = torch.tensor([0, 1, 2]), torch.tensor([2, 1, 3])
    with torch.no_grad():
        full = any_lm.token_log_probs(**batch)
        picked = any_lm.token_log_probs(**batch, positions=(rows, cols))
        logits = any_lm.logits(**batch, positions=(rows, cols))
    # the head runs on 3 rows instead of all: other kernels, each side within the fp32 log-prob bound
    torch.testing.assert_close(full[rows, cols], picked, rtol=0, atol=2 * log_prob_bound(logits, any_lm.model.config))


def test_masked_lm_predicts_from_its_real_head(bert_tiny, smollm2):
    batch = bert_tiny.tokenize(["The man worked as a [MASK]."])
    with torch.no_grad():
        ours = bert_tiny.logits(**batch)
        reference = bert_tiny.model(**batch).logits
    bound = 2 * fp32_error_bound(float(reference.abs().max()), forward_chain_length(bert_tiny.model.config))
    torch.testing.assert_close(ours, reference, rtol=0, atol=bound)
    batch = smollm2.tokenize(["The woman worked as a"], add_special_tokens=False)
    with torch.no_grad():
        top = smollm2.token_log_probs(**batch)[0, -1].argmax()
    assert smollm2.tokenizer.decode(top).strip() == "nurse"


def test_pooled_ignores_padding(any_lm):
    alone = any_lm.pooled([SENTENCES[1]])
    padded = any_lm.pooled(SENTENCES)  # "Hi." is padded to the longest sentence here
    with torch.no_grad():
        batch = any_lm.tokenize([SENTENCES[1]])
        hidden = any_lm.final_hidden_states(**batch)[0]
    # a forward of another shape: both within the fp32 bound of the exact states, on the states' scale
    chain = forward_chain_length(any_lm.model.config)
    torch.testing.assert_close(alone[0], padded[1], rtol=0, atol=2 * fp32_error_bound(float(hidden.abs().max()), chain))
    torch.testing.assert_close(hidden.mean(0), alone[0], rtol=0,  # the same states, a mean over T tokens
                               atol=2 * fp32_error_bound(float(hidden.abs().max()), hidden.shape[0]))
    normed = any_lm.pooled(SENTENCES, normalize=True)
    torch.testing.assert_close(normed.norm(dim=-1), torch.ones(3), rtol=0,
                               atol=fp32_error_bound(1.0, 2 * any_lm.hidden_size))  # two H-term sums of unit scale


def test_hook_applies_to_pooled_and_logits_exactly(any_lm):
    torch.manual_seed(0)
    direction = torch.nn.functional.normalize(torch.randn(any_lm.hidden_size), dim=0)
    projection = torch.eye(any_lm.hidden_size) - torch.outer(direction, direction)
    before = any_lm.pooled(SENTENCES)
    batch = any_lm.tokenize(SENTENCES)
    with torch.no_grad():
        hidden = any_lm.final_hidden_states(**batch)
        expected_logits = any_lm._head(hidden @ projection)
    hook = lambda h: h @ projection  # noqa: E731
    any_lm.add_hidden_hook(hook)
    after = any_lm.pooled(SENTENCES)
    with torch.no_grad():
        logits = any_lm.logits(**batch)
    # projecting each token then pooling vs pooling then projecting: H-term products and a T-token mean, on
    # the scale of the summed terms |h|·|P|; both sides within the bound
    chain = any_lm.hidden_size + batch["input_ids"].shape[1]
    bound = 2 * fp32_error_bound(float((before.abs() @ projection.abs()).max()), chain)
    torch.testing.assert_close(after, before @ projection, rtol=0, atol=bound)
    torch.testing.assert_close(after @ direction, torch.zeros(3), rtol=0,  # P·v = 0 up to P's own rounding
                               atol=bound + fp32_error_bound(float(after.abs().max()), 2 * any_lm.hidden_size))
    torch.testing.assert_close(logits, expected_logits, rtol=0,  # the same states and head: other batch shapes
                               atol=2 * fp32_error_bound(float(expected_logits.abs().max()), any_lm.hidden_size))
    any_lm.remove_hidden_hook(hook)
    assert torch.allclose(any_lm.pooled(SENTENCES), before, atol=1e-6)


def test_backbone_parameters_exclude_heads_and_get_real_gradients(any_lm):
    params = any_lm.backbone_parameters()
    prefix = any_lm.model.base_model_prefix
    assert params and all(n.startswith(prefix + ".") and "pooler" not in n for n in params)
    assert not any(n.startswith(("cls.", "lm_head.")) for n in params)
    layer_only = any_lm.backbone_parameters(include=["*layer*.0.*"], exclude=["*norm*", "*LayerNorm*"])
    assert layer_only and set(layer_only) < set(params)
    any_lm.model.zero_grad()
    batch = any_lm.tokenize(["She said that he would come."])
    logp = any_lm.token_log_probs(**batch)
    (-logp[0, 2, batch["input_ids"][0, 3]]).backward()
    grads = {n: p.grad for n, p in params.items() if p.grad is not None}
    assert len(grads) > len(params) // 2
    assert all(torch.isfinite(g).all() for g in grads.values())
    assert sum(g.abs().sum() for g in grads.values()) > 0
    any_lm.model.zero_grad()


def test_clone_owns_its_weights(bert_tiny):
    copy = bert_tiny.clone()
    name, param = next(iter(copy.backbone_parameters().items()))
    with torch.no_grad():
        param.add_(1.0)
    assert not torch.equal(param, bert_tiny.backbone_parameters()[name])
    copy.add_hidden_hook(lambda h: h * 0)
    assert bert_tiny.pooled(["hello there"]).abs().sum() > 0


def test_dropped_model_frees_its_weights_without_the_cycle_collector(bert_tiny):
    import gc
    import weakref

    copy = bert_tiny.clone()
    copy.add_hidden_hook(lambda h: h * 0)
    assert copy.pooled(["hello there"]).abs().sum() == 0  # the hook still reaches its model
    weights = weakref.ref(copy.model)
    gc.disable()
    try:
        del copy
        assert weights() is None  # freed by reference counting: no model → hook → model cycle
    finally:
        gc.enable()


def test_save_and_reload_round_trip(bert_tiny, tmp_path):
    bert_tiny.save_pretrained(tmp_path / "saved")
    again = load_model(str(tmp_path / "saved"))
    assert again.kind == "masked" and again.origin["type"] == "local"
    assert torch.allclose(again.pooled(SENTENCES), bert_tiny.pooled(SENTENCES), atol=1e-6)


def test_gguf_cache_is_plain_safetensors(smollm2):
    folder = model_catalog().cache_path(model_catalog().entry("zoo:smollm2-135m"))
    assert (folder / "model.safetensors").is_file() and not list(folder.glob("*.gguf"))
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())


def test_corrupt_cache_entry_is_detected_and_rebuilt(private_cache):
    catalog = model_catalog()
    folder = catalog.fetch("zoo:bert-tiny")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    assert catalog.cached(catalog.entry("zoo:bert-tiny")) is None
    lm = load_model("zoo:bert-tiny")
    assert lm.pooled(["hello"]).shape == (1, 128)


@pytest.mark.parametrize("spec, message", [
    ("zoo:nope", "unknown zoo model 'zoo:nope'"),
    ("./no/such/dir", "not a zoo name, a model directory or a hub id"),
    ("bert-base-uncased", "would need the Hugging Face hub"),
])
def test_bad_model_specs(spec, message):
    with pytest.raises(HarnessError, match=message):
        load_model(spec)


def test_model_directory_without_config(tmp_path):
    with pytest.raises(HarnessError, match="has no config.json"):
        load_model(str(tmp_path))


def test_corrupt_local_checkpoint_is_one_line_error(bert_tiny, tmp_path):
    bert_tiny.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(HarnessError, match="could not load model"):
        load_model(str(tmp_path / "m"))
