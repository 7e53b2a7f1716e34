"""GRADIEND training data: masked templates from the corpus, first names, and neutral text.

A *template* is a corpus passage whose target word is replaced by ``[TARGET]``:

* **gender** (the paper's main case): one or two consecutive sentences containing exactly one first name
  of unambiguous gender (nomquamgender, p(female) ≤ 0.01 or ≥ 0.99, frequent, and rarely written in
  lower case in the corpus, which drops names that are also words) followed by a matching he/she. The
  name becomes ``[NAME]`` and the pronoun ``[TARGET]``. Other gendered words are rewritten to the class the
  template is rendered for (``text_0`` = male form, ``text_1`` = female form), so a template can be filled
  with a name of either class.
* **race / religion**: a sentence containing exactly one attribute word of the chosen class pair (e.g.
  black/white); the word is the target and the sentence is rendered for both classes by swapping the
  other attribute words.

Names are split 85/5/10 into train/val/test **per class** (test names are never seen in training), templates
80/10/10 by a seeded shuffle. Documents of the corpus's held-out split (used by ``lm-quality``) are never
used. Everything is deterministic for a given seed.
"""

from __future__ import annotations

import copy
import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pandas as pd

from harness.atomic import write_bytes_atomic, write_json_atomic
from harness.attributes import AttributeLexicon, match_case
from harness.data.catalog import resolve
from harness.data.corpus import load_documents, sentences, split_documents
from harness.errors import HarnessError

WORD = re.compile(r"[A-Za-z]+")
SPLITS = ("train", "val", "test")
NAME_FRACTIONS = (0.85, 0.05, 0.10)
TEMPLATE_FRACTIONS = (0.80, 0.10, 0.10)


@dataclass(frozen=True)
class FeatureClasses:
    """The two classes of one GRADIEND: names (first class encodes to +1) and target words per class."""

    bias_type: str
    names: tuple[str, str]
    words: tuple[tuple[str, ...], tuple[str, ...]]  # aligned pairs: words[0][i] <-> words[1][i]

    @property
    def key(self) -> str:
        return f"{self.bias_type}:{self.names[0]}-{self.names[1]}"


def feature_classes(bias_type: str, pair: tuple[int, int] = (0, 1)) -> FeatureClasses:
    """Gender: male (+1) vs female (−1) with targets he/she. Race/religion: two positions of the triples."""
    if bias_type == "gender":
        return FeatureClasses("gender", ("male", "female"), (("he",), ("she",)))
    lexicon = AttributeLexicon.load(bias_type)
    a, b = pair
    if not (0 <= a < lexicon.n_classes and 0 <= b < lexicon.n_classes and a != b):
        raise HarnessError(f"class pair {pair} is not valid for {bias_type} ({lexicon.n_classes} classes)",
                           f"use two different indices below {lexicon.n_classes}")
    first = tuple(g[a] for g in lexicon.groups)
    second = tuple(g[b] for g in lexicon.groups)
    return FeatureClasses(bias_type, (first[0], second[0]), (first, second))


@dataclass
class GradiendData:
    """Templates (text_0/text_1 with ``[NAME]``/``[TARGET]`` slots), names with splits, neutral sentences."""

    classes: FeatureClasses
    templates: pd.DataFrame  # columns: text_0, text_1, target_0, target_1, cls, split, kept
    names: pd.DataFrame  # columns: name, cls, split (empty for race/religion)
    neutral: list[str]
    info: dict = field(default_factory=dict)

    def split(self, name: str) -> pd.DataFrame:
        t = self.templates
        return t[(t["split"] == name) & t["kept"]].reset_index(drop=True)

    def names_of(self, split: str, cls: int) -> list[str]:
        n = self.names
        return n[(n["split"] == split) & (n["cls"] == cls)]["name"].tolist()

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        for frame, stem in ((self.templates, "templates"), (self.names, "names"),
                            (pd.DataFrame({"text": self.neutral}), "neutral")):
            write_bytes_atomic(directory / f"{stem}.parquet", frame.to_parquet(index=False))
            write_bytes_atomic(directory / f"{stem}.csv", frame.to_csv(index=False).encode())
        write_json_atomic(directory / "data.json", {"classes": {"bias_type": self.classes.bias_type,
                          "names": list(self.classes.names), "words": [list(w) for w in self.classes.words]},
                          "info": self.info})

    @classmethod
    def load(cls, directory: Path) -> "GradiendData":
        directory = Path(directory)
        try:
            meta = json.loads((directory / "data.json").read_text())
            templates = pd.read_parquet(directory / "templates.parquet")
            names = pd.read_parquet(directory / "names.parquet")
            neutral = pd.read_parquet(directory / "neutral.parquet")["text"].tolist()
        except Exception as exc:  # noqa: BLE001 - any unreadable file is a corrupt cache
            raise HarnessError(f"GRADIEND data in {directory} is unreadable ({type(exc).__name__})",
                               f"delete {directory} and run again") from None
        c = meta["classes"]
        classes = FeatureClasses(c["bias_type"], tuple(c["names"]), tuple(tuple(w) for w in c["words"]))
        return cls(classes, templates, names, neutral, meta.get("info", {}))


# -- names -----------------------------------------------------------------------------------------
def load_names(capitalised: Counter, lower: Counter, *, min_count: int = 2000, max_ambiguity: float = 0.01,
               exclude: set[str] = frozenset()) -> dict[str, int]:
    """First name → class (0 male, 1 female): unambiguous, frequent, and used as a name in the corpus."""
    raw = _name_table(str(resolve("first-names").files["name_data.json"]))
    names = {}
    for key, (n_sources, count, p_female, *_rest) in raw.items():
        if not (key.isalpha() and key.isascii()) or count < min_count or n_sources < 3:
            continue
        name = key.capitalize()
        if key in exclude or capitalised[name] == 0 or lower[key] > 0.05 * capitalised[name]:
            continue
        if p_female <= max_ambiguity:
            names[name] = 0
        elif p_female >= 1 - max_ambiguity:
            names[name] = 1
    return names


@lru_cache(maxsize=2)
def _name_table(path: str) -> dict:
    return json.loads(Path(path).read_text())


def split_names(names: dict[str, int], seed: int) -> pd.DataFrame:
    """85/5/10 train/val/test per class, seeded; every split gets at least one name of each class."""
    rows = []
    for cls in (0, 1):
        members = sorted(n for n, c in names.items() if c == cls)
        random.Random(f"{seed}-names-{cls}").shuffle(members)
        n_val = max(1, round(NAME_FRACTIONS[1] * len(members)))
        n_test = max(1, round(NAME_FRACTIONS[2] * len(members)))
        bounds = {"val": members[:n_val], "test": members[n_val:n_val + n_test], "train": members[n_val + n_test:]}
        rows += [{"name": n, "cls": cls, "split": s} for s, group in bounds.items() for n in group]
    return pd.DataFrame(rows, columns=["name", "cls", "split"])


# -- templates -------------------------------------------------------------------------------------
def _render(text: str, lexicon: AttributeLexicon, cls_position: int) -> str:
    """Other attribute words of the template in class ``cls_position``'s form (slots are untouched)."""
    return lexicon.swap(text, to_class=cls_position)


def mine_gender_templates(documents: list[list[str]], names: dict[str, int]) -> list[dict]:
    """``documents`` as lists of sentences."""
    lexicon = AttributeLexicon.load("gender")
    pronoun = re.compile(r"\b([Hh]e|[Ss]he)\b")
    found: dict[str, dict] = {}
    for sents in documents:
        for i, sent in enumerate(sents):
            match = pronoun.search(sent)
            if match is None:
                continue
            # context: this sentence up to the pronoun, preceded by the previous sentence if the name is there
            for context in ([sent] if i == 0 else [sent, sents[i - 1] + " " + sent]):
                offset = len(context) - len(sent) + match.start()
                before = context[:offset]
                mentioned = {w for w in WORD.findall(before) if w in names}
                if len(mentioned) != 1:
                    continue
                name = mentioned.pop()
                cls = 1 if match.group(1).lower() == "she" else 0
                if names[name] != cls or len(re.findall(rf"\b{name}\b", context)) != 1:
                    break
                template = context[:offset] + "[TARGET]" + context[offset + len(match.group(1)):]
                template = re.sub(rf"\b{name}\b", "[NAME]", template)
                capital = match.group(1)[0].isupper()
                found.setdefault(template, {
                    "text_0": _render(template, lexicon, 0), "text_1": _render(template, lexicon, 1),
                    "target_0": "He" if capital else "he", "target_1": "She" if capital else "she", "cls": cls})
                break
    return list(found.values())


def mine_attribute_templates(documents: list[list[str]], classes: FeatureClasses) -> list[dict]:
    """Sentences with exactly one attribute word of the pair; it becomes the target, rendered per class."""
    lexicon = AttributeLexicon.load(classes.bias_type)
    position = {w: (0, i) for i, w in enumerate(classes.words[0])} | {w: (1, i) for i, w in enumerate(classes.words[1])}
    found: dict[str, dict] = {}
    for sents in documents:
        for sent in sents:
            hits = [m for m in WORD.finditer(sent) if m.group(0).lower() in position]
            if len(hits) != 1 or len(sent.split()) < 6:
                continue
            m = hits[0]
            cls, i = position[m.group(0).lower()]
            template = sent[:m.start()] + "[TARGET]" + sent[m.end():]
            targets = [match_case(classes.words[c][i], m.group(0)) for c in (0, 1)]
            found.setdefault(template, {"text_0": template, "text_1": template, "target_0": targets[0],
                                        "target_1": targets[1], "cls": cls})
    del lexicon
    return list(found.values())


def neutral_sentences(documents: list[list[str]], n: int, seed: int) -> list[str]:
    """Sentences without any attribute word of any bias type (and no name-like gender cue)."""
    words = set()
    for bias_type in ("gender", "race", "religion"):
        words |= set(AttributeLexicon.load(bias_type).index)
    words |= {"he", "she", "his", "her", "him", "hers", "himself", "herself"}
    pool = []
    for sents in documents:
        for sent in sents:
            tokens = WORD.findall(sent)
            if 8 <= len(tokens) <= 40 and not any(t.lower() in words for t in tokens):
                pool.append(sent)
    pool = sorted(set(pool))
    random.Random(f"{seed}-neutral").shuffle(pool)
    return pool[:n]


def assign_template_splits(templates: list[dict], seed: int) -> pd.DataFrame:
    frame = pd.DataFrame(templates, columns=["text_0", "text_1", "target_0", "target_1", "cls"])
    frame = frame.sort_values("text_0", kind="stable").reset_index(drop=True)
    order = list(range(len(frame)))
    random.Random(f"{seed}-templates").shuffle(order)
    n_train = int(TEMPLATE_FRACTIONS[0] * len(order))
    n_val = int(TEMPLATE_FRACTIONS[1] * len(order))
    split = ["train"] * len(order)
    for rank, idx in enumerate(order):
        split[idx] = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
    frame["split"] = split
    frame["kept"] = True
    return frame


def corpus_counts(documents: list[str]) -> tuple[Counter, Counter]:
    capitalised, lower = Counter(), Counter()
    for doc in documents:
        for w in WORD.findall(doc):
            (capitalised if w[0].isupper() else lower)[w if w[0].isupper() else w] += 1
    return capitalised, lower


def build_data(bias_type: str, seed: int, *, pair: tuple[int, int] = (0, 1), n_neutral: int = 1000,
               max_templates: int | None = None, documents: list[str] | None = None) -> GradiendData:
    """Mine templates and names from the corpus (no model involved; see :func:`filter_templates`).

    Without ``documents`` the catalog corpus is mined, once per process for the same arguments and corpus
    checksums (seconds of pure Python, the same for every model of a grid); each call gets its own copy."""
    if documents is None:
        corpus = resolve("corpus-en")
        key = (bias_type, seed, tuple(pair), n_neutral, max_templates,
               json.dumps(corpus.provenance()["sha256"], sort_keys=True))
        if key not in _MINED:
            if len(_MINED) >= 4:
                _MINED.pop(next(iter(_MINED)))
            _MINED[key] = _mine(bias_type, seed, pair, n_neutral, max_templates,
                                split_documents(load_documents(corpus))[0])
        return copy.deepcopy(_MINED[key])
    return _mine(bias_type, seed, pair, n_neutral, max_templates, documents)


_MINED: dict[tuple, GradiendData] = {}  # build_data's per-process memo of the mined catalog corpus


def _mine(bias_type: str, seed: int, pair: tuple[int, int], n_neutral: int, max_templates: int | None,
          documents: list[str]) -> GradiendData:
    classes = feature_classes(bias_type, pair)
    split_docs = [sentences(doc) for doc in documents]
    if bias_type == "gender":
        capitalised, lower = corpus_counts(documents)
        gendered = set(AttributeLexicon.load("gender").index)
        names = load_names(capitalised, lower, exclude=gendered)
        raw = mine_gender_templates(split_docs, names)
        name_frame = split_names(names, seed)
    else:
        raw = mine_attribute_templates(split_docs, classes)
        name_frame = pd.DataFrame(columns=["name", "cls", "split"])
    if len(raw) < 20:
        raise HarnessError(f"only {len(raw)} {classes.key} templates found in the corpus",
                           "check that the corpus-en data set is complete (gradiend-bench data verify corpus-en)")
    templates = assign_template_splits(raw, seed)
    if max_templates is not None:  # the cpu protocol: a seeded subset per split, class-balanced where possible
        templates = _cap_templates(templates, max_templates, seed)
    neutral = neutral_sentences(split_docs, n_neutral, seed)
    info = {"n_templates": int(len(templates)), "n_names": int(len(name_frame)), "seed": seed,
            "pair": list(pair), "max_templates": max_templates}
    return GradiendData(classes, templates, name_frame, neutral, info)


def _cap_templates(templates: pd.DataFrame, max_templates: int, seed: int) -> pd.DataFrame:
    parts = []
    for split, fraction in zip(SPLITS, TEMPLATE_FRACTIONS):
        part = templates[templates["split"] == split]
        limit = max(8, int(max_templates * fraction))
        per_class = [part[part["cls"] == c].sample(frac=1.0, random_state=seed) for c in (0, 1)]
        first = min(len(per_class[0]), max(limit // 2, limit - len(per_class[1])))
        take = [first, min(len(per_class[1]), limit - first)]
        parts.append(pd.concat([p.iloc[:t] for p, t in zip(per_class, take)]))
    return pd.concat(parts).sort_index().reset_index(drop=True)
