"""GRADIEND: gradients against independent computations, the encoder-decoder's training step, the data
builder, rewrites, and failure behaviour — on the real zoo models and the real corpus."""

from __future__ import annotations

import copy

import pytest
import torch

from conftest import EPS32, fp32_error_bound
from harness.errors import HarnessError
from methods.gradiend.gradients import GradientEngine, ParamMap, make_batch, select_parameters, target_token
from methods.gradiend.model import AdamW, Gradiend, Optimiser
from methods.gradiend.rewrite import rewrite

TEMPLATE = "Mary told the children that [TARGET] would read them a story."


@pytest.fixture(scope="module")
def bert_engine(bert_tiny):
    return GradientEngine(bert_tiny, select_parameters(bert_tiny))


def _masked_nll(model, tokenizer, text: str, word: str) -> torch.Tensor:
    """−log p(word | text with [MASK]) through the plain HF model and a full log-softmax (independent path)."""
    enc = tokenizer(text.replace("[TARGET]", tokenizer.mask_token), return_tensors="pt")
    logits = model(**enc).logits[0]
    position = (enc["input_ids"][0] == tokenizer.mask_token_id).nonzero().item()
    return -torch.log_softmax(logits[position], -1)[tokenizer.convert_tokens_to_ids(word)]


def _reference_gradients(lm, names, texts, factual, counterfactual) -> dict[str, torch.Tensor]:
    """Float64 batch-mean gradients on the flat selected weights, one plain HF forward per template."""
    model = copy.deepcopy(lm.model).double()
    params = dict(model.named_parameters())
    selected = [params[n] for n in names]

    def flat_grad(words):
        loss = torch.stack([_masked_nll(model, lm.tokenizer, t, w) for t, w in zip(texts, words)]).mean()
        return torch.cat([g.flatten() for g in torch.autograd.grad(loss, selected)])

    g_f, g_c = flat_grad(factual), flat_grad(counterfactual)
    return {"factual": g_f, "counterfactual": g_c, "diff": g_f - g_c}


def _gradient_bound(lm, reference: torch.Tensor) -> float:
    # the longest fp32 reduction behind every weight's gradient is the backward through the tied decoder,
    # ∂ℓ/∂h = Σ_v (p_v − y_v)·W_v over the whole vocabulary (30,522 terms; the layers' own sums are ≤ 512)
    return fp32_error_bound(float(reference.abs().max()), lm.model.config.vocab_size)


def test_gradients_match_independent_autograd_and_finite_differences(bert_tiny, bert_engine):
    batch = make_batch(bert_tiny, [TEMPLATE], ["she"], ["he"])
    grads = bert_engine.gradients(batch, ("factual", "diff", "counterfactual"))
    reference = _reference_gradients(bert_tiny, bert_engine.map.names, [TEMPLATE], ["she"], ["he"])
    name = "bert.encoder.layer.1.output.dense.weight"
    offset = bert_engine.map.offsets()[bert_engine.map.names.index(name)]
    block = slice(offset, offset + bert_engine.map.numels[bert_engine.map.names.index(name)])
    # fp32 engine against fp64 autograd: every weight, and one matrix on its own scale
    for key, ref in reference.items():
        torch.testing.assert_close(grads[key].double(), ref, rtol=0, atol=_gradient_bound(bert_tiny, ref))
        torch.testing.assert_close(grads[key][block].double(), ref[block], rtol=0,
                                   atol=_gradient_bound(bert_tiny, ref[block]))
    # central finite differences (float64) on the largest entries of the difference gradient: the error
    # h²/6·|ℓ‴| + u64·|ℓ|/h is < 1e-10 here for h = 1e-5 (measured), far inside the fp32 bound
    model = copy.deepcopy(bert_tiny.model).double()
    w = dict(model.named_parameters())[name].view(-1)
    bound = _gradient_bound(bert_tiny, reference["diff"][block])

    def loss_difference() -> float:
        return float(_masked_nll(model, bert_tiny.tokenizer, TEMPLATE, "she")
                     - _masked_nll(model, bert_tiny.tokenizer, TEMPLATE, "he"))

    with torch.no_grad():
        for i in reference["diff"][block].abs().topk(3).indices.tolist():
            h, keep = 1e-5, w[i].item()
            w[i] = keep + h
            up = loss_difference()
            w[i] = keep - h
            down = loss_difference()
            w[i] = keep
            assert abs((up - down) / (2 * h) - float(grads["diff"][offset + i])) < bound


MICRO_TEXTS = [TEMPLATE, "After the game [TARGET] went home.",
               "John said [TARGET] was tired of waiting for the bus today.",
               "[TARGET] laughed.", "When Anna arrived, [TARGET] sat down.", "Peter thinks [TARGET] is right.",
               "Lisa called because [TARGET] needed help with the long and difficult homework.", "Then [TARGET] left."]
MICRO_FACTUAL = ["she", "he", "he", "she", "she", "he", "she", "he"]
MICRO_COUNTER = ["he", "she", "she", "he", "he", "she", "he", "she"]


@pytest.fixture(scope="module")
def micro_reference(bert_tiny):
    names = select_parameters(bert_tiny).names
    return _reference_gradients(bert_tiny, names, MICRO_TEXTS, MICRO_FACTUAL, MICRO_COUNTER)


@pytest.mark.parametrize("pruned", [False, True])
def test_micro_batches_give_the_batch_mean_gradients(bert_tiny, micro_reference, pruned):
    """Slices of 3 rows (uneven: 8 = 3+3+2, different padded widths) and one whole-batch pass both give the
    float64 batch-mean gradients, up to fp32 rounding."""
    param_map = select_parameters(bert_tiny)
    if pruned:
        param_map.index = torch.arange(0, param_map.total, 7)
    kept = slice(None) if param_map.index is None else param_map.index
    whole = GradientEngine(bert_tiny, param_map)
    sliced = GradientEngine(bert_tiny, param_map, micro_batch=3)
    need = ("factual", "diff", "counterfactual")
    batch = make_batch(bert_tiny, MICRO_TEXTS, MICRO_FACTUAL, MICRO_COUNTER)
    expected = {k: v.clone() for k, v in whole.gradients(batch, need).items()}
    got = sliced.gradients(batch, need)
    for key in need:
        reference = micro_reference[key][kept]
        assert got[key].shape == expected[key].shape == reference.shape
        bound = _gradient_bound(bert_tiny, reference)
        torch.testing.assert_close(expected[key].double(), reference, rtol=0, atol=bound)
        torch.testing.assert_close(got[key].double(), reference, rtol=0, atol=bound)
    only_diff = sliced.gradients(batch, ("diff",))["diff"]
    reference = micro_reference["diff"][kept]
    torch.testing.assert_close(only_diff.double(), reference, rtol=0, atol=_gradient_bound(bert_tiny, reference))
    assert all(p.grad.data_ptr() == sliced.grad[o:o + 1].data_ptr()  # views point back at the flat gradient
               for p, o in zip(sliced.params, sliced.map.offsets()))


def test_descending_the_difference_gradient_moves_probability_to_the_factual_word(bert_tiny, bert_engine):
    """Sign: W − η·∇±W lowers ℓ_she − ℓ_he, i.e. raises p(she)/p(he) for the template."""
    batch = make_batch(bert_tiny, [TEMPLATE], ["she"], ["he"])
    diff = bert_engine.gradients(batch, ("diff",))["diff"]
    before_f, before_c = bert_engine.nll(batch)
    assert diff.norm() > 0
    changed = rewrite(bert_tiny, bert_engine.map, diff, alpha=-1e-2 / float(diff.norm()))
    probe = GradientEngine(changed, bert_engine.map)
    after_f, after_c = probe.nll(batch)
    assert float(after_f - after_c) < float(before_f - before_c)


def test_directional_encoding_equals_gradient_dot_product(bert_tiny, bert_engine):
    """The JVP per-example encoding equals W_e·∇ℓ_i computed with one backward per example."""
    texts = [TEMPLATE, "When John came home, [TARGET] was tired."]
    words = ["she", "he"]
    direction = torch.randn(bert_engine.map.dim, generator=torch.Generator().manual_seed(0))
    jvp = bert_engine.directional(make_batch(bert_tiny, texts, words, words[::-1]), direction)
    each = [bert_engine.gradients(make_batch(bert_tiny, [t], [w], [w]), ("factual",))["factual"] @ direction
            for t, w in zip(texts, words)]
    torch.testing.assert_close(jvp, torch.stack(each), rtol=1e-3, atol=1e-4)


def test_causal_target_is_the_leading_space_token_after_the_cut(smollm2):
    batch = make_batch(smollm2, ["Yesterday Mary said that [TARGET] would come."], ["she"], ["he"])
    ids = batch.input_ids[0][batch.attention_mask[0].bool()].tolist()
    assert smollm2.tokenizer.decode(ids).strip() == "Yesterday Mary said that"
    assert batch.cols.tolist() == [len(ids) - 1]
    assert batch.factual.item() == smollm2.token_ids([" she"], add_special_tokens=False)[0][0]
    assert batch.factual.item() != smollm2.token_ids(["she"], add_special_tokens=False)[0][0]
    assert target_token(smollm2, "He", after_text=False) == smollm2.token_ids(["He"], add_special_tokens=False)[0][0]


# -- encoder-decoder ------------------------------------------------------------------------------
def test_hand_written_step_equals_torch_adamw():
    dim, seeds, lr, steps = 50, [0, 1], 1e-2, 5
    model = Gradiend.init(dim, seeds)
    params = [t.double().requires_grad_(True) for t in (model.w_e, model.b_e, model.w_d, model.b_d)]  # fp64 reference
    torch_opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-2)
    ours = Optimiser(model, AdamW(lr=lr, weight_decay=1e-2))
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x, t = torch.randn(dim, generator=gen), torch.randn(dim, generator=gen)
        w_e, b_e, w_d, b_d = params
        h = torch.tanh(w_e @ x.double() + b_e)
        loss = ((h[:, None] * w_d + b_d - t.double()) ** 2).mean(1)
        torch_opt.zero_grad()
        loss.sum().backward()
        torch_opt.step()
        ours_loss = ours.step(x, t)
        # fp32 loss: the encoder's dim-term product, then a mean of dim squared errors on the loss's scale
        torch.testing.assert_close(ours_loss.double(), loss.detach(), rtol=0,
                                   atol=fp32_error_bound(float(loss.detach().abs().max()), 2 * dim))
    for mine, ref in zip((model.w_e, model.b_e, model.w_d, model.b_d), params):
        # per step: the update lr·m̂/(√v̂ + ε), |m̂/√v̂| ≲ 1, from fp32 gradients (dim-term sums), and the
        # weight's own rounding (eps32·|w|) — a missed bias correction or decay term moves it ≥ 1e-5
        bound = steps * (EPS32 * float(ref.detach().abs().max()) + lr * fp32_error_bound(1.0, dim))
        torch.testing.assert_close(mine.double(), ref.detach(), rtol=0, atol=bound)


def test_encoder_learns_a_separable_synthetic_feature_and_normalises_its_sign():
    from methods.gradiend.evaluation import pearson

    dim, gen = 400, torch.Generator().manual_seed(0)
    u, v = torch.randn(dim, generator=gen), torch.randn(dim, generator=gen)

    def sample(label):
        return label * u + 0.3 * torch.randn(dim, generator=gen), label * v

    model = Gradiend.init(dim, [0, 1, 2])
    opt = Optimiser(model, AdamW(lr=1e-3))
    for step in range(300):
        x, t = sample(1.0 if step % 2 == 0 else -1.0)
        opt.step(x, t)
    labels = torch.tensor([1.0, -1.0] * 50)
    h = model.encode(torch.stack([sample(lab)[0] for lab in labels]))  # [100, 3]
    for row in range(3):
        assert abs(pearson(h[:, row], labels)) > 0.99
    flip = h[labels > 0].mean(0) < h[labels < 0].mean(0)
    decoded = model.decode(0.7, 0)
    model.flip_(flip)
    h2 = model.encode(torch.stack([u]))[0]
    assert (h2 > 0).all()  # the first class encodes positive after normalisation
    torch.testing.assert_close(model.decode(-0.7 if flip[0] else 0.7, 0), decoded)


def test_diverging_training_stops_with_a_clear_error():
    model = Gradiend.init(10, [0])
    opt = Optimiser(model, AdamW(lr=1e-3))
    with pytest.raises(HarnessError, match="diverged at step 1"):
        opt.step(torch.randn(10), torch.full((10,), float("nan")))


def test_checkpoint_round_trip_and_corruption(tmp_path):
    model = Gradiend.init(20, [0, 1])
    model.save(tmp_path / "g.safetensors", {"index": torch.arange(5)})
    loaded, extra = Gradiend.load(tmp_path / "g.safetensors")
    torch.testing.assert_close(loaded.w_d, model.w_d)
    assert extra["index"].tolist() == list(range(5))
    raw = bytearray((tmp_path / "g.safetensors").read_bytes())
    raw[-3] ^= 0xFF
    (tmp_path / "g.safetensors").write_bytes(bytes(raw))
    with pytest.raises(HarnessError, match="corrupt.*delete"):
        Gradiend.load(tmp_path / "g.safetensors")


# -- rewrite --------------------------------------------------------------------------------------
def test_rewrite_alpha_zero_is_identical_and_alpha_changes_exactly_the_mapped_weights(bert_tiny, tmp_path):
    pm = select_parameters(bert_tiny, include=["*.layer.1.*"])
    pm.index = torch.arange(0, pm.total, 7)
    delta = torch.linspace(0.1, 1, pm.dim) * torch.tensor([1.0, -1.0, 0.0, 1.0]).repeat(pm.dim // 4 + 1)[:pm.dim]
    same = rewrite(bert_tiny, pm, delta, alpha=0.0)
    for (n, a), b in zip(bert_tiny.model.state_dict().items(), same.model.state_dict().values()):
        assert torch.equal(a, b), n
    changed = rewrite(bert_tiny, pm, delta, alpha=0.5)
    before = dict(bert_tiny.model.named_parameters())
    after = dict(changed.model.named_parameters())
    flat_before = torch.cat([before[n].detach().flatten() for n in pm.names])
    flat_after = torch.cat([after[n].detach().flatten() for n in pm.names])
    moved = (flat_after != flat_before).nonzero().squeeze(1)
    expected = pm.index[delta != 0]
    assert torch.equal(moved, expected)
    # w + α·δ rounds once to fp32 and the difference once more: ≤ u each on the scale of the new weights
    torch.testing.assert_close(flat_after[pm.index] - flat_before[pm.index], 0.5 * delta, rtol=0,
                               atol=EPS32 * float(flat_after[pm.index].abs().max()))
    for n in before:
        if n not in pm.names:
            assert torch.equal(before[n], after[n]), n
    changed.save_pretrained(tmp_path / "rewritten")
    from harness.models import load_model

    reloaded = load_model(str(tmp_path / "rewritten"))
    for n, p in reloaded.model.named_parameters():
        torch.testing.assert_close(p, after[n], rtol=0, atol=0)


def test_rewrite_rejects_a_mismatched_update(bert_tiny):
    pm = ParamMap(["bert.encoder.layer.0.output.dense.bias"], [(128,)])
    with pytest.raises(HarnessError, match="parameter map"):
        rewrite(bert_tiny, pm, torch.zeros(5), 1.0)


# -- adapters and comparison ----------------------------------------------------------------------
def test_adapters_are_registered_and_validate_options():
    from harness.api import RunContext
    from harness.registry import get_method

    for name, metric in (("gradiend", "bpi"), ("gradiend-fpi", "fpi"), ("gradiend-mpi", "mpi")):
        cls = get_method(name)
        assert cls.kind == "weight" and cls.metric == metric
    with pytest.raises(HarnessError, match="no option"):
        get_method("gradiend")(steps=3)
    with pytest.raises(HarnessError, match="rule"):
        get_method("gradiend")(rule="best").settings(RunContext())
    settings = get_method("gradiend")(max_steps=7).settings(RunContext(protocol="probe", seed=3))
    assert (settings.protocol, settings.seed, settings.max_steps) == ("cpu", 3, 7)


def test_top_k_overlap_identifies_weights_by_name_across_parameter_maps():
    from methods.gradiend.comparison import overlap_matrix, top_k_keys

    full = ParamMap(["a", "b"], [(4,), (6,)])
    pruned = ParamMap(["a", "b"], [(4,), (6,)], index=torch.tensor([1, 5, 9]))
    g_full, g_pruned = Gradiend.init(10, [0]), Gradiend.init(3, [0])
    g_full.w_d[0] = torch.tensor([0, 9, 1, 0, 0, 8, 0, 0, 0, 0.0])  # top-3: a[1], b[1], a[2]
    g_pruned.w_d[0] = torch.tensor([5.0, -7.0, 0.1])  # positions 1, 5, 9 -> top-2: b[1], a[1]
    assert top_k_keys(g_full, full, 2) == {("a", 1), ("b", 1)}
    assert top_k_keys(g_pruned, pruned, 2) == {("a", 1), ("b", 1)}
    matrix = overlap_matrix([(g_full, full), (g_pruned, pruned)], 3)
    assert matrix[0, 1] == pytest.approx(2 / 3) and matrix[0, 0] == 1.0
    with pytest.raises(HarnessError, match="top-k"):
        top_k_keys(g_pruned, pruned, 4)
