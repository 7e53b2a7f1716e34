"""The English corpus as documents and sentences, with a fixed, order-independent held-out split.

A document belongs to the held-out split when the first 8 hex digits of sha256(salt + document) fall
below ``heldout_fraction`` of the range, so the split does not change when documents are added,
removed or reordered, and every consumer (evaluation, continued pre-training, GRADIEND data) agrees.
"""

from __future__ import annotations

import hashlib
import re
from typing import Iterable

from harness.data.catalog import ResolvedDataset, resolve

HELDOUT_FRACTION = 0.05
SPLIT_SALT = "gradiend-bench/corpus-split/v1"
_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"'\u201d\u2019)]))\s+(?=[\"'(\[\u201c]?[A-Z])")
_ABBREVIATION = re.compile(r"(?:\b(?:Mr|Mrs|Ms|Dr|Prof|St|Jr|Sr|Mt|Gen|Col|Lt|Sgt|Capt|Rev|Gov|Sen|Rep|No|vs|Inc|Ltd"
                           r"|Co)|\b[A-Z])\.$")


def load_documents(dataset: ResolvedDataset | None = None) -> list[str]:
    dataset = dataset or resolve("corpus-en")
    docs = []
    for name in sorted(dataset.files):
        if name.endswith(".txt"):
            docs.extend(line for line in dataset.files[name].read_text(encoding="utf-8").splitlines() if line.strip())
    return docs


def is_heldout(document: str, fraction: float = HELDOUT_FRACTION) -> bool:
    bucket = int(hashlib.sha256((SPLIT_SALT + document).encode("utf-8")).hexdigest()[:8], 16)
    return bucket < fraction * 0x100000000


def split_documents(documents: Iterable[str], fraction: float = HELDOUT_FRACTION) -> tuple[list[str], list[str]]:
    train, heldout = [], []
    for doc in documents:
        (heldout if is_heldout(doc, fraction) else train).append(doc)
    return train, heldout


def sentences(document: str) -> list[str]:
    """Split on sentence-final punctuation followed by a capitalised word, not after "Dr." or an initial."""
    pieces: list[str] = []
    for piece in _SENTENCE_END.split(document):
        if pieces and _ABBREVIATION.search(pieces[-1]):
            pieces[-1] += " " + piece
        else:
            pieces.append(piece)
    return [p.strip() for p in pieces if p.strip()]


def sentence_pool(documents: Iterable[str], min_words: int = 6, max_words: int = 40) -> list[str]:
    """Unique sentences of a reasonable length, in corpus order."""
    pool = {}
    for doc in documents:
        for sent in sentences(doc):
            if min_words <= len(sent.split()) <= max_words and " -- " not in sent:
                pool.setdefault(sent, None)
    return list(pool)
