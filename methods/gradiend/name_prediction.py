"""The paper's decoder-selection objective: which first name does the model predict for a stereotyped person?

Source: aieng-lab/gradiend-bias ``gradiend/evaluation/analyze_decoder.py``,
``evaluate_gender_bias_name_predictions`` (with ``evaluate_model``, which multiplies by LMS).

**Prompts.** GENTypes rows "My friend, [NAME], loves …". A masked LM reads the name slot as its mask token; a
causal LM gets the prompt rephrased to end right before the name — "The person, who loves …, has the first
name" — and its next-token distribution is read (the reference writes ``f"The person, who {rest}, …"`` with the
rest's leading space, i.e. two spaces after "who"; we write one). An instruction-tuned model
(:mod:`methods.gradiend.instruct`, Llama-3.2-3B-Instruct) gets the prompt as it is, ``[NAME]`` included, as the
user turn of the reference's chat prompt under its name system prompt (``system_prompt_name``, which explains the
placeholder), and the distribution of the answer's first token is read (``analyze_decoder.py`` l. 582–588,
645–681).

**Names.** Every vocabulary token t whose normalised form n(t) = lower(t) without the byte-level space marker
(Ġ) is a first name of class c counts for c with weight w_c(t) = p(c | name) — so "John", " John" and "john"
all count for a causal LM; a name counts only for its majority class, as in the reference's mapping
(``gender == "M"`` → ``prob_M``, ``gender == "F"`` → ``prob_F``).

**Scores.** For prompt i with next-token distribution p_i, P_M,i = Σ_t p_i(t)·w_M(t) and P_F,i likewise; then

    BPI_i = (1 − |P_M,i − P_F,i|)·(P_M,i + P_F,i)      MPI_i = (1 − P_F,i)·P_M,i      FPI_i = (1 − P_M,i)·P_F,i

and each metric is the mean over prompts (:func:`preference_scores`, shared with the class-word objective
of race/religion, where P is the probability of the class's word). The selection multiplies it by LMS.
All weights of a class form one column of a [V, 2] matrix, so a batch is scored with one matrix product.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import torch

from harness.errors import HarnessError
from harness.models.interface import LanguageModel
from methods.gradiend.gradients import SLOT, TargetBatch, make_batch
from methods.gradiend.instruct import NAME_PROMPT, chat_format

CLASSES = ("M", "F")  # the column order: first class (male, +1) then second (female, −1)


def normalise_token(token: str) -> str:
    """The reference's ``preprocess``: lower case, byte-level space markers removed, stripped."""
    return token.lower().replace("ġ", "").replace("Ġ", "").strip()


@dataclass
class NameWeights:
    """w_c(t) as a dense [V, 2] matrix (column 0: first class, 1: second) and what went into it."""

    matrix: torch.Tensor
    n_names: dict[str, int] = field(default_factory=dict)  # class -> names with at least one token
    n_tokens: dict[str, int] = field(default_factory=dict)  # class -> tokens counted


def name_weights(lm: LanguageModel, names: pd.DataFrame) -> NameWeights:
    """``names``: columns name, gender ("M"/"F") and prob (p(gender | name))."""
    mapping: dict[str, dict[str, float]] = {c: {} for c in CLASSES}
    for name, gender, prob in zip(names["name"], names["gender"], names["prob"]):
        if gender in mapping:
            mapping[gender][str(name).lower()] = float(prob)
    vocab = lm.tokenizer.get_vocab()
    matrix = torch.zeros(max(lm.vocab_size, max(vocab.values()) + 1), 2, dtype=torch.float64)
    used: dict[str, set[str]] = {c: set() for c in CLASSES}
    counts = {c: 0 for c in CLASSES}
    for token, index in vocab.items():
        key = normalise_token(token)
        for column, c in enumerate(CLASSES):
            if key in mapping[c]:
                matrix[index, column] = mapping[c][key]
                used[c].add(key)
                counts[c] += 1
    if min(counts.values()) == 0:
        raise HarnessError(f"no first name of some class is a token of {lm.spec} ({counts})",
                           "use a name list that overlaps the model's vocabulary")
    return NameWeights(matrix[: lm.vocab_size], {c: len(used[c]) for c in CLASSES}, counts)


def prompt_text(lm: LanguageModel, text: str) -> str:
    """A GENTypes prompt with the name slot as ``[TARGET]`` (masked), rephrased to end before it (causal), or as it
    is with the answer as the slot (instruction-tuned: the user turn of the chat prompt, :func:`make_batch`)."""
    if lm.kind == "masked":
        return text.replace("[NAME]", SLOT)
    if chat_format(lm).used:
        return text + SLOT
    rest = text.strip()
    for prefix in ("My friend, [NAME],", "[NAME],", "[NAME]"):
        if rest.startswith(prefix):
            rest = rest[len(prefix):]
            break
    return f"The person, who {rest.strip().removesuffix('.')}, has the first name {SLOT}"


def preference_scores(p_first: torch.Tensor, p_second: torch.Tensor) -> dict[str, float]:
    """Mean BPI, FPI, MPI over prompts from per-prompt class probabilities (first = M, second = F)."""
    a, b = p_first.double(), p_second.double()
    apd = (a - b).abs().clamp(0.0, 1.0)
    return {"p_first": float(a.mean()), "p_second": float(b.mean()),
            "bpi": float(((1 - apd) * (a + b)).mean()), "mpi": float(((1 - b) * a).mean()),
            "fpi": float(((1 - a) * b).mean())}


def _by_length(lm: LanguageModel, items: list, key=len) -> list:
    """Causal LMs: items sorted by length, so batches waste little work on padding (the scores are means over
    prompts, so order is free). Masked LMs keep their order: their numbers stay bit-identical to unsorted runs,
    and they are cheap."""
    return sorted(items, key=key) if lm.kind == "causal" else items


class NamePredictionObjective:
    """Per-prompt (P_M, P_F) of a model on the selection prompts, in batches, one matrix product each."""

    kind = "name-prediction"

    def __init__(self, lm: LanguageModel, prompts: list[str], weights: NameWeights, batch_size: int = 64):
        self._lm = lm
        texts = self.texts = _by_length(lm, [prompt_text(lm, t) for t in prompts])
        dummy = ["he"] * len(texts)  # make_batch wants target words; only the positions are used here
        self.batches: list[TargetBatch] = [make_batch(lm, texts[i:i + batch_size], dummy[i:i + batch_size],
                                                      dummy[i:i + batch_size], system=NAME_PROMPT)
                                           for i in range(0, len(texts), batch_size)]
        self.weights = weights.matrix.float().to(lm.device)  # multiplies the model's probabilities
        self.n_prompts = len(texts)
        self._source = (prompts, weights, batch_size)

    def subset(self, every: int) -> "NamePredictionObjective":
        """Every ``every``-th prompt (the prompt files alternate classes in blocks, so strides keep both)."""
        prompts, weights, batch_size = self._source
        return NamePredictionObjective(self._lm, prompts[::every], weights, batch_size)

    @torch.no_grad()
    def probabilities(self, lm: LanguageModel) -> tuple[torch.Tensor, torch.Tensor]:
        parts = []
        for b in self.batches:
            probs = torch.softmax(lm.logits(b.input_ids, b.attention_mask, (b.rows, b.cols)).float(), -1)
            parts.append(probs @ self.weights)
        both = torch.cat(parts)
        return both[:, 0], both[:, 1]


class ClassWordObjective:
    """Per-prompt probabilities of the two classes' target words (race/religion: the class-word objective)."""

    kind = "class-words"

    def __init__(self, lm: LanguageModel, texts: list[str], first: list[str], second: list[str],
                 batch_size: int = 64):
        order = _by_length(lm, list(range(len(texts))), key=lambda i: len(texts[i]))
        texts, first, second = ([seq[i] for i in order] for seq in (texts, first, second))
        self.batches = [make_batch(lm, texts[i:i + batch_size], first[i:i + batch_size], second[i:i + batch_size])
                        for i in range(0, len(texts), batch_size)]
        self.n_prompts = len(texts)
        self._source = (lm, texts, first, second, batch_size)

    def subset(self, every: int) -> "ClassWordObjective":
        lm, texts, first, second, batch_size = self._source
        return ClassWordObjective(lm, texts[::every], first[::every], second[::every], batch_size)

    @torch.no_grad()
    def probabilities(self, lm: LanguageModel) -> tuple[torch.Tensor, torch.Tensor]:
        p1, p2 = [], []
        for b in self.batches:
            logp = torch.log_softmax(lm.logits(b.input_ids, b.attention_mask, (b.rows, b.cols)).float(), -1)
            p1.append(logp.gather(1, b.factual[:, None]).squeeze(1).exp())
            p2.append(logp.gather(1, b.counterfactual[:, None]).squeeze(1).exp())
        return torch.cat(p1), torch.cat(p2)
