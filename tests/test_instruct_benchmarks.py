"""The benchmarks and representation methods read an instruction-tuned Llama as bias-bench does
(aieng-lab/bias-bench ``bias_bench/model/__init__.py``, ``InstructTokenizerWrapper``; :mod:`harness.models.chat`):
SEAT and the erasure encodings in its chat prompt, every token pooled; zero-shot GLUE through the tokenizer's own
template (``shell_jobs/glue_llama.sh``); StereoSet and CrowS on the bare text. Checked on a tiny random-weight
Llama with Llama-3.2-Instruct's header tokens and a chat template, and on renamed copies of it (same weights,
same tokenizer), which — like every model without the Instruct setup — must read exactly what they read before."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from test_gradiend_instruct import _variant

from conftest import require_mirror
from harness.api import RunContext
from harness.attribute_data import _features_key, encode
from harness.models.chat import bias_bench_chat, bias_bench_prompt
from harness.registry import get_benchmark, get_method
from methods.gradiend.instruct import chat_format
from tiny_families import one_torch_thread

# aieng-lab/bias-bench bias_bench/model/__init__.py, InstructTokenizerWrapper._wrap_prompt with system_prompt ""
REFERENCE_PROMPT = ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n<|eot_id|>"
                    "<|start_header_id|>user<|end_header_id|>\nThe nurse is here.\n<|eot_id|>"
                    "<|start_header_id|>assistant<|end_header_id|>")
TEXTS = ["He went home after the game.", "The engineer said that she would fix the bridge soon."]
SEAT_TEST = "sent-weat6"


@pytest.fixture(scope="module")
def llamas(tmp_path_factory):
    """instruct: named Llama Instruct with a Llama-3 template; chat: the same files named without "instruct";
    instruct-no-llama: the same files named "…-Instruct" without "llama" (GRADIEND wraps it, bias-bench does not);
    base: the tiny Llama as built (no template, no header tokens)."""
    require_mirror()
    from harness.data.corpus import load_documents
    from harness.models import load_model
    from harness.models.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("instruct-benchmarks")
    base = build_tiny_model("llama", root / "tiny-llama", load_documents()[:3000])
    instruct = _variant(base, root / "tiny-Llama-3.2-Instruct", template=True)
    folders = {"base": base, "instruct": instruct,
               "chat": shutil.copytree(instruct, root / "tiny-llama-3.2-chat"),
               "instruct-no-llama": shutil.copytree(instruct, root / "tiny-3.2-Instruct")}
    return {key: load_model(str(folder)) for key, folder in folders.items()}


def _reference_mean(lm, text: str, **tokenizer_args) -> torch.Tensor:
    """bias-bench's encoding by hand: the wrapped text through the plain tokenizer call (special tokens added), the
    body's last hidden state averaged over every token, one text at a time, in float64."""
    ids = lm.tokenizer(bias_bench_prompt(text), return_tensors="pt", **tokenizer_args)["input_ids"]
    with torch.no_grad():
        return lm.model.base_model(input_ids=ids).last_hidden_state[0].double().mean(0)


def test_the_bias_bench_rule_decides_and_says_why(llamas, bert_tiny, smollm2):
    assert bias_bench_chat(llamas["instruct"]).used and chat_format(llamas["instruct"]).used  # the rules agree
    decision = bias_bench_chat(llamas["instruct-no-llama"])  # bias-bench also asks for "llama" in the name
    assert chat_format(llamas["instruct-no-llama"]).used and not decision.used
    assert "does not contain 'llama'" in decision.reason and "bias_bench/model/__init__.py" in decision.reason
    for key in ("chat", "base"):
        assert "does not contain 'instruct'" in bias_bench_chat(llamas[key]).reason
    assert not bias_bench_chat(smollm2).used and not bias_bench_chat(bert_tiny).used


def test_the_prompt_is_the_references_with_two_bos_tokens(llamas):
    lm = llamas["instruct"]
    assert bias_bench_prompt("The nurse is here.") == REFERENCE_PROMPT
    ids = lm.token_ids([REFERENCE_PROMPT])[0]  # as bias-bench's __call__: the tokenizer adds its BOS in front
    tokens = lm.tokenizer.convert_ids_to_tokens(ids)
    assert tokens[:3] == ["<|begin_of_text|>", "<|begin_of_text|>", "<|start_header_id|>"]
    assert tokens.count("<|begin_of_text|>") == 2 and tokens.count("<|eot_id|>") == 2
    header = len(tokens) - 1 - tokens[::-1].index("<|start_header_id|>")
    assert tokens[-1] == "<|end_header_id|>"  # no newline after the assistant header
    assert lm.tokenizer.decode(ids[header + 1:-1]) == "assistant"
    assert lm.tokenizer.decode(ids[1:]) == REFERENCE_PROMPT


def test_seat_pools_every_token_of_the_wrapped_sentences(llamas, mirror):
    from benchmarks.seat import effect_size, load_seat_test

    seat = get_benchmark("seat")(tests=[SEAT_TEST], n_permutations=100, resamples=10)
    data = load_seat_test(mirror / "seat" / f"{SEAT_TEST}.jsonl")
    lm = llamas["instruct"]
    with one_torch_thread():
        result = seat.run(lm, RunContext(progress=False))
        sets = [torch.stack([_reference_mean(lm, t) for t in data[k]["examples"]]).numpy()
                for k in ("targ1", "targ2", "attr1", "attr2")]
    expected = effect_size(*sets)  # cosines: the reference's L2 normalisation does not change them
    assert result.scores[f"effect_size:{SEAT_TEST}"].value == pytest.approx(expected, abs=1e-4)
    assert result.details["chat_template"]["used"] is True

    copy = llamas["chat"]  # the same model under a name without "instruct": the bare sentences, as before
    with one_torch_thread():
        plain = seat.run(copy, RunContext(progress=False))
        sentences = list(dict.fromkeys(e for k in ("targ1", "targ2", "attr1", "attr2") for e in data[k]["examples"]))
        emb = copy.pooled(sentences, normalize=True).double().numpy()
    row = {t: i for i, t in enumerate(sentences)}
    by_hand = effect_size(*(emb[[row[e] for e in data[k]["examples"]]] for k in ("targ1", "targ2", "attr1", "attr2")))
    assert plain.scores[f"effect_size:{SEAT_TEST}"].value == by_hand
    assert "chat_template" not in plain.details
    assert abs(by_hand - expected) > 1e-3  # the prompt changes what is measured


def test_erasure_encodings_are_the_references_and_keyed_apart(llamas, tmp_path):
    lm = llamas["instruct"]
    texts = [*TEXTS, " ".join(["The long sentence goes on and on."] * 30)]  # longer than 128 tokens
    ctx = RunContext(cache_dir=tmp_path, batch_size=2, progress=False)
    with one_torch_thread():
        for max_length in (None, 128):  # INLP's encoding; SentDebias' (bias-bench: max_length=128, the prompt in)
            got = encode(lm, texts, ctx, max_length=max_length).double()
            limit = {"truncation": True, "max_length": max_length} if max_length else {}
            expected = torch.stack([_reference_mean(lm, t, **limit) for t in texts])
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
            wrapped = [bias_bench_prompt(t) for t in texts]
            assert (tmp_path / "features" / f"{_features_key(lm, wrapped, max_length)}.safetensors").is_file()
            assert not (tmp_path / "features" / f"{_features_key(lm, texts, max_length)}.safetensors").exists()
    cut = lm.tokenizer(bias_bench_prompt(texts[-1]), truncation=True, max_length=128)["input_ids"]
    assert len(cut) == 128 and lm.tokenizer.convert_ids_to_tokens(cut[-1]) != "<|end_header_id|>"  # tail cut


@pytest.mark.parametrize("key", ["base", "chat", "instruct-no-llama"])
def test_a_model_that_is_not_wrapped_encodes_and_keys_as_before(llamas, tmp_path, key):
    lm = llamas[key]
    ctx = RunContext(cache_dir=tmp_path, batch_size=2, progress=False)
    with one_torch_thread():
        for max_length in (None, 128):
            got = encode(lm, TEXTS, ctx, max_length=max_length)
            assert torch.equal(got, lm.pooled(TEXTS, batch_size=2, max_length=max_length))  # the plain path
            assert (tmp_path / "features" / f"{_features_key(lm, TEXTS, max_length)}.safetensors").is_file()
    assert len(list((tmp_path / "features").glob("*.safetensors"))) == 2


@pytest.mark.parametrize("method, options", [("sentdebias", {"n_examples": 20}), ("leace", {"n_per_class": 20})])
def test_erasure_notes_say_the_prompt_was_used_only_when_it_was(llamas, mirror, tmp_path, method, options):
    notes = {}
    with one_torch_thread():
        for key in ("instruct", "chat"):
            fitted = get_method(method)(**options)
            fitted.fit(llamas[key], RunContext(cache_dir=tmp_path / key, bias_type="gender", progress=False))
            notes[key] = fitted.notes
    assert notes["instruct"]["chat_template"] == bias_bench_chat(llamas["instruct"]).note()
    assert "chat_template" not in notes["chat"]


def test_stereoset_and_crows_read_the_bare_texts(llamas, mirror):
    """bias-bench's StereoSet and CrowS call ``tokenizer.encode``, which its wrapper does not wrap: the Instruct
    model scores exactly as the same files under a name without "instruct"."""
    runs = {"stereoset": {"split": "test-subset", "resamples": 10}, "crows": {"resamples": 10}}
    with one_torch_thread():
        for name, options in runs.items():
            instruct, plain = (get_benchmark(name)(**options).run(llamas[k], RunContext(progress=False))
                               for k in ("instruct", "chat"))
            assert {k: s.value for k, s in instruct.scores.items()} == {k: s.value for k, s in plain.scores.items()}
            assert "chat_template" not in instruct.details


def test_zero_shot_glue_renders_the_tokenizers_chat_template(llamas, mirror, tmp_path):
    """bias-bench's glue_llama.sh: ``lm_eval --apply_chat_template`` for the Instruct model. lm-eval makes the
    prompt the user turn, opens the assistant turn, and drops the space before the answer."""
    from benchmarks.glue_tasks import GLUE_TASKS
    from benchmarks.lm_eval_zero_shot import CHAT_TEMPLATE_ARGS, harness_lm_class, hub_rows, lm_eval_model

    lm = llamas["instruct"]
    spec = next(t for t in GLUE_TASKS if t.name == "rte")
    doc = hub_rows(spec, mirror / "glue" / "RTE" / "dev.tsv")[0]
    prompt = f"{doc['sentence1']}\nQuestion: {doc['sentence2']} True or False?\nAnswer:"  # lm-eval's rte yaml
    expected = lm.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                add_generation_prompt=True, **CHAT_TEMPLATE_ARGS)
    assert expected.startswith("<|begin_of_text|><|start_header_id|>user")
    glue = {b: get_benchmark("glue-zs")(tasks=["rte"], limit=3, resamples=10, backend=b) for b in ("hf", "harness")}
    with one_torch_thread():
        for backend, scorer in glue.items():  # harness: our scorer, as under SelfDebias' prediction hook
            result = scorer.run(lm, RunContext(cache_dir=tmp_path, progress=False))
            note = result.details["chat_template"]
            assert note["used"] and note["date_string"] == CHAT_TEMPLATE_ARGS["date_string"], backend
            assert note["example"] == {"task": "rte", "context": expected, "continuation": "True"}, backend
        plain = glue["hf"].run(llamas["chat"], RunContext(cache_dir=tmp_path, progress=False))
    assert "chat_template" not in plain.details
    assert np.isfinite(plain.scores["rte"].value)
    # Llama-3.2's real template writes today's date unless given one: the hf backend passes the fixed one
    assert lm_eval_model(lm, "hf", 1, False)[0].chat_template_args == CHAT_TEMPLATE_ARGS
    assert lm_eval_model(llamas["chat"], "hf", 1, False)[0].chat_template_args == {}
    dated = llamas["chat"].clone()  # and our scorer renders a template that reads the date with the fixed one
    dated.tokenizer.chat_template = "{{ date_string }}|{% for m in messages %}{{ m['content'] }}{% endfor %}"
    assert harness_lm_class()(dated).apply_chat_template([{"role": "user", "content": "x"}]) == "26 Jul 2024|x"
