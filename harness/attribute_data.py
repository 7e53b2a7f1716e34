"""Attribute sentence sets for the post-processing methods (INLP, LEACE, RLACE, SentDebias).

Built from the English corpus (:mod:`harness.data.corpus`), by default from its **training** side, so the
held-out documents stay unseen for evaluation (``split="heldout"`` gives the same construction on them).

* :func:`attribute_sentences` — bias-bench's INLP data (Meade et al. 2022, ``dataset/inlp.py``): sentences
  with only male words / only female words / no gender word (gender), or with any race/religion word
  vs none (race, religion; ``grouping="per-class"`` gives one class per group position instead). Up to
  ``n_per_class`` per class, drawn in a seeded shuffle, and *clipped* as in bias-bench: an attribute
  sentence is cut after a random word at or beyond its last attribute word, a neutral one after a random
  word from the fourth on. Unlike bias-bench the text keeps its casing (cased tokenizers see real text).
* :func:`counterfactual_sets` — SentDebias' sentences with attribute words and their counterfactual
  versions, one per class (every attribute word mapped to that class, casing kept).

Also the pieces the methods share: the bias-bench train/dev/test split, a fresh linear probe, and a
step cache for fitted affine hooks.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from harness.attributes import AttributeLexicon
from harness.errors import HarnessError

SPLITS = ("train", "heldout")
GROUPINGS = ("bias-bench", "per-class")
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")


@dataclass(frozen=True)
class AttributeSet:
    """Texts with integer labels indexing ``class_names``."""

    bias_type: str
    class_names: tuple[str, ...]
    texts: tuple[str, ...]
    labels: tuple[int, ...]
    split: str = "train"
    documents: tuple[int, ...] = ()  # corpus document index of each text

    def counts(self) -> dict[str, int]:
        found = np.bincount(np.asarray(self.labels, dtype=int), minlength=len(self.class_names))
        return {name: int(c) for name, c in zip(self.class_names, found)}

    def without(self, class_name: str) -> "AttributeSet":
        """The set with one class dropped and the others relabelled in order (RLACE: male vs female)."""
        if class_name not in self.class_names:
            return self
        drop = self.class_names.index(class_name)
        keep = [i for i, y in enumerate(self.labels) if y != drop]
        relabel = {old: new for new, old in enumerate(c for c in range(len(self.class_names)) if c != drop)}
        return AttributeSet(self.bias_type, tuple(n for n in self.class_names if n != class_name),
                            tuple(self.texts[i] for i in keep), tuple(relabel[self.labels[i]] for i in keep),
                            self.split, tuple(self.documents[i] for i in keep) if self.documents else ())


@dataclass(frozen=True)
class CounterfactualSet:
    """``tuples[i][c]`` is sentence i with every attribute word mapped to class ``c``."""

    bias_type: str
    class_names: tuple[str, ...]
    tuples: tuple[tuple[str, ...], ...]


@lru_cache(maxsize=2)
def sentence_split(split: str) -> tuple[tuple[str, int], ...]:
    """Unique corpus sentences (5–40 words) of one side of the fixed document split, each with the index
    of its document in :func:`~harness.data.corpus.load_documents` order (for document-grouped splits)."""
    from harness.data.corpus import is_heldout, load_documents, sentences

    if split not in SPLITS:
        raise HarnessError(f"unknown corpus split '{split}'", f"choose one of: {', '.join(SPLITS)}")
    found: dict[str, int] = {}
    for d, document in enumerate(load_documents()):
        if is_heldout(document) != (split == "heldout"):
            continue
        for sentence in sentences(document):
            if 5 <= len(sentence.split()) <= 40 and " -- " not in sentence:
                found.setdefault(sentence, d)
    return tuple(found.items())


def class_names(lexicon: AttributeLexicon, grouping: str = "bias-bench") -> tuple[str, ...]:
    if grouping not in GROUPINGS:
        raise HarnessError(f"unknown attribute grouping '{grouping}'", f"choose one of: {', '.join(GROUPINGS)}")
    if lexicon.bias_type == "gender":
        return ("male", "female", "neutral")
    if grouping == "bias-bench":
        return (lexicon.bias_type, "neutral")
    return (*lexicon.groups[0], "neutral")


def _label(lexicon: AttributeLexicon, text: str, grouping: str) -> int | None:
    """Class index of ``text`` (last class = neutral), or None for sentences bias-bench skips."""
    found = lexicon.classes_in(text)
    neutral = 2 if lexicon.bias_type == "gender" else (1 if grouping == "bias-bench" else lexicon.n_classes)
    if not found:
        return neutral
    if lexicon.bias_type != "gender" and grouping == "bias-bench":
        return 0
    return next(iter(found)) if len(found) == 1 else None  # both male and female words: skipped


def _clip(text: str, lexicon: AttributeLexicon, neutral: bool, rng: random.Random) -> str:
    """bias-bench's random prefix: neutral ≥ 4 words; attribute sentences keep their last attribute word."""
    words = text.split(" ")
    if neutral:
        return " ".join(words[:rng.randint(4, len(words))])
    index = lexicon.index
    last = max(i for i, w in enumerate(words) if any(m.lower() in index for m in _WORD.findall(w)))
    return " ".join(words[:rng.randint(last, len(words) - 1) + 1])


def attribute_sentences(bias_type: str, n_per_class: int, seed: int = 0, *, split: str = "train",
                        grouping: str = "bias-bench", clip: bool = True,
                        lexicon: AttributeLexicon | None = None) -> AttributeSet:
    """Up to ``n_per_class`` sentences per class, deterministic for ``seed`` (see the module docstring).

    A class with no sentence at all is an error naming the bias type (its attribute words never occur).
    """
    lexicon = lexicon or AttributeLexicon.load(bias_type)
    names = class_names(lexicon, grouping)
    pool = list(sentence_split(split))
    rng = random.Random(f"attribute-sentences/{bias_type}/{grouping}/{seed}")
    rng.shuffle(pool)
    per_class: list[list[tuple[str, int]]] = [[] for _ in names]
    for text, document in pool:
        label = _label(lexicon, text, grouping)
        if label is None or len(per_class[label]) >= n_per_class:
            continue
        kept = _clip(text, lexicon, label == len(names) - 1, rng) if clip else text
        per_class[label].append((kept, document))
        if all(len(c) >= n_per_class for c in per_class):
            break
    empty = [name for name, c in zip(names, per_class) if not c]
    if empty:
        raise HarnessError(f"no {split} corpus sentence has {bias_type} attribute words of class(es) "
                           f"{', '.join(empty)}", "check the bias type's words in bias_attribute_words.json")
    texts = tuple(t for c in per_class for t, _ in c)
    labels = tuple(i for i, c in enumerate(per_class) for _ in c)
    return AttributeSet(bias_type, names, texts, labels, split, tuple(d for c in per_class for _, d in c))


def counterfactual_sets(bias_type: str, n: int | None, seed: int = 0, *, split: str = "train",
                        lexicon: AttributeLexicon | None = None) -> CounterfactualSet:
    """Up to ``n`` (None: all) attribute-bearing sentences, each as one version per class."""
    lexicon = lexicon or AttributeLexicon.load(bias_type)
    pool = [s for s, _ in sentence_split(split) if lexicon.contains(s)]
    if not pool:
        raise HarnessError(f"no {split} corpus sentence contains a {bias_type} attribute word",
                           "check the bias type's words in bias_attribute_words.json")
    random.Random(f"counterfactual/{bias_type}/{seed}").shuffle(pool)
    pool = pool if n is None else pool[:n]
    tuples = tuple(tuple(lexicon.swap(s, to_class=c) for c in range(lexicon.n_classes)) for s in pool)
    names = ("male", "female") if bias_type == "gender" else tuple(lexicon.groups[0])
    return CounterfactualSet(bias_type, names, tuples)


# -- shared fitting helpers ----------------------------------------------------------------------
def _features_key(lm, texts: Sequence[str], max_length: int | None) -> str | None:
    """Hash of what determines the pooled features: weights (spec, checksums, lineage), the hidden hooks
    (affine ones by value; any other hook disables caching) and the texts. None = do not cache."""
    from harness.hooks import AffineHook
    from harness.keys import stable_digest
    from harness.variants import fitted_on

    digest = stable_digest({**fitted_on(lm), "max_length": max_length})
    for hook in lm.hooks:
        if not isinstance(hook, AffineHook):
            return None
        digest.update(hook.matrix.numpy().tobytes())
        digest.update(b"" if hook.bias is None else hook.bias.numpy().tobytes())
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
    return digest.hexdigest()[:24]


def encode(lm, texts: Sequence[str], ctx, *, max_length: int | None = None):
    """Mean-pooled last hidden states [N, H] (float32, hooks applied) of ``texts``, cached on disk under
    ``<ctx.cache_dir>/features/`` so INLP, LEACE and RLACE fitted on one model encode their data once.

    The Instruct model's texts are first wrapped in bias-bench's chat prompt (:func:`harness.models.chat.
    bias_bench_inputs`; bias-bench's INLP and SentDebias encodings), the mean then runs over the prompt's tokens
    too and ``max_length`` counts them, as bias-bench's; the key hashes the wrapped texts, so it changes for
    that model only."""
    import torch
    from safetensors.torch import load, save

    from harness.cache_entry import cached_file
    from harness.models.chat import bias_bench_inputs

    texts, _ = bias_bench_inputs(lm, texts)
    key = _features_key(lm, texts, max_length) if getattr(ctx, "cache_dir", None) else None
    if key is None:
        return lm.pooled(list(texts), batch_size=ctx.batch_size, max_length=max_length, progress=ctx.progress)

    def build() -> bytes:
        features = lm.pooled(list(texts), batch_size=ctx.batch_size, max_length=max_length, progress=ctx.progress)
        return save({"features": features.to(torch.float32).contiguous()})

    features, _ = cached_file(Path(ctx.cache_dir) / "features" / f"{key}.safetensors", build,
                              lambda data: load(data)["features"])
    return features


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Run small dense algebra (eigh, SVMs, probes on d ≤ ~1k) on one thread: barely slower on an idle
    machine, and 10–100× faster on a busy one, where multi-threaded BLAS/OpenMP spin-wait for cores."""
    import torch
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(threads)


def bias_bench_split(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index arrays (train, dev, test) = 49 / 21 / 30 % as bias-bench's INLP (two 70/30 splits)."""
    from sklearn.model_selection import train_test_split

    train_dev, test = train_test_split(np.arange(n), test_size=0.3, random_state=seed)
    train, dev = train_test_split(train_dev, test_size=0.3, random_state=seed)
    return train, dev, test


def majority_rate(labels: Sequence[int]) -> float:
    counts = np.bincount(np.asarray(labels, dtype=int))
    return float(counts.max() / counts.sum())


def probe_accuracy(x_train: np.ndarray, y_train: Sequence[int], x_test: np.ndarray, y_test: Sequence[int],
                   seed: int = 0) -> float:
    """Accuracy of a fresh multinomial logistic-regression probe.

    Features are divided by one global scale (their RMS on train), not standardised per coordinate:
    per-coordinate scaling would blow the ~1e-16 round-off left by a projection back up to unit variance
    and let the probe read the erased information from it.
    """
    from sklearn.linear_model import LogisticRegression

    x_train, x_test = np.asarray(x_train, dtype=np.float64), np.asarray(x_test, dtype=np.float64)
    mean = x_train.mean(0)
    scale = float(np.sqrt(((x_train - mean) ** 2).mean())) or 1.0
    probe = LogisticRegression(max_iter=3000, random_state=seed)
    with single_threaded():
        probe.fit((x_train - mean) / scale, np.asarray(y_train))
        return float(probe.score((x_test - mean) / scale, np.asarray(y_test)))


def cached_hook(step_cache: Path | None, fit: Callable[[], tuple[Any, dict[str, Any]]]) -> tuple[Any, dict[str, Any]]:
    """The :class:`~harness.hooks.AffineHook` saved in ``step_cache`` with its notes, else ``fit()`` and save.

    The folder (hook and notes) is one checksummed cache entry (:func:`harness.cache_entry.cached_folder`):
    verified on every load, refitted when corrupt, and fitted once when processes share the cache.
    """
    from harness.atomic import write_json_atomic
    from harness.cache_entry import cached_folder
    from harness.hooks import AffineHook

    if step_cache is None:
        hook, notes = fit()
        return hook, {**notes, "cache_hit": False}
    fitted: dict[str, Any] = {}

    def build(scratch: Path) -> None:
        fitted["hook"], fitted["notes"] = fit()
        fitted["hook"].write(scratch)
        write_json_atomic(scratch / "notes.json", fitted["notes"])

    def load(folder: Path) -> tuple[Any, dict[str, Any]]:
        if fitted:
            return fitted["hook"], fitted["notes"]
        return AffineHook.read(folder), json.loads((folder / "notes.json").read_text())  # verified by cached_folder

    (hook, notes), hit = cached_folder(Path(step_cache), build, load)
    return hook, {**notes, "cache_hit": hit}
