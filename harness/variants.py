"""Variants: ``base``, a single method (``inlp``) or a combination ``A+B`` (weight change, then post-processing).

A combination fits each step on the model the previous step produced, so ``cda+inlp`` fits INLP on
the CDA model. Weight-changing steps must come before post-processing ones.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from harness.errors import HarnessError
from harness.keys import stable_key

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
        raise HarnessError(f"variant '{name}' repeats a method or contains 'base'",
                           "list each method once, e.g. cda+inlp")
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


def model_identity(lm) -> dict[str, Any]:
    """What identifies the model ``lm`` was loaded as: its spec and content fingerprint
    (:func:`harness.models.fingerprint.identity`), without provenance, timings or the lineage."""
    from harness.models.fingerprint import identity

    return {"spec": lm.spec, **identity(lm.origin)}


def fitted_on(lm) -> dict[str, Any]:
    """What a result fitted on ``lm`` depends on from the model: the loaded weights and every step applied
    since (``lineage``) — the model part of every method cache key and of the pooled-feature key."""
    return {"model": model_identity(lm), "lineage": lm.origin.get("lineage", [])}


def method_cache_key(lm, payload: dict[str, Any]) -> str:
    """The 16-hex key of a method cache folder: ``payload`` (the method's own settings) plus :func:`fitted_on`
    ``lm``. Equal content gives the equal key whatever the dict order (:func:`harness.keys.stable_key`)."""
    clash = {"model", "lineage"} & set(payload)
    if clash:
        raise ValueError(f"a method cache payload may not set {sorted(clash)}: the key adds the model itself")
    return stable_key({**fitted_on(lm), **payload}, 16)


def step_cache_key(lm, step: VariantStep, method_version: int, ctx) -> str:
    """Hash of the model the step is applied to (base + earlier steps) and of the step's own settings."""
    return method_cache_key(lm, {"method": step.name, "version": method_version, "options": step.options,
                                 "seed": ctx.seed, "protocol": ctx.protocol, "bias_type": ctx.bias_type})


def apply_variant(lm, steps: list[VariantStep], ctx) -> tuple[Any, list[dict[str, Any]]]:
    """Run each step on the model the previous one produced; returns the model and a log for the record.

    Each step runs with its own copy of ``ctx`` whose ``step_cache`` is ``<cache>/methods/<name>/<key>``
    (:meth:`harness.api.RunContext.method_folder`); ``ctx`` itself is not changed. The key covers every
    earlier step, so ``cda+inlp`` never reuses the INLP projection fitted on the base model.
    """
    from harness.registry import get_method

    log = []
    for step in steps:
        method = get_method(step.name)(**step.options)
        key = step_cache_key(lm, step, method.version, ctx)
        step_ctx = replace(ctx, step_cache=ctx.method_folder(step.name, key))
        lineage = [*lm.origin.get("lineage", []), {"method": step.name, "key": key, "acts_on": method.acts_on}]
        if step.kind == "weight":
            lm = method.apply(lm, step_ctx)
        elif method.acts_on == "predictions":
            lm.add_prediction_hook(method.fit(lm, step_ctx))
        else:
            lm.add_hidden_hook(method.fit(lm, step_ctx))
        # A new dict: a post-processing step returns the same model object, whose origin may be shared.
        lm.origin = {**lm.origin, "lineage": lineage}
        log.append({"method": step.name, "kind": step.kind, "acts_on": method.acts_on, "options": step.options,
                    "cache_key": key, "notes": method.notes})
    return lm, log


def weights_identity(lm) -> str:
    """Hash of ``lm``'s weights' history (base model + weight-changing steps), ignoring hooks: benchmarks
    key feature caches on it, so post-processing variants of one model share the plain model's features."""
    payload = {"model": model_identity(lm),
               "weights": [e["key"] for e in lm.origin.get("lineage", []) if e.get("acts_on") == "weights"]}
    return stable_key(payload, 16)


def representation_blocked(steps_log: list[dict[str, Any]]) -> str | None:
    """Why a representation benchmark does not apply to this variant (a predictions-only step), else None."""
    for entry in steps_log:
        if entry.get("acts_on") == "predictions":
            return f"{entry['method']} only changes token predictions, not representations"
    return None
