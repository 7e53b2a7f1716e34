"""Attribute words (bias-bench's ``bias_attribute_words.json``) and counterfactual swaps.

Gender has pairs ``[male, female]``; race and religion have triples. A *two-sided* swap (CDA, Webster
et al. 2020; SentDebias' counterfactual sentences) replaces every attribute word by its counterpart:
for a pair the other word, for a triple a different member chosen at random. Matching is on whole
words and case-insensitive; the replacement takes the original's casing (``He`` → ``She``,
``HE`` → ``SHE``).
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from functools import lru_cache

from harness.errors import HarnessError

BIAS_TYPES = ("gender", "race", "religion")
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")


@lru_cache(maxsize=None)
def attribute_groups(bias_type: str) -> tuple[tuple[str, ...], ...]:
    """The word groups of ``bias_type`` (lower-case), read through the data catalog."""
    from harness.data.catalog import resolve

    path = resolve("bias-attribute-words").files["bias_attribute_words.json"]
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise HarnessError(f"cannot read attribute words {path} ({exc})", "restore the file from bias-bench") from None
    if bias_type not in raw or not raw[bias_type]:
        raise HarnessError(f"no attribute words for bias type '{bias_type}' in {path}",
                           f"choose one of: {', '.join(sorted(raw))}")
    return tuple(tuple(w.lower() for w in group) for group in raw[bias_type])


@dataclass(frozen=True)
class AttributeLexicon:
    """Word → (group index, position in group) for one bias type; a word in several groups keeps the first."""

    bias_type: str
    groups: tuple[tuple[str, ...], ...]

    @classmethod
    def load(cls, bias_type: str) -> "AttributeLexicon":
        return cls(bias_type, attribute_groups(bias_type))

    @property
    def n_classes(self) -> int:
        return len(self.groups[0])

    @property
    def index(self) -> dict[str, tuple[int, int]]:
        found: dict[str, tuple[int, int]] = {}
        for g, group in enumerate(self.groups):
            for position, word in enumerate(group):
                found.setdefault(word, (g, position))
        return found

    def words_of_class(self, position: int) -> list[str]:
        """All words at ``position`` of their group (gender: 0 = male words, 1 = female words)."""
        return sorted({group[position] for group in self.groups})

    def classes_in(self, text: str) -> set[int]:
        """Group positions (classes) of the attribute words that occur in ``text``."""
        index = self.index
        return {index[w.lower()][1] for w in _WORD.findall(text) if w.lower() in index}

    def contains(self, text: str) -> bool:
        index = self.index
        return any(w.lower() in index for w in _WORD.findall(text))

    def swap(self, text: str, rng: random.Random | None = None, *, to_class: int | None = None) -> str:
        """Replace every attribute word by a counterpart, keeping its casing.

        Pairs swap deterministically; for triples a different member is drawn from ``rng`` per word,
        unless ``to_class`` names the target position.
        """
        index, groups = self.index, self.groups
        rng = rng or random.Random(0)

        def replace(match: re.Match) -> str:
            word = match.group(0)
            hit = index.get(word.lower())
            if hit is None:
                return word
            group, position = hit
            if to_class is not None:
                target = to_class
            elif len(groups[group]) == 2:
                target = 1 - position
            else:
                target = rng.choice([p for p in range(len(groups[group])) if p != position])
            return match_case(groups[group][target], word)

        return _WORD.sub(replace, text)


def match_case(word: str, like: str) -> str:
    """``word`` with the casing pattern of ``like`` (lower, Title or UPPER)."""
    if like.isupper() and len(like) > 1:
        return word.upper()
    if like[:1].isupper():
        return word[:1].upper() + word[1:]
    return word
