"""Tiny random-weight models of the GRADIEND paper's model families, built offline in seconds.

The paper evaluates bert-base-cased, bert-large-cased, distilbert-base-cased, roberta-large, gpt2 and
Llama-3.2-3B(-Instruct). Each family has its own classes and conventions — parameter names, dropout fields,
special tokens, leading-space tokens, a missing pad token — and the first run on a real model should not be
where they break. :func:`build_tiny_model` writes a ``save_pretrained`` folder of one family that the harness
loads like any local model (``load_model(folder)``, or the folder as a config's model):

* the family's own ``transformers`` model class (``BertForMaskedLM``, ``DistilBertForMaskedLM``,
  ``RobertaForMaskedLM``, ``GPT2LMHeadModel``, ``LlamaForCausalLM``) from a config with small dimensions
  (2 layers, hidden size 64) and random weights drawn under ``seed``;
* a tokenizer trained here with the ``tokenizers`` library on the given documents and wrapped in the family's
  tokenizer class, which adds the family's pipeline (normalizer, pre-tokenizer, special-token template):
  WordPiece for BERT and DistilBERT (cased, ``[CLS] … [SEP]``), byte-level BPE for RoBERTa (``<s> … </s>``,
  ``<mask>`` absorbing the space before it) and GPT-2 (no BOS added, no pad token), and for Llama the
  Llama-3 tokenizer's shape: byte-level BPE with Llama-3's pre-tokenizer pattern, ``<|begin_of_text|>`` added
  in front, no pad token.

The numbers such a model produces mean nothing; what it is for is running every code path of a family
(``tests/test_families.py``). ``docs/model-families.md`` lists what each family needs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from harness.errors import HarnessError

FAMILIES = ("bert", "distilbert", "roberta", "gpt2", "llama")
PAPER_MODELS = {"bert": ("bert-base-cased", "bert-large-cased"), "distilbert": ("distilbert-base-cased",),
                "roberta": ("roberta-large",), "gpt2": ("gpt2",),
                "llama": ("meta-llama/Llama-3.2-3B", "meta-llama/Llama-3.2-3B-Instruct")}

# Llama-3's pre-tokenizer pattern (meta-llama/Llama-3.2-3B tokenizer.json): contractions, words with one
# leading non-letter, numbers of up to three digits, punctuation runs, newlines, spaces
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_BOS, LLAMA3_EOS = "<|begin_of_text|>", "<|end_of_text|>"
SPECIAL_TOKENS = {"bert": ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
                  "distilbert": ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
                  "roberta": ["<s>", "<pad>", "</s>", "<unk>", "<mask>"],  # roberta's ids 0-3, <mask> as a special
                  "gpt2": ["<|endoftext|>"],
                  "llama": [LLAMA3_BOS, LLAMA3_EOS]}


def train_tokenizer(family: str, documents: Sequence[str], vocab_size: int = 3000):
    """The family's tokenizer (a ``transformers`` tokenizer object) with a vocabulary learnt from ``documents``."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    check_family(family)
    specials = SPECIAL_TOKENS[family]
    if family in ("bert", "distilbert"):
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)  # the *-cased models
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False)
    else:
        tok = Tokenizer(models.BPE())
        if family == "llama":
            tok.pre_tokenizer = pre_tokenizers.Sequence([
                pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        else:
            tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(documents), trainer=trainer)
    if family in ("bert", "distilbert"):
        from transformers import BertTokenizer, DistilBertTokenizer

        cls = BertTokenizer if family == "bert" else DistilBertTokenizer
        return cls(vocab=tok.get_vocab(), do_lower_case=False, model_max_length=512)
    model = json.loads(tok.to_str())["model"]
    vocab, merges = model["vocab"], [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    if family == "roberta":
        from tokenizers import AddedToken
        from transformers import RobertaTokenizer

        # roberta-large's <mask> absorbs the space before it ("a <mask>" -> "a", "<mask>"), as its config says
        return RobertaTokenizer(vocab=vocab, merges=merges, model_max_length=512,
                                mask_token=AddedToken("<mask>", lstrip=True, rstrip=False, special=True))
    if family == "gpt2":
        from transformers import GPT2Tokenizer

        return GPT2Tokenizer(vocab=vocab, merges=merges, model_max_length=512)
    from transformers import PreTrainedTokenizerFast

    # Llama-3 ships a plain PreTrainedTokenizerFast whose tokenizer.json adds the BOS (a template processor)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single=f"{LLAMA3_BOS} $A", pair=f"{LLAMA3_BOS} $A {LLAMA3_BOS}:1 $B:1",
                                      special_tokens=[(LLAMA3_BOS, tok.token_to_id(LLAMA3_BOS))])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=LLAMA3_BOS, eos_token=LLAMA3_EOS,
                                   model_max_length=512, clean_up_tokenization_spaces=False)


def tiny_config(family: str, tokenizer, *, hidden: int = 64, layers: int = 2, heads: int = 2,
                positions: int = 512):
    """A ``transformers`` config of the family with small dimensions, its special-token ids from ``tokenizer``."""
    from transformers import BertConfig, DistilBertConfig, GPT2Config, LlamaConfig, RobertaConfig

    check_family(family)
    vocab = len(tokenizer)
    if family == "bert":
        return BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                          intermediate_size=4 * hidden, max_position_embeddings=positions,
                          pad_token_id=tokenizer.pad_token_id)
    if family == "distilbert":
        return DistilBertConfig(vocab_size=vocab, dim=hidden, n_layers=layers, n_heads=heads, hidden_dim=4 * hidden,
                                max_position_embeddings=positions, pad_token_id=tokenizer.pad_token_id)
    if family == "roberta":  # positions start after the padding index, as in roberta-large (514 = 512 + 2)
        return RobertaConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                             intermediate_size=4 * hidden, max_position_embeddings=positions + 2, type_vocab_size=1,
                             pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                             eos_token_id=tokenizer.eos_token_id)
    if family == "gpt2":
        return GPT2Config(vocab_size=vocab, n_embd=hidden, n_layer=layers, n_head=heads, n_positions=positions,
                          bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    # Llama-3.2: grouped-query attention, tied embeddings
    return LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
                       num_attention_heads=heads, num_key_value_heads=max(1, heads // 2),
                       max_position_embeddings=positions, bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True)


def build_tiny_model(family: str, folder: str | Path, documents: Sequence[str], *, vocab_size: int = 4000,
                     hidden: int = 64, layers: int = 2, seed: int = 0) -> Path:
    """Write a random-weight model of ``family`` and its tokenizer trained on ``documents`` into ``folder``.

    The same arguments give the same tokenizer and the same weights. Returns ``folder``, which
    :func:`harness.models.load_model` loads as a local model.
    """
    import torch
    from transformers import (
        BertForMaskedLM,
        DistilBertForMaskedLM,
        GPT2LMHeadModel,
        LlamaForCausalLM,
        RobertaForMaskedLM,
    )

    tokenizer = train_tokenizer(family, documents, vocab_size)
    config = tiny_config(family, tokenizer, hidden=hidden, layers=layers)
    classes = {"bert": BertForMaskedLM, "distilbert": DistilBertForMaskedLM, "roberta": RobertaForMaskedLM,
               "gpt2": GPT2LMHeadModel, "llama": LlamaForCausalLM}
    torch.manual_seed(seed)
    model = classes[family](config).eval()
    folder = Path(folder)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def check_family(family: str) -> None:
    if family not in FAMILIES:
        raise HarnessError(f"unknown model family '{family}'", f"choose one of: {', '.join(FAMILIES)}")
