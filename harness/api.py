"""Base classes for adapters: benchmarks score a model, methods change or post-process it.

A benchmark module::

    @register_benchmark("seat")
    class SEAT(Benchmark):
        datasets = ("seat",)
        def run(self, lm, ctx) -> BenchmarkResult: ...

A method module::

    @register_method("inlp")
    class INLP(PostProcessingMethod):
        def fit(self, lm, ctx) -> Callable[[Tensor], Tensor]: ...   # the hidden-state hook
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Literal

from harness.data.catalog import ResolvedDataset, resolve
from harness.errors import HarnessError
from harness.models.interface import LanguageModel
from harness.options import Option, defaults_of

if TYPE_CHECKING:
    from harness.examples import Examples
    from harness.metrics import Metric

Protocol = Literal["cpu", "full", "finetune-lite", "probe"]


def resolve_options(kind: str, name: str, defaults: dict[str, Any], given: dict[str, Any],
                    spec: dict[str, Option] | None = None) -> dict[str, Any]:
    """Defaults overridden by ``given``; an option the adapter does not know, or a given value its
    :class:`~harness.options.Option` rejects, is a one-line error naming the option and the allowed values.
    Values are kept as given (never converted), so a valid config hashes as it always did."""
    unknown = set(given) - set(defaults)
    if unknown:
        raise HarnessError(f"{kind} '{name}' has no option(s) {', '.join(sorted(unknown))}",
                           f"allowed: {', '.join(sorted(defaults)) or '(none)'}")
    for key, value in given.items():
        if spec and key in spec:
            spec[key].check(kind, name, key, value)
    return {**defaults, **given}


def _derive_defaults(cls: type) -> None:
    """An adapter that declares ``options_spec`` gets ``default_options`` from it."""
    if "options_spec" in cls.__dict__:
        cls.default_options = defaults_of(cls.options_spec)


@dataclass
class Score:
    """A metric value with an optional confidence interval (``low``/``high``) and its sample size."""

    value: float
    low: float | None = None
    high: float | None = None
    n: int | None = None

    @property
    def margin(self) -> float | None:
        if self.low is None or self.high is None:
            return None
        return (self.high - self.low) / 2

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | float) -> "Score":
        if isinstance(raw, (int, float)):
            return cls(float(raw))
        return cls(**raw)

    def __post_init__(self):
        if not isinstance(self.value, (int, float)) or math.isnan(self.value):
            raise ValueError(f"score value must be a number, got {self.value!r}")


SCRATCH_CACHE = "gradiend-bench-cache"  # under the system temp folder: a shared cache without a cache_dir


def _methods_folder(root: Path | str, namespace: str, key: str) -> Path:
    """The one layout of method caches: ``<root>/methods/<namespace>/<key>``."""
    return Path(root) / "methods" / namespace / key


@dataclass(frozen=True)
class RunContext:
    """What an adapter may use during one run: options, seed, protocol, data and the caches.

    Frozen: the pipeline hands each variant step and each benchmark run its own copy
    (``dataclasses.replace``) instead of changing a context others hold. ``datasets`` is the one
    collector, filled by :meth:`data` for the run record.

    Method caches (one mechanism, both under ``<cache_dir>/methods/``, see docs/caching.md):

    * ``step_cache`` — this variant step's own folder, set by :func:`harness.variants.apply_variant`;
    * :meth:`shared_cache` — a folder several variants share (GRADIEND's training serves three).
    """

    seed: int = 0
    protocol: str = "cpu"
    bias_type: str = "gender"
    batch_size: int = 64
    cache_dir: Path | None = None  # the run cache (harness.pipeline.run_cache_dir); None: no caching
    artifact_dir: Path | None = None  # per-run folder for large outputs (predictions files, plots)
    progress: bool = True
    datasets: dict[str, ResolvedDataset] = field(default_factory=dict)
    step_cache: Path | None = None  # set by apply_variant for the method step being applied

    def data(self, name: str, files: list[str] | None = None) -> ResolvedDataset:
        """Resolve a catalog data set and remember its provenance for the run record."""
        resolved = resolve(name, files)
        self.datasets[name] = resolved
        return resolved

    @property
    def method_protocol(self) -> str:
        """Which of a method's ``PROTOCOL_SETTINGS`` rows applies: ``"full"`` under the full protocol, else
        ``"cpu"`` (also for protocols only some benchmarks define, e.g. GLUE's ``probe``)."""
        return "full" if self.protocol == "full" else "cpu"

    def method_folder(self, namespace: str, key: str) -> Path | None:
        """``<cache_dir>/methods/<namespace>/<key>``, or None without a cache directory."""
        return _methods_folder(self.cache_dir, namespace, key) if self.cache_dir else None

    def shared_cache(self, namespace: str, lm: LanguageModel, payload: dict[str, Any]) -> Path:
        """The folder for a result that several variants share: ``<cache_dir>/methods/<namespace>/<key>``, the
        key covering ``lm`` (weights and earlier steps) and ``payload``
        (:func:`harness.variants.method_cache_key`). Without a cache directory it lies under the system temp
        folder (``SCRATCH_CACHE``), since a method that shares its result needs somewhere to keep it."""
        from harness.variants import method_cache_key

        root = self.cache_dir or Path(tempfile.gettempdir()) / SCRATCH_CACHE
        return _methods_folder(root, namespace, method_cache_key(lm, payload))


@dataclass
class BenchmarkResult:
    scores: dict[str, Score]
    details: dict[str, Any] = field(default_factory=dict)
    protocol: str | None = None  # set when the benchmark ran a protocol other than the context's
    artifacts: dict[str, str] = field(default_factory=dict)
    per_example: "Examples | None" = None  # what the leaderboard resamples (stored in the record)


class Benchmark:
    """Scores a :class:`LanguageModel` (with its hooks active). Options come from the experiment config."""

    name: ClassVar[str]
    version: ClassVar[int] = 1  # bump when a change alters the numbers, so old records are not reused
    kinds: ClassVar[tuple[str, ...]] = ("masked", "causal")
    datasets: ClassVar[tuple[str, ...]] = ()
    options_spec: ClassVar[dict[str, Option]] = {}  # typed options (see harness.options); sets default_options
    default_options: ClassVar[dict[str, Any]] = {}
    headline: ClassVar[tuple[str, ...]] = ()  # the metrics a summary table shows (default: all)
    # what the metrics mean (ideal or direction, label, per-example statistic): see harness.metrics
    metrics: ClassVar[tuple["Metric", ...]] = ()
    # options that change speed or memory but never the numbers (batch sizes): left out of the config hash
    execution_options: ClassVar[tuple[str, ...]] = ()
    # what the scores are computed from: "predictions" (token log-probs) or "representations" (hidden
    # states). A variant whose post-processing only rewrites predictions (SelfDebias) is "not applicable"
    # to a representation benchmark.
    reads: ClassVar[Literal["predictions", "representations"]] = "predictions"
    # True for a benchmark that trains something (GLUE fine-tuning): the pipeline then leaves autograd on and
    # the benchmark scores under torch.no_grad() itself; False: the whole run is under torch.no_grad()
    trains: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        _derive_defaults(cls)

    def __init__(self, **options: Any):
        self.options = resolve_options("benchmark", self.name, self.default_options, options, self.options_spec)

    def run(self, lm: LanguageModel, ctx: RunContext) -> BenchmarkResult:
        raise NotImplementedError

    @classmethod
    def score_statistics(cls, examples: "Examples") -> dict[str, Callable]:
        """Record score key → the statistic ``f(arrays, w) -> [B]`` (:mod:`harness.stats`) that recomputes it from
        the record's per-example scores ``examples``. The cross-machine regression check pairs two runs through
        them (``leaderboard/cross_machine.py``). Default: the declared metrics' statistics; a benchmark adds its
        sub-scores (StereoSet per domain, CrowS-Pairs per direction, SEAT per test). Scores left out (e.g.
        permutation p-values) are checked against measured tolerances instead."""
        return {m.score: m.statistic for m in cls.metrics if m.statistic is not None}


class Method:
    """A debiasing method adapter; ``kind`` is ``"weight"`` (ΔW) or ``"post"`` (PP).

    ``acts_on`` says what it changes: ``"weights"`` (ΔW), ``"representations"`` (a hidden hook) or
    ``"predictions"`` (a prediction hook, see :mod:`harness.hooks`). During ``apply``/``fit``,
    ``ctx.step_cache`` is this step's artefact folder, keyed by the model it was fitted on (base model plus
    every earlier step) and by this step's options, seed, protocol and bias type; a result that other
    variants reuse goes to ``ctx.shared_cache(namespace, lm, payload)`` instead. ``self.notes`` goes into
    the run record.
    """

    name: ClassVar[str]
    version: ClassVar[int] = 1  # bump when a change alters the numbers, so old records are not reused
    kind: ClassVar[Literal["weight", "post"]]
    acts_on: ClassVar[Literal["weights", "representations", "predictions"]]
    # False for a method whose result ignores the seed: a grid with several seeds runs it (alone, or after
    # other seed-free steps) once, under its first seed, and the record says so (config.seed_dependent)
    seed_dependent: ClassVar[bool] = True
    options_spec: ClassVar[dict[str, Option]] = {}  # typed options (see harness.options); sets default_options
    default_options: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        _derive_defaults(cls)

    def __init__(self, **options: Any):
        self.options = resolve_options("method", self.name, self.default_options, options, self.options_spec)
        self.notes: dict[str, Any] = {}


class WeightChangingMethod(Method):
    kind = "weight"
    acts_on = "weights"

    def apply(self, lm: LanguageModel, ctx: RunContext) -> LanguageModel:
        """Return a new model with changed weights (never modify ``lm`` in place)."""
        raise NotImplementedError


class PostProcessingMethod(Method):
    kind = "post"
    acts_on = "representations"

    def fit(self, lm: LanguageModel, ctx: RunContext) -> Callable:
        """Fit on ``lm`` and return its hook: a hidden hook (``acts_on="representations"``, preferably a
        :class:`harness.hooks.AffineHook`) or a prediction hook (``acts_on="predictions"``)."""
        raise NotImplementedError
