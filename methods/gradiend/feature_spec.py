"""A GRADIEND feature as data: two classes of target words, how templates are mined, how they are rendered.

A spec is a YAML file (shipped ones live in ``methods/gradiend/features/``; ``gender``, ``race`` and
``religion`` are the paper's bias types, ``number-3sg-3pl`` and ``person`` the gradiend package paper's
grammatical features)::

    name: number-3sg-3pl
    classes:                      # exactly two; the first class encodes to +1
      - {name: 3SG, words: [he, she, it]}
      - {name: 3PL, words: [they]}
    mining: word                  # word: a sentence with exactly one class word | name-pronoun: gender's names
    min_words: 6                  # shortest sentence mined (words)
    min_left_words: 5             # words before the target, at least
    next_words: [is, are, ...]    # the word after the target must be one of these (none: any word)
    render:                       # class-specific words, rewritten for the class a template is filled for
      scope: next-word            # next-word: the word after the target | template: every occurrence
      pairs: [[is, are], [was, were], [has, have], [does, do]]   # [first-class form, second-class form]
    objective: class-words        # decoder selection: class-words | name-prediction (the paper's gender task)
    corpus: corpus-en             # a data-catalog name
    splits: {train: 0.8, val: 0.1, test: 0.1}

``classes`` may instead be ``{lexicon: race}``: the attribute-word groups of bias-bench's
``bias_attribute_words.json``, of which the ``pair`` setting picks two positions (aligned word by word).
``render: {lexicon: gender}`` swaps every attribute word of that lexicon to the class's form.

The counterpart of a found word in the other class is the word at the same position when both classes
list equally many words, the other class's only word when it has one, and otherwise a draw weighted by the
other class's word frequencies in the corpus (as the gradiend package samples its alternatives,
aieng-lab/gradiend ``gradiend/trainer/core/unified_data.py``), seeded by the template.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from harness.config import read_yaml
from harness.errors import HarnessError

SHIPPED = Path(__file__).with_name("features")
SHIPPED_SOURCE = "methods/gradiend/features/"  # a shipped spec's ``source`` (the same on every machine)
MININGS = ("word", "name-pronoun")
OBJECTIVES = ("class-words", "name-prediction")
SCOPES = ("next-word", "template")
KEYS = ("name", "description", "classes", "mining", "min_words", "min_left_words", "next_words", "render",
        "objective", "corpus", "splits")
DEFAULT_SPLITS = (0.8, 0.1, 0.1)


@dataclass(frozen=True)
class ClassSpec:
    name: str
    words: tuple[str, ...]


@dataclass(frozen=True)
class Render:
    scope: str = "template"
    pairs: tuple[tuple[str, str], ...] = ()
    lexicon: str | None = None


@dataclass(frozen=True)
class FeatureSpec:
    """One feature. ``classes`` is empty when they come from ``lexicon`` (picked by the ``pair`` setting)."""

    name: str
    classes: tuple[ClassSpec, ...] = ()
    lexicon: str | None = None
    mining: str = "word"
    min_words: int = 0
    min_left_words: int = 0
    next_words: tuple[str, ...] | None = None
    render: Render | None = None
    objective: str = "class-words"
    corpus: str = "corpus-en"
    splits: tuple[float, float, float] = DEFAULT_SPLITS
    description: str = ""
    source: str = ""  # the file it was read from

    def canonical(self) -> dict:
        """Everything that determines the mined data (not the description or the file's location)."""
        render = None if self.render is None else {"scope": self.render.scope, "lexicon": self.render.lexicon,
                                                   "pairs": [list(p) for p in self.render.pairs]}
        return {"name": self.name, "classes": [{"name": c.name, "words": list(c.words)} for c in self.classes],
                "lexicon": self.lexicon, "mining": self.mining, "min_words": self.min_words,
                "min_left_words": self.min_left_words,
                "next_words": None if self.next_words is None else list(self.next_words), "render": render,
                "objective": self.objective, "corpus": self.corpus, "splits": list(self.splits)}

    @property
    def shipped(self) -> bool:
        return self.source.startswith(SHIPPED_SOURCE)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.canonical(), sort_keys=True).encode()).hexdigest()


def shipped_features() -> list[str]:
    return sorted(p.stem for p in SHIPPED.glob("*.yaml"))


def load_feature(name_or_path: str | Path) -> FeatureSpec:
    """A shipped spec by name (``gender``, ``number-3sg-3pl``, ...) or a YAML file by path."""
    text = str(name_or_path)
    shipped = text in shipped_features()
    path = SHIPPED / f"{text}.yaml" if shipped else Path(text)
    if not path.is_file():
        raise HarnessError(f"feature spec '{text}' is neither a shipped feature nor a file",
                           f"use one of {', '.join(shipped_features())} or the path of a YAML spec")
    raw = read_yaml(path, "feature spec")
    return parse_feature(raw, f"{SHIPPED_SOURCE}{text}.yaml" if shipped else str(path))


def parse_feature(raw: object, source: str = "<spec>") -> FeatureSpec:
    """Validate a spec mapping; every problem is one line naming ``source`` and the fix."""
    def fail(what: str, fix: str) -> HarnessError:
        return HarnessError(f"feature spec {source}: {what}", fix)

    if not isinstance(raw, dict):
        raise fail("is not a mapping", "write `name:` and `classes:` keys (see docs/gradiend-features.md)")
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise fail(f"unknown key '{unknown[0]}'", f"use only {', '.join(KEYS)}")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise fail("has no name", "add `name: my-feature`")
    classes, lexicon = _classes(raw.get("classes"), fail)
    mining = _choice(raw, "mining", "word", MININGS, fail)
    objective = _choice(raw, "objective", "class-words", OBJECTIVES, fail)
    if mining == "name-pronoun" and (lexicon or any(len(c.words) != 1 for c in classes)):
        raise fail("name-pronoun mining needs two classes of one pronoun each", "list one word per class")
    numbers = {}
    for key in ("min_words", "min_left_words"):
        value = raw.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise fail(f"{key} must be a non-negative integer, not {value!r}", f"write e.g. `{key}: 5`")
        numbers[key] = value
    next_words = raw.get("next_words")
    if next_words is not None:
        next_words = tuple(w.lower() for w in _words(next_words, "next_words", fail, "next_words"))
    corpus = raw.get("corpus", "corpus-en")
    if not isinstance(corpus, str):
        raise fail(f"corpus must be a data-catalog name, not {corpus!r}", "write e.g. `corpus: corpus-en`")
    _check_corpus(corpus, fail)
    return FeatureSpec(name.strip(), classes, lexicon, mining, numbers["min_words"], numbers["min_left_words"],
                       next_words, _render(raw.get("render"), fail), objective, corpus,
                       _splits(raw.get("splits"), fail), str(raw.get("description", "")).strip(), source)


def _check_corpus(name: str, fail) -> None:
    """The corpus must be a catalog data set of documents (``.txt`` files): checked when the spec is read, because
    the data step reads it only after the model has loaded (or been built, for a recipe zoo model)."""
    from harness.data.catalog import catalog

    entries = catalog().entries
    corpora = sorted(n for n, e in entries.items()
                     if any(f.endswith(".txt") and not f.upper().startswith(("LICENSE", "README")) for f in e.files))
    if name not in entries:
        raise fail(f"corpus '{name}' is not a data set of the data catalog",
                   f"use one of the catalog's corpora: {', '.join(corpora)} (`gradiend-bench data list`)")
    if name not in corpora:
        raise fail(f"corpus '{name}' has no .txt documents, so it is not a corpus",
                   f"use one of the catalog's corpora: {', '.join(corpora)}")


def _choice(raw: dict, key: str, default: str, allowed: tuple[str, ...], fail) -> str:
    value = raw.get(key, default)
    if value not in allowed:
        raise fail(f"{key} '{value}' is not known", f"use one of {', '.join(allowed)}")
    return value


def _words(value: object, where: str, fail, key: str) -> tuple[str, ...]:
    """``key`` (``words``, ``next_words``) of ``where`` as a list of single words."""
    if value is not None and not isinstance(value, list):  # `words: is` reads as the string "is", not as [is]
        shown = f"the string {value!r}" if isinstance(value, str) else repr(value)
        example = value if isinstance(value, str) and value.strip() else "a, b"
        owner = "" if where == key else f" of {where}"
        raise fail(f"key '{key}'{owner} must be a list of words, not {shown}", f"write `{key}: [{example}]`")
    if not value:
        raise fail(f"{where} has no words", f"give {where} a non-empty list of words")
    for word in value:
        if not isinstance(word, str) or not word.strip() or any(ch.isspace() for ch in word.strip()):
            raise fail(f"{where} has {word!r}, which is not one word", "list single words (no spaces)")
    return tuple(w.strip() for w in value)


def _classes(value: object, fail) -> tuple[tuple[ClassSpec, ...], str | None]:
    if isinstance(value, dict) and set(value) == {"lexicon"}:
        from harness.attributes import BIAS_TYPES

        if value["lexicon"] not in BIAS_TYPES:
            raise fail(f"lexicon '{value['lexicon']}' is not known", f"use one of {', '.join(BIAS_TYPES)}")
        return (), value["lexicon"]
    if not isinstance(value, list) or len(value) != 2:
        raise fail("needs exactly two classes", "list two entries under `classes:` (each `{name, words}`)")
    classes = []
    for i, entry in enumerate(value):
        if not isinstance(entry, dict) or set(entry) - {"name", "words"}:
            raise fail(f"class {i + 1} is not a `{{name, words}}` mapping", "write `- {name: A, words: [a, b]}`")
        cls_name = entry.get("name")
        if not isinstance(cls_name, str) or not cls_name:
            raise fail(f"class {i + 1} has no name", "give every class a `name:`")
        classes.append(ClassSpec(cls_name, _words(entry.get("words"), f"class '{cls_name}'", fail, "words")))
    shared = {w.lower() for w in classes[0].words} & {w.lower() for w in classes[1].words}
    if shared:
        raise fail(f"word '{sorted(shared)[0]}' is in both classes", "a word may belong to one class only")
    if classes[0].name == classes[1].name:
        raise fail(f"both classes are named '{classes[0].name}'", "give the classes different names")
    return tuple(classes), None


def _render(value: object, fail) -> Render | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"scope", "pairs", "lexicon"}:
        raise fail("render must be a mapping of scope, pairs or lexicon", "write e.g. `render: {lexicon: gender}`")
    scope = value.get("scope", "template")
    if scope not in SCOPES:
        raise fail(f"render scope '{scope}' is not known", f"use one of {', '.join(SCOPES)}")
    pairs = value.get("pairs", [])
    if not isinstance(pairs, list) or any(not isinstance(p, list) or len(p) != 2 for p in pairs):
        raise fail("render pairs must be [first-class form, second-class form] lists", "write `pairs: [[is, are]]`")
    lexicon = value.get("lexicon")
    if lexicon is not None and pairs:
        raise fail("render has both a lexicon and pairs", "use one of them")
    return Render(scope, tuple((str(a).lower(), str(b).lower()) for a, b in pairs), lexicon)


def _splits(value: object, fail) -> tuple[float, float, float]:
    if value is None:
        return DEFAULT_SPLITS
    if not isinstance(value, dict) or set(value) != {"train", "val", "test"}:
        raise fail("splits must give train, val and test", "write `splits: {train: 0.8, val: 0.1, test: 0.1}`")
    fractions = tuple(value[k] for k in ("train", "val", "test"))
    if any(not isinstance(f, (int, float)) or isinstance(f, bool) or f <= 0 for f in fractions) \
            or abs(sum(fractions) - 1) > 1e-9:
        raise fail(f"splits {fractions} are not positive fractions summing to 1", "e.g. 0.8, 0.1, 0.1")
    return tuple(float(f) for f in fractions)
