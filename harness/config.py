"""Experiment configs: YAML data describing models × variants × benchmarks × seeds.

Example (``configs/demo.yaml``)::

    name: demo
    models: [zoo:bert-tiny]
    variants: [base]                 # or "inlp", "cda+inlp", or {name: inlp, options: {inlp: {...}}}
    benchmarks: [lm-quality]         # or {name: seat, options: {...}}
    seeds: [0]
    protocol: cpu

Validation errors name the bad key and the allowed values, in one line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from harness import RECORD_SCHEMA_VERSION
from harness.errors import HarnessError
from harness.keys import stable_key

PROTOCOLS = ("cpu", "full")
BIAS_TYPES = ("gender", "race", "religion")
DEVICE_PATTERN = re.compile(r"^(cpu|auto|mps|cuda(:\d+)?)$")
# The run seed goes as it is to numpy (np.random.seed) and scikit-learn (random_state), which take at most
# 2**32 − 1. The seeds methods derive from it — GRADIEND's training seeds s + k·len(seeds) and mask seeds k + i,
# CDA/Dropout's pre-training k + 1 and k + 7919 — go only to torch generators and random.Random, which take
# 64-bit seeds (or any string), so they stay in range under this bound (GRADIEND's own `seeds` have it too).
SEED_MAX = 2**32 - 1


def _seed_in_range(seed: int) -> int:
    if seed > SEED_MAX:
        raise ValueError(f"seed {seed} is above {SEED_MAX} (2**32 − 1), the largest seed numpy and scikit-learn take "
                         "(the seeds GRADIEND, CDA and Dropout derive from it stay within torch's 64-bit range "
                         f"below it); use a seed from 0 to {SEED_MAX}")
    return seed


# strict: YAML's `true` is not seed 1, "3" is not 3. A bound never changes a valid seed, so no config hash moves.
Seed = Annotated[int, Field(strict=True, ge=0), AfterValidator(_seed_in_range)]


class Component(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class FewerSeeds(BaseModel):
    """Cells that run under only some of the config's seeds, for their cost (the tables say which): the
    runs of ``benchmarks`` × ``models`` × ``variants`` ("weight-changing" = every variant with a weight step)
    keep only the seeds in ``seeds``. An unset list matches everything."""

    model_config = ConfigDict(extra="forbid")
    seeds: list[Seed] = Field(min_length=1)
    models: list[str] | None = None
    benchmarks: list[str] | None = None
    variants: Literal["all", "weight-changing"] | list[str] = "all"

    def matches(self, model: str, variant: str, benchmark: str, weight_changing: bool) -> bool:
        return ((self.models is None or model in self.models)
                and (self.benchmarks is None or benchmark in self.benchmarks)
                and (self.variants == "all" or (self.variants == "weight-changing" and weight_changing)
                     or (isinstance(self.variants, list) and variant in self.variants)))


class ExperimentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    models: list[str] = Field(min_length=1)
    variants: list[str | Component] = Field(default_factory=lambda: ["base"], min_length=1, validate_default=True)
    benchmarks: list[str | Component] = Field(min_length=1)
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1)
    protocol: Literal["cpu", "full"] = "cpu"
    bias_type: Literal["gender", "race", "religion"] = "gender"
    results_dir: str = "results/runs"
    device: str = "cpu"
    batch_size: int = Field(default=64, ge=1, strict=True)
    method_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    fewer_seeds: list[FewerSeeds] = Field(default_factory=list)

    @field_validator("variants", "benchmarks")
    @classmethod
    def _normalise(cls, items: list[str | Component], info: ValidationInfo) -> list[Component]:
        components = [Component(name=i) if isinstance(i, str) else i for i in items]
        # records are found by (model, variant, benchmark, seed): a name listed twice either computes the same runs
        # twice or, with other options, writes two records for each cell that no table can tell apart
        names = [c.name for c in components]
        repeated = next((n for n in names if names.count(n) > 1), None)
        if repeated is not None:
            where = " and ".join(f"{info.field_name}[{i}]" for i, n in enumerate(names) if n == repeated)
            kind = info.field_name[:-1]
            raise ValueError(f"{kind} '{repeated}' is listed twice ({where}); list each {kind} once (other options "
                             "of it belong in a second config)")
        return components

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        repeated = sorted({s for s in seeds if seeds.count(s) > 1})
        if repeated:
            raise ValueError(f"seed {repeated[0]} is listed twice (it would compute the same runs twice); "
                             "list each seed once")
        return seeds

    def component_list(self, key: str) -> list[Component]:
        return list(getattr(self, key))  # already normalised


@dataclass(frozen=True)
class RunSpec:
    """One (model, variant, benchmark, seed) cell of the grid with fully resolved options."""

    experiment: str
    model: str
    variant: str
    variant_options: dict[str, dict[str, Any]]
    benchmark: str
    benchmark_options: dict[str, Any]
    seed: int
    protocol: str
    bias_type: str
    device: str = "cpu"
    batch_size: int = 64
    extra: dict[str, Any] = field(default_factory=dict)

    def hashed_config(self) -> dict[str, Any]:
        """What determines the numbers (execution settings like batch size and device are not part of it)."""
        unhashed = set(self.extra.get("execution_options", ()))
        return {"schema": RECORD_SCHEMA_VERSION, "versions": self.extra.get("versions", {}),
                "model": self.model, "variant": self.variant,
                "variant_options": self.variant_options, "benchmark": self.benchmark,
                "benchmark_options": {k: v for k, v in self.benchmark_options.items() if k not in unhashed},
                "seed": self.seed, "protocol": self.protocol,
                "bias_type": self.bias_type}

    def full_config(self) -> dict[str, Any]:
        return {**self.hashed_config(), "benchmark_options": self.benchmark_options, "experiment": self.experiment,
                "device": self.device, "batch_size": self.batch_size,
                "seed_dependent": self.extra.get("seed_dependent", True)}

    @property
    def config_hash(self) -> str:
        return config_hash(self.hashed_config())

    @property
    def group_key(self) -> tuple:
        """Runs sharing a key share one loaded (and possibly debiased) model."""
        return (self.model, self.variant, json.dumps(self.variant_options, sort_keys=True), self.seed,
                self.protocol, self.bias_type)


def config_hash(obj: Any) -> str:
    """Full sha256 of the canonical JSON: names a run's record file, so it must never change value."""
    return stable_key(obj)


def _format_location(loc: tuple) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in ("str", "Component", "function-after[_normalise(), list[union[str,Component]]]"):
            continue
        else:
            text += ("." if text else "") + str(part)
    return text or "(top level)"


def _pydantic_message(exc: ValidationError) -> str:
    # for a str-or-mapping union, the mapping branch's error is the informative one when input is a mapping
    err = min(exc.errors(), key=lambda e: (e["type"] == "string_type", -len(e["loc"])))
    key = _format_location(tuple(p for p in err["loc"] if not str(p).startswith("function-")))
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = ", ".join(ExperimentConfig.model_fields) if "." not in key and "[" not in key else "name, options"
        return f"unknown key '{key}'; allowed keys: {allowed}"
    if kind == "missing":
        return f"missing required key '{key}'"
    if kind == "literal_error":
        return f"key '{key}' must be one of {err['ctx']['expected']}, got {err['input']!r}"
    if kind == "value_error":
        return f"key '{key}': {err['ctx']['error']}"
    return f"key '{key}': {err['msg']}, got {repr(err['input'])[:80]}"


def parse_config(raw: Any, source: str = "<config>") -> ExperimentConfig:
    if not isinstance(raw, dict):
        raise HarnessError(f"config {source} must be a YAML mapping, got {type(raw).__name__}",
                           "see configs/demo.yaml for the format")
    try:
        config = ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        raise HarnessError(f"config {source}: {_pydantic_message(exc)}", "see configs/demo.yaml") from None
    validate_names(config, source)
    return config


def load_config(path: str | Path) -> ExperimentConfig:
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"config file '{path}' not found",
                           "give the path to an experiment YAML, e.g. configs/demo.yaml")
    return parse_config(read_yaml(path, "config"), str(path))


def read_yaml(path: Path, what: str) -> Any:
    """The YAML document in ``path``; a syntax error or an unreadable file is one line naming ``what`` (e.g.
    "config", "feature spec"), the file and, for syntax, the line."""
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise HarnessError(f"{what} {path} is not valid YAML{where} ({getattr(exc, 'problem', exc)})",
                           "fix the YAML syntax") from None
    except OSError as exc:
        raise HarnessError(f"cannot read {what} {path} ({exc.strerror or exc})",
                           "check the path and its permissions") from None


def validate_names(config: ExperimentConfig, source: str) -> None:
    """Check names against the registries and the model catalog, every option against its adapter's
    declaration (:mod:`harness.options`) and the device, so that ``--dry-run`` finds every bad value."""
    from harness.models.catalog import ZOO_PREFIX, model_catalog
    from harness.registry import benchmark_names, get_benchmark, get_method, method_names
    from harness.variants import parse_variant

    used_methods = {part.strip() for v in config.variants for part in v.name.split("+")}
    for method, options in config.method_options.items():
        key = f"config {source}: key 'method_options.{method}'"
        if method not in method_names():
            raise HarnessError(f"{key}: unknown method '{method}'", f"use one of: {', '.join(method_names())}")
        if method not in used_methods:
            raise HarnessError(f"{key}: no variant uses method '{method}', so these options would be ignored",
                               f"remove the entry or add a variant with {method} (variants: "
                               f"{', '.join(v.name for v in config.variants)})")
        try:
            get_method(method)(**options)
        except HarnessError as exc:
            raise HarnessError(f"{key}: {exc.what}", exc.fix) from None
    for i, bench in enumerate(config.benchmarks):
        if bench.name not in benchmark_names():
            raise HarnessError(f"config {source}: key 'benchmarks[{i}]': unknown benchmark '{bench.name}'",
                               f"allowed values: {', '.join(benchmark_names())}")
        try:
            get_benchmark(bench.name)(**bench.options)
        except HarnessError as exc:
            raise HarnessError(f"config {source}: key 'benchmarks[{i}].options': {exc.what}", exc.fix) from None
    for i, variant in enumerate(config.variants):
        try:
            steps = parse_variant(variant.name, {**config.method_options, **variant.options})
        except HarnessError as exc:
            raise HarnessError(f"config {source}: key 'variants[{i}]': {exc.what}", exc.fix) from None
        stray = sorted(set(variant.options) - {step.name for step in steps})
        if stray:
            raise HarnessError(f"config {source}: key 'variants[{i}].options': variant '{variant.name}' has no "
                               f"method {', '.join(stray)}", "key the options by a method of the variant, "
                               f"e.g. {{{(steps[0].name if steps else 'inlp')}: {{...}}}}")
    for i, model in enumerate(config.models):
        try:
            if model.startswith(ZOO_PREFIX):
                model_catalog().entry(model)
            else:
                check_local_model(model)
        except HarnessError as exc:
            raise HarnessError(f"config {source}: key 'models[{i}]': {exc.what}", exc.fix) from None
    check_device(config.device, source)
    check_fewer_seeds(config, source)


def check_fewer_seeds(config: ExperimentConfig, source: str) -> None:
    """Each ``fewer_seeds`` rule names only the config's own models, variants, benchmarks and seeds (a typo
    would otherwise silently match nothing and run every seed)."""
    listed = {"models": list(config.models), "variants": [v.name for v in config.variants],
              "benchmarks": [b.name for b in config.benchmarks], "seeds": list(config.seeds)}
    for i, rule in enumerate(config.fewer_seeds):
        for key, allowed in listed.items():
            given = getattr(rule, key)
            if not isinstance(given, list):
                continue
            stray = [x for x in given if x not in allowed]
            if stray:
                raise HarnessError(f"config {source}: key 'fewer_seeds[{i}].{key}': {stray[0]!r} is not in the "
                                   f"config's {key}", f"use one of: {', '.join(map(str, allowed))}")


def check_local_model(model: str) -> None:
    """A model that names a path must be a save_pretrained folder; '..' or '.' never are one (they would
    also turn into record folders outside the results folder)."""
    path = Path(model).expanduser()
    path_like = model.startswith((".", "/", "~")) or path.exists()
    if not path_like:
        return  # a hub id (org/name): resolved when the model loads
    if not path.is_dir():
        raise HarnessError(f"model '{model}' is neither a zoo name, a model folder nor a hub id",
                           "use zoo:bert-tiny, a save_pretrained folder, or org/name")
    if not (path / "config.json").is_file():
        raise HarnessError(f"model folder '{model}' has no config.json", "point to a folder written by save_pretrained")


def check_device(device: str, source: str, *, key: str | None = None) -> None:
    """cpu, auto, mps, cuda or cuda:N — and the accelerator must be there now, not only after the model loaded.
    ``key`` names the input in the error (default: the config's ``device`` key)."""
    key = key or f"config {source}: key 'device'"
    if not DEVICE_PATTERN.match(device):
        raise HarnessError(f"{key}: unknown device {device!r}", "use cpu, cuda, cuda:N, mps or auto")
    import torch

    if device.startswith("cuda"):
        available = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.partition(":")[2] or 0)
        if index >= available:
            raise HarnessError(f"{key}: {device} is not available here ({available} CUDA device(s) visible)",
                               "use device: cpu (or auto), or run on a machine with a GPU and a CUDA build of torch")
    if device == "mps" and not torch.backends.mps.is_available():
        raise HarnessError(f"{key}: mps is not available here", "use device: cpu (or auto)")


def expand(config: ExperimentConfig) -> list[RunSpec]:
    """The grid in a stable order: model, variant, seed, benchmark."""
    from harness.registry import get_benchmark, get_method
    from harness.variants import parse_variant

    specs = []
    for model in config.models:
        for variant in config.variants:
            steps = parse_variant(variant.name, {**config.method_options, **variant.options})
            variant_options = {step.name: step.options for step in steps}
            method_versions = {step.name: get_method(step.name).version for step in steps}
            # a variant whose every step ignores the seed (and the base model) runs once, under the first seed
            seeded = any(get_method(step.name).seed_dependent for step in steps)
            weight_changing = any(step.kind == "weight" for step in steps)
            for seed in config.seeds if seeded else config.seeds[:1]:
                for bench in config.benchmarks:
                    if seeded and any(rule.matches(model, variant.name, bench.name, weight_changing)
                                      and seed not in rule.seeds for rule in config.fewer_seeds):
                        continue
                    benchmark = get_benchmark(bench.name)(**bench.options)
                    versions = {"benchmark": benchmark.version, "methods": method_versions}
                    specs.append(RunSpec(config.name, model, variant.name, variant_options, bench.name,
                                         benchmark.options, seed, config.protocol, config.bias_type, config.device,
                                         config.batch_size, {"versions": versions, "seed_dependent": seeded,
                                                             "execution_options": list(benchmark.execution_options)}))
    return specs
