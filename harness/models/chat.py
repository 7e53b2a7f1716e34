"""Instruction-tuned Llama-3 models: which model's inputs a reference wraps in a chat prompt, and bias-bench's prompt.

Two references wrap the paper's Llama-3.2-3B-Instruct, each with its own ``InstructTokenizerWrapper``:

* **GRADIEND** (aieng-lab/gradiend-bias ``gradiend/model.py``; :mod:`methods.gradiend.instruct`) wraps its own
  texts when ``"instruct" in name.lower()`` (``AutoTokenizerForLM``, l. 148): :data:`GRADIEND_RULE`.
* **bias-bench** (aieng-lab/bias-bench ``bias_bench/model/__init__.py``, commit 6ca2b45): ``load_tokenizer``
  (l. 83–103) wraps the tokenizer when the name contains ``"llama"`` and ``"instruct"`` (l. 90–93):
  :data:`BIAS_BENCH_RULE`. Its wrapper (l. 5–81) builds, with an empty ``system_prompt`` and *no* newline
  after the assistant header (``_wrap_prompt``, l. 21–44)::

      <|begin_of_text|><|start_header_id|>system<|end_header_id|>\\n\\n<|eot_id|>
      <|start_header_id|>user<|end_header_id|>\\n{text}\\n<|eot_id|><|start_header_id|>assistant<|end_header_id|>

  (one string, :func:`bias_bench_prompt`), and ``__call__`` (l. 46–52) passes it on to the tokenizer with the
  caller's arguments, so the tokenizer's own ``<|begin_of_text|>`` comes in front of the prompt's: **two** BOS
  tokens, which :meth:`LanguageModel.tokenize` (special tokens added) reproduces. Only ``__call__`` and
  ``tokenize`` wrap; ``encode``, ``encode_plus`` and ``batch_encode_plus`` reach the plain tokenizer through
  ``__getattr__`` (l. 67–69). Hence, per call site (file, line of the tokenizer call):

  - SEAT ``bias_bench/benchmark/seat/seat.py`` ``_encode`` l. 205 ``tokenizer(text)``: wrapped; the mean of the
    last hidden state over *every* token (l. 210–211: batch of one, the prompt's tokens included), then
    L2-normalised;
  - INLP ``bias_bench/debias/inlp/context_nullspace_projection.py`` l. 34–60, 89–104
    ``tokenizer(sentence, add_special_tokens=True, truncation=True)``: wrapped, mean over every token;
  - SentDebias ``bias_bench/debias/sentence_debias.py`` l. 24–38 ``tokenizer([...], padding="max_length",
    max_length=128, truncation=True)``: wrapped, so the 128 tokens include the prompt; attention-masked mean
    (l. 51–63);
  - LEACE/RLACE ``bias_bench/debias/rlace/__init__.py`` ``encode`` l. 68, 79 ``tokenizer.batch_encode_plus``:
    **not** wrapped — but those are other texts (the Bios data, read at the last token). The harness fits LEACE
    and RLACE on INLP's attribute sentences and representation (:mod:`harness.attribute_data`), which the
    reference wraps, so here they are wrapped with INLP's (one shared encoding per model);
  - StereoSet ``bias_bench/benchmark/stereoset/stereoset.py`` l. 204–238 and CrowS
    ``bias_bench/benchmark/crows/crows.py`` l. 147–150, 291–292: ``tokenizer.encode``, **not** wrapped;
  - GLUE/SuperGLUE: Llama is scored zero-shot with lm-eval (``shell_jobs/glue_llama.sh``), the Instruct model
    with ``--apply_chat_template`` — the tokenizer's *own* chat template, not this wrapper
    (``experiments/run_glue.py``, which would call the wrapper with a sentence pair, is not run for Llama).

Both rules read the **last part of the model's spec** (a hub id's model name, or the folder it was loaded from), as
:mod:`methods.gradiend.instruct` explains (bias-bench reads the whole path: a parent folder called
"instruct-runs" would make every Llama in it an Instruct model there), and both add two checks, because the
wrappers write Llama-3's markers: the tokenizer has a chat template, and the four markers are single tokens of it.
Every other model — all zoo models, GPT-2, base Llama, SmolLM2-Instruct (ChatML, no "instruct" in its spec) —
is read exactly as before.

Here, for a model :func:`bias_bench_chat` picks: SEAT (:mod:`benchmarks.seat`) and the encodings of INLP,
SentDebias, LEACE and RLACE (:func:`harness.attribute_data.encode`) read :func:`bias_bench_inputs`;
``glue-zs``/``superglue-zs`` render the tokenizer's own template (:mod:`benchmarks.lm_eval_zero_shot`);
StereoSet, CrowS, LM quality and the GLUE probe/fine-tuning protocols (never run on Llama by bias-bench, whose
``run_glue.py`` would hand the wrapper a sentence pair it cannot take) read the bare texts. Each record that
wrapped says ``chat_template: {used, reason}``; the others are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

BEGIN, START, END, EOT = "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"
MARKERS = (BEGIN, START, END, EOT)


@dataclass(frozen=True)
class ChatDecision:
    """Whether a model's texts are wrapped in a reference's chat prompt, and why (a record's ``chat_template``)."""

    used: bool
    reason: str

    def note(self) -> dict:
        return {"used": self.used, "reason": self.reason}


@dataclass(frozen=True)
class NameRule:
    """A reference's test for an Instruct model: every word occurs in the model's name (case-insensitive)."""

    words: tuple[str, ...]
    source: str  # where the reference decides, for the reason


GRADIEND_RULE = NameRule(("instruct",), "AutoTokenizerForLM in aieng-lab/gradiend-bias gradiend/model.py")
BIAS_BENCH_RULE = NameRule(("llama", "instruct"), "load_tokenizer in aieng-lab/bias-bench bias_bench/model/__init__.py")


def model_name(spec: str) -> str:
    """The last part of a model spec: ``meta-llama/Llama-3.2-3B-Instruct`` → ``Llama-3.2-3B-Instruct``."""
    return spec.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def _is_single_token(tokenizer, marker: str) -> bool:
    index = tokenizer.convert_tokens_to_ids(marker)
    return isinstance(index, int) and index != tokenizer.unk_token_id and \
        tokenizer.convert_ids_to_tokens(index) == marker


WRAPPED = "texts wrapped as the reference's InstructTokenizerWrapper wraps them"


def instruct_chat(lm, rule: NameRule, how: str = WRAPPED) -> ChatDecision:
    """``rule`` (the reference's name test) plus a Llama-3 chat template on ``lm``'s tokenizer; ``how`` the
    inputs are then formatted (the reason's end)."""
    if lm.kind != "causal":
        return ChatDecision(False, "masked LM: the reference wraps only the Instruct (causal) model's prompts")
    name = model_name(lm.spec)
    for word in rule.words:
        if word not in name.lower():
            return ChatDecision(False, f"'{name}' does not contain '{word}' (the reference's rule, {rule.source})")
    if not getattr(lm.tokenizer, "chat_template", None):
        return ChatDecision(False, f"'{lm.spec}' is named Instruct but its tokenizer has no chat template")
    missing = [m for m in MARKERS if not _is_single_token(lm.tokenizer, m)]
    if missing:
        return ChatDecision(False, f"the chat template of '{lm.spec}' is not Llama-3's ({', '.join(missing)} not "
                                   "single tokens); the reference's wrapper writes Llama-3's markers")
    return ChatDecision(True, f"'{lm.spec}' is named Instruct and its tokenizer has Llama-3's chat template: {how}")


def bias_bench_chat(lm) -> ChatDecision:
    """Whether bias-bench wraps ``lm``'s SEAT, INLP and SentDebias inputs (:data:`BIAS_BENCH_RULE`)."""
    return instruct_chat(lm, BIAS_BENCH_RULE)


def bias_bench_prompt(text: str) -> str:
    """bias-bench's ``_wrap_prompt`` for one text: empty system turn, the text as the user turn, the assistant
    header without a newline after it."""
    return f"{BEGIN}{START}system{END}\n\n{EOT}{START}user{END}\n{text}\n{EOT}{START}assistant{END}"


def bias_bench_inputs(lm, texts: Sequence[str]) -> tuple[list[str], ChatDecision]:
    """``texts`` as bias-bench's tokenizer call sees them for ``lm`` (wrapped for the Instruct model, else as
    they are), to be tokenised *with* special tokens, and the decision."""
    chat = bias_bench_chat(lm)
    return ([bias_bench_prompt(t) for t in texts] if chat.used else list(texts)), chat
