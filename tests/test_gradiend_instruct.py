"""GRADIEND on an instruction-tuned causal LM: its texts are wrapped in the reference's Llama-3 chat prompt
(aieng-lab/gradiend-bias ``gradiend/model.py``, ``InstructTokenizerWrapper``; :mod:`methods.gradiend.instruct`),
checked on a tiny random-weight Llama whose tokenizer gets Llama-3.2-Instruct's header tokens and a chat template;
every model without one reads exactly what it read before."""

from __future__ import annotations

import pytest
import torch

from conftest import require_mirror
from methods.gradiend.adapter import cache_payload
from methods.gradiend.evaluation import DecoderGrid
from methods.gradiend.gradients import GradientEngine, causal_inputs, make_batch, select_parameters, target_token
from methods.gradiend.instruct import NAME_PROMPT, chat_format
from methods.gradiend.name_prediction import NamePredictionObjective, NameWeights, prompt_text
from methods.gradiend.workflow import Settings

HEADERS = ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
# A Llama-3-style template (the header tokens of Llama-3.2-Instruct's, without its date preamble): the wrapping
# must not depend on what the template renders, only on there being one.
LLAMA3_TEMPLATE = ("{{ bos_token }}{% for message in messages %}<|start_header_id|>{{ message['role'] }}"
                   "<|end_header_id|>\n\n{{ message['content'] | trim }}<|eot_id|>{% endfor %}"
                   "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}")
TEXTS = ["Yesterday Mary said that [TARGET] would come.", "[TARGET] was late again."]
FACTUAL, COUNTER = ["she", "She"], ["he", "He"]
# aieng-lab/gradiend-bias gradiend/model.py: the string _wrap_prompt builds for TEXTS[0] cut before the slot
# (setups/gender/en/__init__.py keeps the cut's trailing space) under the default system_prompt
REFERENCE_PROMPT = (
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n"
    "\n    You are a language model that completes sentences. Predict the next word that naturally follows the given "
    "text. \n    Return only that word — no punctuation, no quotes, and no explanations.\n    "
    "\n<|eot_id|><|start_header_id|>user<|end_header_id|>\nYesterday Mary said that \n<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n")


def _variant(base, folder, *, template: bool):
    """The tiny Llama with Llama-3.2-Instruct's header tokens and end-of-turn EOS, optionally a chat template."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer, model = AutoTokenizer.from_pretrained(base), AutoModelForCausalLM.from_pretrained(base)
    tokenizer.add_special_tokens({"additional_special_tokens": HEADERS})
    tokenizer.eos_token = "<|eot_id|>"  # as Llama-3.2-3B-Instruct's tokenizer_config
    if template:
        tokenizer.chat_template = LLAMA3_TEMPLATE
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    tokenizer.save_pretrained(folder)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def llamas(tmp_path_factory):
    """base: the tiny Llama as built (no template); instruct: named Instruct with a Llama-3 template;
    untemplated: named Instruct without a template; templated-base: a template but no Instruct in the name."""
    require_mirror()
    from harness.data.corpus import load_documents
    from harness.models import load_model
    from harness.models.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("chat")
    base = build_tiny_model("llama", root / "tiny-llama", load_documents()[:3000])
    folders = {"base": base, "instruct": _variant(base, root / "tiny-Llama-3.2-Instruct", template=True),
               "untemplated": _variant(base, root / "tiny-llama-instruct-untemplated", template=False),
               "templated-base": _variant(base, root / "tiny-llama-chat", template=True)}
    return {key: load_model(str(folder)) for key, folder in folders.items()}


def _rows(batch):
    return [row[mask.bool()].tolist() for row, mask in zip(batch.input_ids, batch.attention_mask)]


def test_the_reference_rule_decides_and_says_why(llamas, bert_tiny, smollm2):
    assert chat_format(llamas["instruct"]).used
    for key, why in (("base", "does not contain 'instruct'"), ("templated-base", "does not contain 'instruct'"),
                     ("untemplated", "has no chat template")):
        decision = chat_format(llamas[key])
        assert not decision.used and why in decision.reason
    # SmolLM2 is an Instruct model with a (ChatML) template, but its spec has no "instruct": read as before
    assert smollm2.tokenizer.chat_template and not chat_format(smollm2).used
    assert not chat_format(bert_tiny).used and "masked" in chat_format(bert_tiny).reason


def test_the_batch_is_the_reference_prompt_read_right_before_the_bare_target(llamas):
    lm = llamas["instruct"]
    inputs, chat = causal_inputs(lm, TEXTS)
    assert chat and inputs[0] == REFERENCE_PROMPT
    batch = make_batch(lm, TEXTS, FACTUAL, COUNTER)
    rows = _rows(batch)
    assert rows == lm.token_ids(inputs, add_special_tokens=False)
    tokens = lm.tokenizer.convert_ids_to_tokens(rows[0])
    assert tokens[0] == "<|begin_of_text|>" and tokens.count("<|begin_of_text|>") == 1
    assert tokens[-2:] == ["<|end_header_id|>", "Ċ"]  # the assistant header's newline is read
    assert batch.cols.tolist() == [len(r) - 1 for r in rows]
    # the target is the bare word, and it is exactly the token that follows the read position in the answer
    for i, (word, other) in enumerate(zip(FACTUAL, COUNTER)):
        assert batch.factual[i].item() == target_token(lm, word, after_text=False)
        assert batch.counterfactual[i].item() == target_token(lm, other, after_text=False)
        answered = lm.token_ids([inputs[i] + word], add_special_tokens=False)[0]
        assert answered[:len(rows[i])] == rows[i] and answered[len(rows[i])] == batch.factual[i].item()
    # the slot at the very start leaves an empty user turn
    assert "<|end_header_id|>\n\n<|eot_id|>" in inputs[1]


@pytest.mark.parametrize("key", ["untemplated", "templated-base"])
def test_a_model_that_is_not_wrapped_reads_what_it_read_before(llamas, key):
    base, lm = llamas["base"], llamas[key]
    plain = make_batch(base, TEXTS, FACTUAL, COUNTER)
    other = make_batch(lm, TEXTS, FACTUAL, COUNTER)
    assert _rows(plain) == _rows(other)  # the padding id differs: these tokenizers end turns with <|eot_id|>
    for field in ("attention_mask", "rows", "cols", "factual", "counterfactual"):
        assert torch.equal(getattr(plain, field), getattr(other, field)), field
    # and that is the plain causal construction: BOS + the cut text, read at its end, leading-space targets
    rows = _rows(plain)
    assert rows[0] == base.token_ids(["Yesterday Mary said that"])[0] and rows[0][0] == base.tokenizer.bos_token_id
    assert rows[1] == [base.start_token_id]
    assert plain.factual.tolist() == [target_token(base, "she", True), target_token(base, "She", False)]
    assert prompt_text(lm, "My friend, [NAME], bakes bread.") == prompt_text(base, "My friend, [NAME], bakes bread.")
    assert cache_payload(lm, Settings()) == cache_payload(base, Settings())
    assert set(cache_payload(base, Settings())) == {"settings", "lr", "version"}  # the key made before


def test_selection_prompts_and_lms_text_are_wrapped_as_the_reference_does(llamas):
    lm = llamas["instruct"]
    prompts = ["My friend, [NAME], bakes bread.", "My friend, [NAME], repairs engines."]
    objective = NamePredictionObjective(lm, prompts, NameWeights(torch.zeros(lm.vocab_size, 2)))
    wrapped = [chat_format(lm).wrap(p, NAME_PROMPT) for p in sorted(prompts, key=len)]
    assert "In the following text, [NAME] represents a placeholder" in wrapped[0]  # the name system prompt
    assert "user<|end_header_id|>\nMy friend, [NAME], bakes bread.\n<|eot_id|>" in wrapped[0]
    batch = objective.batches[0]
    assert _rows(batch) == lm.token_ids(wrapped, add_special_tokens=False)
    assert batch.cols.tolist() == [len(r) - 1 for r in _rows(batch)]

    # LMS: every token of each wrapped sentence predicts the next one, as an independent shifted NLL says
    sentences = ["The weather was mild in the valley.", "He bought bread at the market."]
    engine = GradientEngine(lm, select_parameters(lm))
    grid = DecoderGrid(engine, objective, sentences, seed=0)
    ids = lm.token_ids([chat_format(lm).wrap(s) for s in sorted(sentences, key=len)], add_special_tokens=False)
    (batch, chosen, _), = grid.neutral_batches
    assert _rows_of(batch) == ids and int(chosen.sum()) == sum(len(r) - 1 for r in ids)
    nll = []
    with torch.no_grad():
        for row in ids:
            logits = lm.model(torch.tensor([row])).logits[0, :-1].double()
            nll.append(torch.nn.functional.cross_entropy(logits, torch.tensor(row[1:]), reduction="sum"))
    expected = 1.0 / (1.0 + float(sum(nll)) / sum(len(r) - 1 for r in ids))
    assert grid.lms() == pytest.approx(expected, rel=1e-4)
    assert set(cache_payload(lm, Settings())) == {"settings", "lr", "version", "chat_template"}


def _rows_of(batch: dict) -> list[list[int]]:
    return [row[mask.bool()].tolist() for row, mask in zip(batch["input_ids"], batch["attention_mask"])]


def test_the_factual_gradient_is_that_of_the_bare_word_after_the_reference_prompt(llamas):
    """Independent path: the plain HF model in float64 on the reference's string, −log p(word) at its last token."""
    import copy

    lm = llamas["instruct"]
    engine = GradientEngine(lm, select_parameters(lm))
    got = engine.gradients(make_batch(lm, TEXTS[:1], FACTUAL[:1], COUNTER[:1]), ("factual",))["factual"].double()
    model = copy.deepcopy(lm.model).double()
    params = dict(model.named_parameters())
    ids = torch.tensor(lm.token_ids([REFERENCE_PROMPT], add_special_tokens=False))
    word = lm.token_ids(["she"], add_special_tokens=False)[0][0]
    loss = -torch.log_softmax(model(ids).logits[0, -1], -1)[word]
    expected = torch.cat([g.flatten() for g in torch.autograd.grad(loss, [params[n] for n in engine.map.names])])
    assert expected.abs().max() > 1e-3
    torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-5 * float(expected.abs().max()))
