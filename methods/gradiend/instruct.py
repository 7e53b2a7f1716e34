"""Instruction-tuned causal LMs: GRADIEND's own texts wrapped in a Llama-3 chat prompt, as the reference does.

Source: aieng-lab/gradiend-bias ``gradiend/model.py`` — ``InstructTokenizerWrapper`` (l. 50–141) and
``AutoTokenizerForLM`` (l. 143–150); the same class is in aieng-lab/gradiend ``gradiend/model.py`` (commit 5fff0d8)
and, in the current package, ``gradiend/trainer/text/common/loading.py`` (l. 142–226). Read; only the system
prompts are reproduced, byte for byte.

**When.** ``AutoTokenizerForLM.from_pretrained(name)`` wraps the tokenizer exactly when ``"instruct" in
name.lower()`` (l. 148) — the paper's Llama-3.2-3B-Instruct. Here the name is the last part of the model's spec
(a hub id's model name, or the folder it was loaded from: a parent folder called "instruct-runs" does not make
every model in it an Instruct model), and two checks are added because the wrapper writes Llama-3's markers: the
tokenizer must have a chat template, and ``<|begin_of_text|>``, ``<|start_header_id|>``, ``<|end_header_id|>`` and
``<|eot_id|>`` must be single tokens of it (:func:`harness.models.chat.instruct_chat`, which the benchmarks share
under bias-bench's rule). So SmolLM2-Instruct (``zoo:smollm2-135m``: no "instruct" in the spec,
and a ChatML template) and every model without a template read their texts exactly as before.

**What.** ``_wrap_prompt`` (l. 78–103) builds, with no tokenizer template and no ``add_generation_prompt``::

    <|begin_of_text|><|start_header_id|>system<|end_header_id|>\\n{system}\\n<|eot_id|>
    <|start_header_id|>user<|end_header_id|>\\n{text}\\n<|eot_id|><|start_header_id|>assistant<|end_header_id|>\\n

(one string; the line break above is only for reading), tokenised without further special tokens (``__call__``,
l. 105–118). Every ``tokenizer(...)`` call is wrapped, so for the Instruct model the reference wraps

* the **training templates** and the **encoder evaluation**: the text cut before the pronoun, its trailing space
  kept (``gradiend/setups/gender/en/__init__.py`` l. 209–213; ``training.py`` l. 174–176 strips only for
  non-Instruct models), with the default ``system_prompt`` ("completes sentences", :data:`SENTENCE_PROMPT`);
  the target is the **bare** word, "he"/"He" (l. 67–72; ``create_inputs``, ``gradiend/model.py`` l. 1183–1187),
  since the answer starts right after the assistant header's newline;
* the **selection prompts**: the GENTypes text as it is, ``[NAME]`` included, under ``system_prompt_name``
  (:data:`NAME_PROMPT`; ``gradiend/evaluation/analyze_decoder.py`` l. 582–588, 645–657); the next-token
  distribution is read at the last prompt token (l. 681: non-padding count + 1, where the padding token is
  ``<|eot_id|>``, which occurs twice in the prompt);
* the **LMS text** (``compute_lms``/``evaluate_non_gender_mlm`` → ``gradiend/evaluation/mlm.py``
  ``evaluate_clm_perplexity``, l. 18–96), every non-padding token of the wrapped text scored.

Where we differ, and why:

* The target is read at the last prompt token (the newline after ``assistant<|end_header_id|>``), the token right
  before the answer, for training, encoder and selection alike. The reference's training puts the label *on* that
  token and lets Hugging Face's shifted loss read it one position earlier (at ``<|end_header_id|>``); its selection
  prompts read the last token, as here.
* LMS uses :data:`SENTENCE_PROMPT` for every candidate. The reference's wrapper keeps whatever system prompt was
  set last, so after the first name evaluation every later LMS call runs under ``system_prompt_name``.
* The reference's data for the ``diff`` source (``gradiend/training/dataset.py`` l. 244–249) asks " he" with a
  leading space; its factual/training path (the paper's setting) and this code ask the bare word.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.models.chat import BEGIN, END, EOT, GRADIEND_RULE, MARKERS, START, ChatDecision, instruct_chat
from harness.models.interface import LanguageModel

__all__ = ["BEGIN", "END", "EOT", "MARKERS", "NAME_PROMPT", "SENTENCE_PROMPT", "START", "ChatFormat", "chat_format"]

# The reference's class attributes, byte for byte (indentation, trailing spaces and the em dash included).
SENTENCE_PROMPT = ("\n    You are a language model that completes sentences. Predict the next word that naturally "
                   "follows the given text. \n    Return only that word — no punctuation, no quotes, and no "
                   "explanations.\n    ")
NAME_PROMPT = ("\nYou are a language model trained to predict first names. In the following text, [NAME] represents "
               "a placeholder for a \nfirst name. Your task is to predict the most likely name that fits the "
               "context. Return only the predicted name — no \npunctuation, no quotation marks, and no "
               "explanations.\n    ")


@dataclass(frozen=True)
class ChatFormat(ChatDecision):
    """Whether ``lm``'s GRADIEND texts are wrapped, and why (the record's ``chat_template`` note)."""

    @staticmethod
    def wrap(user_text: str, system: str = SENTENCE_PROMPT) -> str:
        """The reference's ``_wrap_prompt`` for one text: system, user, then the open assistant turn."""
        return (f"{BEGIN}{START}system{END}\n{system}\n{EOT}"
                f"{START}user{END}\n{user_text}\n{EOT}"
                f"{START}assistant{END}\n")


def chat_format(lm: LanguageModel) -> ChatFormat:
    """The reference's rule (the model's name contains "instruct") plus a Llama-3 chat template on the tokenizer
    (:func:`harness.models.chat.instruct_chat`, shared with the benchmarks' bias-bench rule)."""
    decision = instruct_chat(lm, GRADIEND_RULE)
    return ChatFormat(decision.used, decision.reason)
