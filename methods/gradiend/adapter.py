"""Method adapters ``gradiend`` (debias, BPI), ``gradiend-fpi`` and ``gradiend-mpi`` (strengthen a class).

All three share one trained GRADIEND per (model lineage, training options, seed, protocol, bias type):
it is cached in the harness's shared method cache, ``<cache>/methods/gradiend-shared/<key>``
(:meth:`harness.api.RunContext.shared_cache`; the folder's contents: :mod:`methods.gradiend.workflow`),
so a grid with the three variants trains once. Each variant then rewrites a copy of the model with its
selected update W + α·dec(h*) and records the selection in ``ctx.step_cache``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar

from harness.api import RunContext, WeightChangingMethod
from harness.atomic import write_json_atomic
from harness.config import SEED_MAX
from harness.models.interface import LanguageModel
from harness.options import Option
from harness.registry import register_method
from methods.gradiend.feature_spec import load_feature
from methods.gradiend.instruct import chat_format
from methods.gradiend.rewrite import rewrite
from methods.gradiend.training import SOURCES
from methods.gradiend.workflow import Settings, fit

TRAINING_OPTIONS = ("include", "exclude", "pre_prune", "post_prune", "seeds", "lr", "max_steps", "bf16", "pair",
                    "source", "target", "convergence", "min_convergent_seeds", "grid", "feature")
# 2: the reference convergence rule, per-seed data order, the paper's name-prediction objective and 240-candidate
#    grid with the unchanged model in the argmax, the reference's per-family learning rate
VERSION = 2
SHARED_NAMESPACE = "gradiend-shared"  # the trained GRADIEND's namespace in the shared method cache


def cache_payload(lm: LanguageModel, settings: Settings) -> dict:
    """Every training setting, the learning rate actually used and ``VERSION``; ``chat_template`` only for a model
    whose texts are wrapped in the reference's chat prompt (:mod:`methods.gradiend.instruct`), so an Instruct
    model's GRADIEND trained before the wrapping existed is not reused and every other key stays as it was."""
    payload = {"settings": settings.key_fields(), "lr": settings.learning_rate(lm), "version": VERSION}
    if chat_format(lm).used:
        payload["chat_template"] = "llama3-reference"
    return payload


def shared_folder(lm: LanguageModel, settings: Settings, ctx: RunContext) -> Path:
    """The trained GRADIEND's folder in the harness's shared method cache (:meth:`RunContext.shared_cache`),
    keyed by ``lm`` with its lineage and :func:`cache_payload`."""
    return ctx.shared_cache(SHARED_NAMESPACE, lm, cache_payload(lm, settings))


class _Gradiend(WeightChangingMethod):
    version = VERSION
    metric: ClassVar[str] = "bpi"
    options_spec: ClassVar[dict[str, Option]] = {
        # product: argmax metric·LMS (paper) | lms-threshold: LMS ≥ 0.99·base
        "rule": Option(str, "product", choices=("product", "lms-threshold")),
        # fnmatch patterns on full parameter names
        "include": Option(list, None, allow_none=True, items=Option(str, ""), min_items=1),
        "exclude": Option(list, None, allow_none=True, items=Option(str, ""), min_items=1),
        # fraction of weights kept (≥ 1: all), "auto" (fit the memory budget) or null (all)
        "pre_prune": Option(float, "auto", above=0, special=("auto",), allow_none=True),
        "post_prune": Option(float, None, above=0, allow_none=True),
        # at most SEED_MAX like the run seed, so the derived training seeds s + k·len(seeds) fit torch's 64 bits
        "seeds": Option(list, [0, 1, 2], items=Option(int, 0, minimum=0, maximum=SEED_MAX), min_items=1, unique=True),
        # null: the reference's rate for the family (1e-4 Llama architecture, else 1e-5)
        "lr": Option(float, None, above=0, allow_none=True),
        "max_steps": Option(int, None, minimum=1, allow_none=True),
        # reference: |r| ≥ 0.6, min |class mean| ≥ 0.5, opposite signs | iclr: best |r| of every seed
        "convergence": Option(str, "reference", choices=("reference", "iclr")),
        "min_convergent_seeds": Option(int, 1, minimum=1, allow_none=True),
        # paper: 15 h* × 16 α (240) | package: the gradiend package's 1-2-5 grid; null: the protocol's
        "grid": Option(str, None, choices=("paper", "package"), allow_none=True),
        "bf16": Option(bool, False),
        "pair": Option(list, [0, 1], items=Option(int, 0, minimum=0), min_items=2, max_items=2, unique=True),
        "source": Option(str, "factual", choices=SOURCES), "target": Option(str, "diff", choices=SOURCES),
        # a feature spec (shipped name or YAML path) instead of the grid's bias type
        "feature": Option(str, None, allow_none=True)}

    def __init__(self, **options):
        super().__init__(**options)
        if self.options["feature"] is None:
            del self.options["feature"]  # records made before the option existed keep their config hash
        else:
            load_feature(self.options["feature"])  # a bad spec fails when the config is read, not hours later

    def settings(self, ctx: RunContext) -> Settings:
        opts = {k: self.options.get(k) for k in TRAINING_OPTIONS}
        opts["seeds"], opts["pair"] = tuple(opts["seeds"]), tuple(opts["pair"])
        return Settings(bias_type=ctx.bias_type, protocol=ctx.method_protocol, seed=ctx.seed, **opts)

    def apply(self, lm: LanguageModel, ctx: RunContext) -> LanguageModel:
        settings = self.settings(ctx)
        folder = shared_folder(lm, settings, ctx)
        started = time.perf_counter()
        artefacts = fit(lm, settings, folder, progress=ctx.progress, batch_size=32)
        chosen = artefacts.selection[self.options["rule"]][self.metric]
        alpha, delta = artefacts.update(self.metric, self.options["rule"])
        out = rewrite(lm, artefacts.param_map, delta, alpha)
        summary = artefacts.summary
        spec = settings.feature_spec()
        self.notes = {"protocol": settings.protocol, "protocol_requested": ctx.protocol, "artefacts": str(folder),
                      "feature": {"name": spec.name, "source": spec.source, "sha256": spec.sha256},
                      "lr": settings.learning_rate(lm), "chat_template": chat_format(lm).note(),
                      "reused_cached_training": artefacts.cache_hit, "classes": summary.get("classes"),
                      "parameters": summary.get("parameters"), "data": summary.get("data"),
                      "selected_seed": summary["training"]["selected_seed"],
                      "converged": bool(summary["training"].get("converged", False)),
                      "convergence_rule": summary["training"].get("rule"), "seeds": summary["training"]["seeds"],
                      "seeds_not_trained": summary["training"].get("seeds_not_trained", []),
                      "encoder_test": summary.get("encoder"), "selection": chosen,
                      "selection_objective": artefacts.selection.get("objective"),
                      "selection_grid": artefacts.selection.get("grid"),
                      "seconds": {**summary.get("seconds", {}), "apply": round(time.perf_counter() - started, 2)}}
        if ctx.step_cache is not None:
            # a note for people (nothing reads it back, so it needs no checksum)
            write_json_atomic(Path(ctx.step_cache) / "selection.json", {"artefacts": str(folder), "selection": chosen})
        return out


@register_method("gradiend")
class GradiendBPI(_Gradiend):
    """Debias: the update maximising BPI (balanced class probabilities) under the selection rule."""

    metric = "bpi"


@register_method("gradiend-fpi")
class GradiendFPI(_Gradiend):
    """Strengthen the second class (gender: female)."""

    metric = "fpi"


@register_method("gradiend-mpi")
class GradiendMPI(_Gradiend):
    """Strengthen the first class (gender: male)."""

    metric = "mpi"
