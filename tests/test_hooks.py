"""Hook contracts: affine hidden hooks commute with pooling; prediction hooks rewrite log-probs."""

import torch

from conftest import fp32_error_bound
from harness.hooks import AffineHook, linear_hooks


def _random_affine(dim: int, seed: int) -> AffineHook:
    gen = torch.Generator().manual_seed(seed)
    return AffineHook(torch.randn(dim, dim, generator=gen), torch.randn(dim, generator=gen))


def test_affine_hook_on_pooled_features_equals_pooling_hooked_states(bert_tiny):
    texts = ["The nurse said she was tired.", "He works as an engineer in a large city."]
    plain = bert_tiny.pooled(texts)
    hook = _random_affine(bert_tiny.hidden_size, 0)
    bert_tiny.add_hidden_hook(hook)
    try:
        hooked = bert_tiny.pooled(texts)
    finally:
        bert_tiny.clear_hooks()
    # the two orders round differently: H-term products and a mean over the T tokens, each side within the
    # fp32 bound of the exact value, on the scale of the summed terms |h|·|M|ᵀ + |b|
    terms = plain.abs() @ hook.matrix.abs().T + hook.bias.abs()
    tokens = bert_tiny.tokenize(texts)["input_ids"].shape[1]
    bound = 2 * fp32_error_bound(float(terms.max()), bert_tiny.hidden_size + tokens)
    torch.testing.assert_close(hook.apply_to_features(plain), hooked, atol=bound, rtol=0)


def test_composition_equals_applying_in_order():
    first, second = _random_affine(8, 1), _random_affine(8, 2)
    x = torch.randn(5, 8)
    # two chained 8-term sums either way, on the scale of the terms; both sides within the bound
    terms = (x.abs() @ first.matrix.abs().T + first.bias.abs()) @ second.matrix.abs().T + second.bias.abs()
    torch.testing.assert_close(first.then(second)(x), second(first(x)), rtol=0,
                               atol=2 * fp32_error_bound(float(terms.max()), 2 * 8))
    assert linear_hooks([first, second]) is not None
    assert linear_hooks([first, lambda h: h]) is None


def test_affine_hook_round_trips_through_disk(tmp_path):
    hook = _random_affine(6, 3)
    hook.save(tmp_path / "hook")
    loaded = AffineHook.load(tmp_path / "hook")
    torch.testing.assert_close(loaded.matrix, hook.matrix)
    torch.testing.assert_close(loaded.bias, hook.bias)


def test_prediction_hook_rewrites_token_and_target_log_probs(bert_tiny):
    batch = bert_tiny.tokenize(["Paris is the [MASK] of France."])
    positions = (torch.tensor([0]), torch.tensor([4]))
    targets = torch.tensor([2000])
    before = bert_tiny.target_log_probs(batch["input_ids"], batch["attention_mask"], positions, targets)

    def shift_to_uniform(lm, ids, mask, pos, log_probs):
        return torch.full_like(log_probs, -torch.log(torch.tensor(float(log_probs.shape[-1]))))

    bert_tiny.add_prediction_hook(shift_to_uniform)
    try:
        after = bert_tiny.target_log_probs(batch["input_ids"], batch["attention_mask"], positions, targets)
        full = bert_tiny.token_log_probs(batch["input_ids"], batch["attention_mask"])
    finally:
        bert_tiny.clear_hooks()
    uniform = -torch.log(torch.tensor(float(bert_tiny.vocab_size)))
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, uniform.reshape(1))
    assert full.shape == (*batch["input_ids"].shape, bert_tiny.vocab_size)
    torch.testing.assert_close(full[0, 0, 0], uniform)
