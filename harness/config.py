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

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from harness import RECORD_SCHEMA_VERSION
from harness.errors import HarnessError

PROTOCOLS = ("cpu", "full")
BIAS_TYPES = ("gender", "race", "religion")


class Component(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class ExperimentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    models: list[str] = Field(min_length=1)
    variants: list[str | Component] = Field(default_factory=lambda: ["base"], min_length=1, validate_default=True)
    benchmarks: list[str | Component] = Field(min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    protocol: Literal["cpu", "full"] = "cpu"
    bias_type: Literal["gender", "race", "religion"] = "gender"
    results_dir: str = "results/runs"
    device: str = "cpu"
    batch_size: int = Field(default=64, ge=1)
    method_options: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("variants", "benchmarks")
    @classmethod
    def _normalise(cls, items: list[str | Component]) -> list[Component]:
        return [Component(name=i) if isinstance(i, str) else i for i in items]

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
                "device": self.device, "batch_size": self.batch_size}

    @property
    def config_hash(self) -> str:
        return config_hash(self.hashed_config())

    @property
    def group_key(self) -> tuple:
        """Runs sharing a key share one loaded (and possibly debiased) model."""
        return (self.model, self.variant, json.dumps(self.variant_options, sort_keys=True), self.seed,
                self.protocol, self.bias_type)


def config_hash(obj: Any) -> str:
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


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
    return f"key '{key}': {err['msg']}"


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
        raise HarnessError(f"config file '{path}' not found", "give the path to an experiment YAML, e.g. configs/demo.yaml")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise HarnessError(f"config {path} is not valid YAML{where} ({getattr(exc, 'problem', exc)})",
                           "fix the YAML syntax") from None
    return parse_config(raw, str(path))


def validate_names(config: ExperimentConfig, source: str) -> None:
    """Check benchmark, method and model names against the registries and the model catalog."""
    from harness.models.catalog import ZOO_PREFIX, model_catalog
    from harness.registry import benchmark_names, get_benchmark
    from harness.variants import parse_variant

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
            parse_variant(variant.name, variant.options)
        except HarnessError as exc:
            raise HarnessError(f"config {source}: key 'variants[{i}]': {exc.what}", exc.fix) from None
    for i, model in enumerate(config.models):
        if model.startswith(ZOO_PREFIX):
            try:
                model_catalog().entry(model)
            except HarnessError as exc:
                raise HarnessError(f"config {source}: key 'models[{i}]': {exc.what}", exc.fix) from None


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
            for seed in config.seeds:
                for bench in config.benchmarks:
                    benchmark = get_benchmark(bench.name)(**bench.options)
                    versions = {"benchmark": benchmark.version, "methods": method_versions}
                    specs.append(RunSpec(config.name, model, variant.name, variant_options, bench.name,
                                         benchmark.options, seed, config.protocol, config.bias_type, config.device,
                                         config.batch_size, {"versions": versions,
                                                             "execution_options": list(benchmark.execution_options)}))
    return specs
