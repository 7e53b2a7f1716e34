"""Templates mined from a corpus for one feature spec (:mod:`methods.gradiend.feature_spec`).

Two strategies:

* ``word`` — a sentence with exactly one word of either class (case-insensitive, whole words) that passes
  the spec's length, left-context and next-word rules. The word becomes ``[TARGET]``; ``target_c`` is its
  form in class ``c`` (the found word itself, or its counterpart) with the found word's casing.
* ``name-pronoun`` — the paper's gender data: one or two consecutive sentences with exactly one first name
  of unambiguous gender followed by a matching pronoun; the name becomes ``[NAME]``, the pronoun ``[TARGET]``.

``text_c`` is the template rendered for class ``c``: the spec's class-specific words in that class's form.
"""

from __future__ import annotations

import random
import re
from collections import Counter

from harness.attributes import AttributeLexicon, match_case
from harness.errors import HarnessError
from methods.gradiend.feature_spec import FeatureSpec

WORD = re.compile(r"[A-Za-z]+")
SLOT = "[TARGET]"


class Renderer:
    """Rewrites a template's class-specific words into one class's form (the slots stay)."""

    def __init__(self, spec: FeatureSpec, positions: tuple[int, int]):
        render = spec.render
        self.scope = render.scope if render else None
        self.lexicon = AttributeLexicon.load(render.lexicon) if render and render.lexicon else None
        self.positions = positions
        self.forms = {form: pair for pair in (render.pairs if render else ()) for form in pair}

    def __call__(self, template: str, cls: int) -> str:
        if self.lexicon is not None:
            return self.lexicon.swap(template, to_class=self.positions[cls])
        if not self.forms:
            return template
        if self.scope == "template":
            return WORD.sub(lambda m: self._form(m.group(0), cls), template)
        head, tail = template.split(SLOT, 1)
        nxt = WORD.search(tail)
        if nxt is None or tail[:nxt.start()].strip():
            return template
        return head + SLOT + tail[:nxt.start()] + self._form(nxt.group(0), cls) + tail[nxt.end():]

    def _form(self, word: str, cls: int) -> str:
        pair = self.forms.get(word.lower())
        return word if pair is None else match_case(pair[cls], word)


def cased(word: str, found: str, cased_words: set[str], at_start: bool) -> str:
    """``word`` in the casing of ``found``; a word the spec writes with capitals (``I``) keeps them, and
    a word replacing one is capitalised only at the start of a sentence."""
    if word in cased_words:
        return word
    if found in cased_words:
        return word[:1].upper() + word[1:] if at_start else word
    return match_case(word, found)


def mine_word_templates(documents: list[list[str]], spec: FeatureSpec, words: tuple[tuple[str, ...], ...],
                        positions: tuple[int, int], seed: int) -> list[dict]:
    """``documents`` as lists of sentences; ``words[c]`` the class words (lexicon classes: aligned)."""
    position = {w.lower(): (0, i) for i, w in enumerate(words[0])} | {w.lower(): (1, i) for i, w in enumerate(words[1])}
    cased_words = {w for group in words for w in group if w != w.lower()}
    renderer = Renderer(spec, positions)
    counts: Counter = Counter()
    hits = []
    for sents in documents:
        for sent in sents:
            found = [m for m in WORD.finditer(sent) if m.group(0).lower() in position]
            counts.update(m.group(0).lower() for m in found)
            if len(found) != 1 or len(sent.split()) < spec.min_words:
                continue
            m = found[0]
            if len(WORD.findall(sent[:m.start()])) < spec.min_left_words:
                continue
            if spec.next_words is not None:
                after = WORD.match(sent, m.end() + 1) if sent[m.end():m.end() + 1] == " " else None
                if after is None or after.group(0).lower() not in spec.next_words:
                    continue
            hits.append((sent, m))
    if not spec.lexicon:
        missing = [w for group in words for w in group if counts[w.lower()] == 0]
        if missing:
            raise HarnessError(f"feature spec {spec.source or spec.name}: word '{missing[0]}' never occurs in the "
                               f"corpus {spec.corpus}", "remove it from its class or mine another corpus")
    aligned = len(words[0]) == len(words[1])
    found_templates: dict[str, dict] = {}
    for sent, m in hits:
        cls, i = position[m.group(0).lower()]
        template = sent[:m.start()] + SLOT + sent[m.end():]
        targets = []
        for c in (0, 1):
            if c == cls or aligned:
                word = words[c][i]
            elif len(words[c]) == 1:
                word = words[c][0]
            else:  # the package's alternative: drawn by the other class's corpus frequencies, seeded
                rng = random.Random(f"{seed}-counterpart-{template}")
                word = rng.choices(words[c], weights=[counts[w.lower()] for w in words[c]])[0]
            targets.append(cased(word, m.group(0), cased_words, m.start() == 0))
        found_templates.setdefault(template, {"text_0": renderer(template, 0), "text_1": renderer(template, 1),
                                              "target_0": targets[0], "target_1": targets[1], "cls": cls})
    return list(found_templates.values())


def mine_name_templates(documents: list[list[str]], spec: FeatureSpec, names: dict[str, int]) -> list[dict]:
    """``documents`` as lists of sentences; ``names`` first name → class."""
    pronouns = [spec.classes[0].words[0], spec.classes[1].words[0]]
    pronoun = re.compile(r"\b(" + "|".join(f"[{p[0].upper()}{p[0]}]{p[1:]}" for p in pronouns) + r")\b")
    renderer = Renderer(spec, (0, 1))
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
                cls = 1 if match.group(1).lower() == pronouns[1] else 0
                if names[name] != cls or len(re.findall(rf"\b{name}\b", context)) != 1:
                    break
                template = context[:offset] + SLOT + context[offset + len(match.group(1)):]
                template = re.sub(rf"\b{name}\b", "[NAME]", template)
                found.setdefault(template, {
                    "text_0": renderer(template, 0), "text_1": renderer(template, 1),
                    "target_0": match_case(pronouns[0], match.group(1)),
                    "target_1": match_case(pronouns[1], match.group(1)), "cls": cls})
                break
    return list(found.values())


def neutral_sentences(documents: list[list[str]], n: int, seed: int, extra_words: set[str] = frozenset()) -> list[str]:
    """Sentences without any attribute word of any bias type, gendered pronoun or ``extra_words`` (the
    feature's class words)."""
    words = set(extra_words)
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
