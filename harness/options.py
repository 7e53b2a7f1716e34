"""Typed adapter options: every method and benchmark declares what it accepts, checked when a config is read.

An adapter sets ``options_spec``; its ``default_options`` are derived from it::

    @register_benchmark("lm-quality")
    class LMQuality(Benchmark):
        options_spec = {"n_sentences": Option(int, 1000, minimum=1),
                        "mask_fraction": Option(float, 0.15, above=0, maximum=1)}

:func:`harness.api.resolve_options` checks every given value against its :class:`Option` and raises a
one-line :class:`~harness.errors.HarnessError` naming the adapter, the option, the bad value and what is
allowed, so ``gradiend-bench run CONFIG --dry-run`` catches a bad value before any model loads.

Values are never converted: a valid value is kept exactly as given (``C: 1`` stays the integer 1), so
the config hash of every config that was valid before stays the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessError

_NOUNS = {int: "an integer", float: "a number", bool: "true or false", str: "a string", list: "a list"}
_PLURALS = {int: "integers", float: "numbers", bool: "booleans", str: "strings", list: "lists"}


def show(value: Any) -> str:
    """A value as a config author wrote it in YAML (true, null, 'text', 3)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _either(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


@dataclass(frozen=True)
class Option:
    """One option: its type, default and allowed values.

    ``type`` is ``int``, ``float`` (integers are accepted too), ``bool``, ``str`` or ``list``; booleans
    are never integers. Bounds: ``minimum``/``maximum`` inclusive, ``above``/``below`` exclusive.
    ``choices``: the allowed values of a string (or of each list item). ``special``: literal values
    accepted besides the typed ones (``"auto"``). A list checks each item against ``items`` and may
    require ``min_items``/``max_items``/``unique``; with ``comma_text`` it may also be given as ``"a,b"``.
    """

    type: type
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    below: float | None = None
    choices: tuple | None = None
    allow_none: bool = False
    special: tuple = ()
    items: "Option | None" = None
    min_items: int = 0
    max_items: int | None = None
    unique: bool = False
    comma_text: bool = False

    def allowed(self) -> str:
        """What the option accepts, in words: 'an integer ≥ 1 or null', 'one of: auto, true or false'."""
        if self.choices is not None and self.type is not list:
            literal = [show(c) if not isinstance(c, str) else c for c in (*self.special, *self.choices)]
            return "one of: " + _either(literal + (["null"] if self.allow_none else []))
        text = self._list_words() if self.type is list else self._typed_words(_NOUNS)
        extra = [show(s) if not isinstance(s, str) else s for s in self.special] + (["null"] if self.allow_none else [])
        return _either([text, *extra]) if extra else text

    def _typed_words(self, nouns: dict) -> str:
        bounds = [f"{sign} {_number(v)}" for sign, v in (("≥", self.minimum), (">", self.above),
                                                         ("≤", self.maximum), ("<", self.below)) if v is not None]
        return " ".join([nouns[self.type], " and ".join(bounds)]) if bounds else nouns[self.type]

    def _list_words(self) -> str:
        if self.min_items and self.max_items == self.min_items:
            head = f"a list of {self.min_items} "
        else:
            head = "a non-empty list of " if self.min_items == 1 else \
                f"a list of at least {self.min_items} " if self.min_items else "a list of "
        item = self.items._typed_words(_PLURALS) if self.items else "values"
        if self.choices is not None:
            item = "items from: " + ", ".join(map(str, self.choices))
        text = head + item
        if self.unique:
            text += ", each once"
        if self.comma_text:
            text += " (or one comma-separated string)"
        return text

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not allowed, or None when it is."""
        if value is None:
            return None if self.allow_none else "null is not allowed"
        if _member(value, self.special):
            return None
        if self.type is list:
            return self._list_problem(value)
        if self.choices is not None:
            return None if _member(value, self.choices) else "not an allowed value"
        if not _is_type(value, self.type):
            return f"not {_NOUNS[self.type]}"
        if self.type in (int, float):
            if isinstance(value, float) and not math.isfinite(value):
                return "not a finite number"
            for bound, ok in ((self.minimum, lambda b: value >= b), (self.maximum, lambda b: value <= b),
                              (self.above, lambda b: value > b), (self.below, lambda b: value < b)):
                if bound is not None and not ok(bound):
                    return "out of range"
        return None

    def _list_problem(self, value: Any) -> str | None:
        if isinstance(value, str) and self.comma_text:
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, (list, tuple)):
            return "not a list"
        if len(value) < self.min_items or (self.max_items is not None and len(value) > self.max_items):
            return f"{len(value)} item(s)"
        for item in value:
            if self.items is not None and self.items.problem(item) is not None:
                return f"item {show(item)} is {self.items.problem(item)}"
            if self.choices is not None and not _member(item, self.choices):
                return f"item {show(item)} is not an allowed value"
        if self.unique and len({show(v) for v in value}) != len(value):
            return "an item repeats"
        return None

    def check(self, kind: str, name: str, key: str, value: Any) -> None:
        """Raise a one-line HarnessError naming adapter, option, value and what is allowed."""
        problem = self.problem(value)
        if problem is None:
            return
        fix = f"choose {self.allowed()}" if self.choices is not None and self.type is not list else \
            f"use {self.allowed()}"
        if isinstance(value, str) and self.type in (int, float) and _parses_as_number(value):
            fix += f" (YAML reads {value} as text: write it with a decimal point, e.g. {_decimal_form(value)})"
        raise HarnessError(f"{kind} '{name}' option '{key}' is {show(value)} ({problem})", fix)


def _member(value: Any, allowed: tuple) -> bool:
    """``value in allowed`` without Python's 1 == True."""
    return any(value == a and type(value) is type(a) for a in allowed)


def _is_type(value: Any, kind: type) -> bool:
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _parses_as_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _decimal_form(text: str) -> str:
    mantissa, _, exponent = text.lower().partition("e")
    return f"{mantissa if '.' in mantissa else mantissa + '.0'}e{exponent}" if exponent else text


def defaults_of(spec: dict[str, Option]) -> dict[str, Any]:
    return {key: option.default for key, option in spec.items()}
