"""The paper's model families end to end on tiny random-weight models (tests/tiny_families.py): each family's
classes load through the harness, and every family runs through the real pipeline — the base model through every
benchmark, every method and a combination through lm-quality — with finite scores. The method-specific
properties are in test_families_methods.py; every variant through every benchmark is the slow part
(test_families_slow.py). docs/model-families.md says what each family needs."""

from __future__ import annotations

import math

import pytest
import torch

from harness.models.tiny import FAMILIES
from tiny_families import BENCHMARKS, VARIANTS

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = {  # the family's model, backbone and tokenizer classes (what the paper's hub models load as)
    "bert": ("BertForMaskedLM", "BertModel", "BertTokenizer"),
    "distilbert": ("DistilBertForMaskedLM", "DistilBertModel", "DistilBertTokenizer"),
    "roberta": ("RobertaForMaskedLM", "RobertaModel", "RobertaTokenizer"),
    "gpt2": ("GPT2LMHeadModel", "GPT2Model", "GPT2Tokenizer"),
    "llama": ("LlamaForCausalLM", "LlamaModel", "TokenizersBackend"),  # Llama-3: a plain fast tokenizer
}
START = {"bert": "[CLS]", "distilbert": "[CLS]", "roberta": "<s>", "gpt2": None, "llama": "<|begin_of_text|>"}


def finite_scores(record) -> list[str]:
    """Names of the record's scores that are not finite numbers (empty when all are)."""
    return [name for name, score in record.scores.items() if not math.isfinite(score.value)]


@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_model_loads_as_its_family_with_the_familys_special_tokens(family, tiny_families, mirror):
    lm = tiny_families.lm(family)
    assert (type(lm.model).__name__, type(lm.backbone).__name__, type(lm.tokenizer).__name__) == CLASSES[family]
    assert lm.kind == ("causal" if family in ("gpt2", "llama") else "masked")
    assert lm.origin["type"] == "local" and lm.hidden_size == 64 and lm.vocab_size == len(lm.tokenizer) == 4000
    ids, plain = (lm.token_ids(["She is here."], add_special_tokens=special)[0] for special in (True, False))
    if START[family] is None:  # GPT-2 adds no start token to a text
        assert ids == plain
    else:
        assert lm.tokenizer.convert_ids_to_tokens(ids[0]) == START[family] and ids[1:1 + len(plain)] == plain
    # GPT-2 and Llama-3 have no pad token: the harness pads with the end-of-text token
    if family in ("gpt2", "llama"):
        assert lm.tokenizer.pad_token == lm.tokenizer.eos_token
    assert lm.tokenizer.pad_token_id is not None
    # the backbone has no head weight; the head is the family's whole head, not the output embedding alone
    assert lm.backbone_parameters() and all(n.startswith(lm.model.base_model_prefix + ".")
                                            for n in lm.backbone_parameters())
    assert lm.head is not None


@pytest.mark.parametrize("family", FAMILIES)
def test_logits_through_the_head_equal_the_models_own_forward(family, tiny_families, mirror):
    """The harness runs the body and then its head only where scores are read; that must be the model's own
    computation (DistilBERT's and RoBERTa's heads transform the hidden state before the tied decoder)."""
    lm = tiny_families.lm(family)
    batch = lm.tokenize(["The nurse said she would come.", "He went home early today, said Mary."])
    with torch.no_grad():
        own = lm.model(**batch).logits
        ours = lm.logits(batch["input_ids"], batch["attention_mask"])
        rows, cols = torch.tensor([0, 1, 1]), torch.tensor([2, 0, 5])
        at = lm.logits(batch["input_ids"], batch["attention_mask"], (rows, cols))
    torch.testing.assert_close(ours, own, rtol=0, atol=1e-5)
    torch.testing.assert_close(at, own[rows, cols], rtol=0, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_padding_does_not_change_a_rows_scores(family, tiny_families, mirror):
    """Right padding (with GPT-2's/Llama's borrowed pad token) and the attention mask leave each row's pooled
    representation and log-probabilities as when the row runs alone."""
    lm = tiny_families.lm(family)
    short, long = "She smiled.", "The engineer explained the plan to the committee in great detail."
    alone = lm.tokenize([short])
    batch = lm.tokenize([short, long])
    n = alone["input_ids"].shape[1]
    assert batch["input_ids"].shape[1] > n and (batch["input_ids"][0, n:] == lm.tokenizer.pad_token_id).all()
    with torch.no_grad():
        torch.testing.assert_close(lm.token_log_probs(**batch)[0, :n], lm.token_log_probs(**alone)[0],
                                   rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lm.pooled([short, long])[0], lm.pooled([short])[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("benchmark", list(BENCHMARKS))
def test_base_model_scores_every_benchmark_through_the_pipeline(family, benchmark, tiny_families, mirror):
    record = tiny_families.grid(family, ["base"], list(BENCHMARKS))[("base", benchmark)]
    assert record.status == "ok", record.details
    assert record.scores and not finite_scores(record), finite_scores(record)
    assert record.model_origin["type"] == "local" and record.variant_steps == []
    if benchmark in ("glue", "superglue"):
        assert record.protocol == "probe" and set(record.details["per_task"]) == set(BENCHMARKS[benchmark]["tasks"])


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("variant", VARIANTS[1:])
def test_every_method_runs_through_the_pipeline(family, variant, tiny_families, mirror):
    """Every method and the combinations on every family, scored by lm-quality (token predictions: both
    hidden-state and prediction hooks reach it)."""
    records = tiny_families.grid(family, VARIANTS, ["lm-quality"])
    record = records[(variant, "lm-quality")]
    assert record.status == "ok", record.details
    assert not finite_scores(record), finite_scores(record)
    assert [step["method"] for step in record.variant_steps] == variant.split("+")
    base = records[("base", "lm-quality")].scores["perplexity"].value
    if variant != "gradiend":  # GRADIEND's selection may keep the unchanged model (α = 0)
        assert record.scores["perplexity"].value != base, "the variant left the model's predictions unchanged"
    if "+" in variant:  # the post-processing step is fitted on the weight-changed model, not on the base model
        first, second = variant.split("+")
        alone = records[(second, "lm-quality")].variant_steps[0]["cache_key"]
        assert record.variant_steps[1]["cache_key"] != alone
        assert record.variant_steps[0]["cache_key"] == records[(first, "lm-quality")].variant_steps[0]["cache_key"]
    if "gradiend" in variant:  # the grid's GRADIEND is the one trained on the unfiltered templates
        assert record.variant_steps[0]["notes"]["reused_cached_training"]


@pytest.mark.parametrize("family", ["bert", "distilbert", "roberta"])
def test_stereoset_asks_each_subword_of_the_candidate_with_the_contexts_spacing(family, tiny_families, mirror):
    """RoBERTa's word after a space is a leading-space token ("Ġmet"): the first subword is asked as that token,
    and the later subwords' inputs repeat the earlier ones without a second space (no lone "Ġ" token)."""
    from benchmarks.stereoset import Cluster, masked_queries

    lm = tiny_families.lm(family)
    context = "The nurse is a very BLANK person."
    words = {"s": "meticulous", "a": "careless", "u": "banana"}
    labels = dict(zip("sau", ("stereotype", "anti-stereotype", "unrelated")))
    cluster = Cluster("c0", "nurse", "gender", context,
                      {labels[sid]: (sid, context.replace("BLANK", word)) for sid, word in words.items()})
    owners, queries = masked_queries(lm, [cluster])
    space = " " if family == "roberta" else ""
    for sid, word in words.items():
        pieces = lm.token_ids([space + word], add_special_tokens=False)[0]
        assert [q.target_id for owner, q in zip(owners, queries) if owner == sid] == pieces
    assert len(lm.token_ids([space + words["s"]], add_special_tokens=False)[0]) > 1  # a word of several subwords
    for query in queries:
        tokens = lm.tokenizer.convert_ids_to_tokens(list(query.input_ids))
        assert tokens[query.position] == lm.tokenizer.mask_token and "Ġ" not in tokens
        assert "  " not in lm.tokenizer.decode(list(query.input_ids))


@pytest.mark.parametrize("family", FAMILIES)
def test_crows_knows_where_the_familys_special_tokens_sit(family, tiny_families, mirror):
    """CrowS' shared-token scoring skips the special tokens a tokenizer adds around a sentence."""
    from benchmarks.crows import special_layout

    expected = {"bert": (1, 1), "distilbert": (1, 1), "roberta": (1, 1), "gpt2": (0, 0), "llama": (1, 0)}
    assert special_layout(tiny_families.lm(family).tokenizer) == expected[family]


def test_a_masked_lm_with_an_unknown_head_scores_through_its_own_forward_and_refuses_mlm_training(tiny_families,
                                                                                                  mirror):
    """ALBERT is none of the paper's families: its logits come from the model's own forward, and MLM training,
    which needs the head on its own, stops with one line instead of using the output embedding as the head."""
    from transformers import AlbertConfig, AlbertForMaskedLM

    from harness.errors import HarnessError
    from harness.models.interface import LanguageModel
    from harness.pretraining import TrainingSettings, continue_pretraining

    tokenizer = tiny_families.lm("bert").tokenizer
    torch.manual_seed(0)
    model = AlbertForMaskedLM(AlbertConfig(vocab_size=len(tokenizer), embedding_size=16, hidden_size=32,
                                           num_hidden_layers=1, num_attention_heads=2, intermediate_size=64))
    lm = LanguageModel(model, tokenizer, "masked", "tiny-albert")
    assert lm.head is None
    batch = lm.tokenize(["The nurse said she would come."])
    with torch.no_grad():
        torch.testing.assert_close(lm.logits(**batch), model(**batch).logits, rtol=0, atol=0)
    with pytest.raises(HarnessError, match="LM head of tiny-albert"):
        continue_pretraining(lm, tiny_families.documents()[:40], tiny_families.documents()[40:60],
                             TrainingSettings(steps=1, batch_size=2, seq_len=16), progress=False)
