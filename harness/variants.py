"""Variants: ``base``, a single method (``inlp``) or a combination ``A+B`` (weight change, then post-processing).

A combination fits each step on the model the previous step produced, so ``cda+inlp`` fits INLP on
the CDA model. Weight-changing steps must come before post-processing ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessError

BASE = "base"


@dataclass(frozen=True)
class VariantStep:
    name: str
    kind: str  # "weight" or "post"
    options: dict[str, Any]


def parse_variant(name: str, options: dict[str, dict[str, Any]] | None = None) -> list[VariantStep]:
    """Split ``name`` into validated steps; ``options`` maps method name → its option overrides."""
    from harness.registry import get_method

    options = options or {}
    if not isinstance(name, str) or not name.strip():
        raise HarnessError("variant name is empty", "use 'base', a method name, or 'A+B'")
    if name == BASE:
        return []
    parts = [p.strip() for p in name.split("+")]
    if len(set(parts)) != len(parts) or BASE in parts:
        raise HarnessError(f"variant '{name}' repeats a method or contains 'base'", "list each method once, e.g. cda+inlp")
    steps = []
    for part in parts:
        cls = get_method(part)
        method_options = options.get(part, {})
        if not isinstance(method_options, dict):
            raise HarnessError(f"options for method '{part}' must be a mapping", "write e.g. {inlp: {iterations: 10}}")
        steps.append(VariantStep(part, cls.kind, dict(cls(**method_options).options)))
    kinds = [s.kind for s in steps]
    if "post" in kinds and "weight" in kinds[kinds.index("post"):]:
        raise HarnessError(f"variant '{name}' applies a weight-changing method after a post-processing one",
                           "put weight-changing methods first, e.g. cda+inlp, not inlp+cda")
    return steps


def apply_variant(lm, steps: list[VariantStep], ctx) -> tuple[Any, list[dict[str, Any]]]:
    """Run each step on the model the previous one produced; returns the model and a log for the record."""
    from harness.registry import get_method

    log = []
    for step in steps:
        method = get_method(step.name)(**step.options)
        if step.kind == "weight":
            lm = method.apply(lm, ctx)
        else:
            lm.add_hidden_hook(method.fit(lm, ctx))
        log.append({"method": step.name, "kind": step.kind, "options": step.options,
                    "notes": getattr(method, "notes", {})})
    return lm, log
