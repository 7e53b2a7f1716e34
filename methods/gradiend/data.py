"""GRADIEND training data for one feature spec: templates from the corpus, first names, and neutral text.

What a feature is (its two classes of target words, how templates are mined and rendered) is data: a
:class:`~methods.gradiend.feature_spec.FeatureSpec`, mined by :mod:`methods.gradiend.mining`. The paper's three
bias types are shipped specs on that code path:

* **gender** (the paper's main case): one or two consecutive sentences containing exactly one first name
  of unambiguous gender (nomquamgender, p(female) ≤ 0.01 or ≥ 0.99, frequent, and rarely written in
  lower case in the corpus, which drops names that are also words) followed by a matching he/she. The
  name becomes ``[NAME]`` and the pronoun ``[TARGET]``. Other gendered words are rewritten to the class the
  template is rendered for (``text_0`` = male form, ``text_1`` = female form), so a template can be filled
  with a name of either class.
* **race / religion**: a sentence containing exactly one attribute word of the chosen class pair (e.g.
  black/white); the word is the target.

Names are split 85/5/10 into train/val/test **per class** (test names are never seen in training), templates
by the spec's fractions (80/10/10) in a seeded shuffle. Documents of the corpus's held-out split (used by
``lm-quality``) are never used. Everything is deterministic for a given seed.
"""

from __future__ import annotations

import copy
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pandas as pd

from harness.atomic import write_bytes_atomic, write_json_atomic
from harness.attributes import AttributeLexicon
from harness.data.catalog import resolve
from harness.data.corpus import load_documents, sentences, split_documents
from harness.errors import HarnessError
from methods.gradiend.feature_spec import FeatureSpec, load_feature
from methods.gradiend.mining import WORD, mine_name_templates, mine_word_templates, neutral_sentences

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


def feature_classes(feature: str | FeatureSpec, pair: tuple[int, int] = (0, 1)) -> FeatureClasses:
    """The two classes of a feature spec (or a shipped spec's name): its listed classes, or for a lexicon
    (race, religion) the ``pair`` positions of the attribute-word groups (gender: male +1, female −1)."""
    spec = feature if isinstance(feature, FeatureSpec) else load_feature(feature)
    if not spec.lexicon:
        return FeatureClasses(spec.name, (spec.classes[0].name, spec.classes[1].name),
                              (spec.classes[0].words, spec.classes[1].words))
    lexicon = AttributeLexicon.load(spec.lexicon)
    a, b = pair
    if not (0 <= a < lexicon.n_classes and 0 <= b < lexicon.n_classes and a != b):
        raise HarnessError(f"class pair {tuple(pair)} is not valid for {spec.name} ({lexicon.n_classes} classes)",
                           f"use two different indices below {lexicon.n_classes}")
    first = tuple(g[a] for g in lexicon.groups)
    second = tuple(g[b] for g in lexicon.groups)
    return FeatureClasses(spec.name, (first[0], second[0]), (first, second))


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
def assign_template_splits(templates: list[dict], seed: int,
                           fractions: tuple[float, float, float] = TEMPLATE_FRACTIONS) -> pd.DataFrame:
    frame = pd.DataFrame(templates, columns=["text_0", "text_1", "target_0", "target_1", "cls"])
    frame = frame.sort_values("text_0", kind="stable").reset_index(drop=True)
    order = list(range(len(frame)))
    random.Random(f"{seed}-templates").shuffle(order)
    n_train = int(fractions[0] * len(order))
    n_val = int(fractions[1] * len(order))
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


def build_data(feature: str | FeatureSpec, seed: int, *, pair: tuple[int, int] = (0, 1), n_neutral: int = 1000,
               max_templates: int | None = None, documents: list[str] | None = None) -> GradiendData:
    """Mine templates and names for ``feature`` (a :class:`FeatureSpec`, a shipped spec's name such as
    ``gender`` or ``number-3sg-3pl``, or a spec file) — no model involved; see :func:`filter_templates`.

    Without ``documents`` the spec's catalog corpus is mined, once per process for the same arguments and corpus
    checksums (seconds of pure Python, the same for every model of a grid); each call gets its own copy."""
    spec = feature if isinstance(feature, FeatureSpec) else load_feature(feature)
    if documents is None:
        corpus = resolve(spec.corpus)
        key = (spec.sha256, seed, tuple(pair), n_neutral, max_templates,
               json.dumps(corpus.provenance()["sha256"], sort_keys=True))
        if key not in _MINED:
            if len(_MINED) >= 4:
                _MINED.pop(next(iter(_MINED)))
            _MINED[key] = _mine(spec, seed, pair, n_neutral, max_templates, split_documents(load_documents(corpus))[0])
        return copy.deepcopy(_MINED[key])
    return _mine(spec, seed, pair, n_neutral, max_templates, documents)


_MINED: dict[tuple, GradiendData] = {}  # build_data's per-process memo of the mined catalog corpus


def _mine(spec: FeatureSpec, seed: int, pair: tuple[int, int], n_neutral: int, max_templates: int | None,
          documents: list[str]) -> GradiendData:
    classes = feature_classes(spec, pair)
    split_docs = [sentences(doc) for doc in documents]
    if spec.mining == "name-pronoun":
        capitalised, lower = corpus_counts(documents)
        render = spec.render.lexicon if spec.render else None
        names = load_names(capitalised, lower, exclude=set(AttributeLexicon.load(render).index) if render else set())
        raw = mine_name_templates(split_docs, spec, names)
        name_frame = split_names(names, seed)
    else:
        positions = tuple(pair) if spec.lexicon else (0, 1)
        raw = mine_word_templates(split_docs, spec, classes.words, positions, seed)
        name_frame = pd.DataFrame(columns=["name", "cls", "split"])
    found = Counter(t["cls"] for t in raw)
    if len(raw) < 20 or min(found[0], found[1]) == 0:
        raise HarnessError(f"only {len(raw)} {classes.key} templates ({found[0]} {classes.names[0]}, {found[1]} "
                           f"{classes.names[1]}) found in the corpus {spec.corpus}",
                           f"check that the data set is complete (gradiend-bench data verify {spec.corpus}) or "
                           "relax the spec's mining rules")
    templates = assign_template_splits(raw, seed, spec.splits)
    if max_templates is not None:  # the cpu protocol: a seeded subset per split, class-balanced where possible
        templates = _cap_templates(templates, max_templates, seed, spec.splits)
    extra = {w.lower() for group in classes.words for w in group} if not spec.lexicon else set()
    neutral = neutral_sentences(split_docs, n_neutral, seed, extra)
    info = {"n_templates": int(len(templates)), "n_names": int(len(name_frame)), "seed": seed,
            "pair": list(pair), "max_templates": max_templates}
    if not spec.shipped:
        info["feature"] = {"name": spec.name, "source": spec.source, "sha256": spec.sha256}
    return GradiendData(classes, templates, name_frame, neutral, info)


def _cap_templates(templates: pd.DataFrame, max_templates: int, seed: int,
                   fractions: tuple[float, float, float] = TEMPLATE_FRACTIONS) -> pd.DataFrame:
    parts = []
    for split, fraction in zip(SPLITS, fractions):
        part = templates[templates["split"] == split]
        limit = max(8, int(max_templates * fraction))
        per_class = [part[part["cls"] == c].sample(frac=1.0, random_state=seed) for c in (0, 1)]
        first = min(len(per_class[0]), max(limit // 2, limit - len(per_class[1])))
        take = [first, min(len(per_class[1]), limit - first)]
        parts.append(pd.concat([p.iloc[:t] for p, t in zip(per_class, take)]))
    return pd.concat(parts).sort_index().reset_index(drop=True)
