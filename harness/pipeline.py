"""Execute an experiment grid: load model → weight change → post-processing → benchmarks → records.

Runs that share (model, variant, seed) form a *group* and share one loaded, debiased model. Groups run
through joblib, so ``--jobs N`` parallelises on this machine and ``--backend dask --scheduler ADDR``
sends them to a dask.distributed cluster. Records already present (same config hash) are skipped.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import resource
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import ExperimentConfig, RunSpec, expand
from harness.errors import HarnessError
from harness.records import STATUS_NOT_APPLICABLE, RunRecord, is_complete, record_path, write_record

log = logging.getLogger(__name__)
BACKENDS = ("loky", "threading", "multiprocessing", "sequential", "dask")


@dataclass
class RunSummary:
    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    wall_time_s: float = 0.0


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _peak_memory_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def artifact_dir(results_dir: Path, spec: RunSpec) -> Path:
    """Large per-run outputs live beside the records: ``<results>/../artifacts/<same path as the record>``."""
    relative = record_path(results_dir, spec).relative_to(results_dir).with_suffix("")
    return results_dir.parent / "artifacts" / relative


def group_runs(specs: list[RunSpec]) -> list[list[RunSpec]]:
    groups: OrderedDict[tuple, list[RunSpec]] = OrderedDict()
    for spec in specs:
        groups.setdefault(spec.group_key, []).append(spec)
    return list(groups.values())


def execute_group(group: list[RunSpec], results_dir: str, progress: bool = True,
                  torch_threads: int | None = None) -> list[str]:
    """Load the group's model once, apply its variant, run each benchmark and write its record."""
    import torch

    from harness.api import RunContext
    from harness.models import load_model
    from harness.provenance import environment, git_state
    from harness.registry import get_benchmark
    from harness.variants import apply_variant, parse_variant, representation_blocked

    if torch_threads:
        torch.set_num_threads(torch_threads)
    first = group[0]
    seed_everything(first.seed)
    group_started = time.perf_counter()
    lm = load_model(first.model, device=first.device)
    ctx = RunContext(seed=first.seed, protocol=first.protocol, bias_type=first.bias_type,
                     batch_size=first.batch_size, cache_dir=Path(results_dir).parent / "cache", progress=progress)
    lm, steps_log = apply_variant(lm, parse_variant(first.variant, first.variant_options), ctx)
    variant_seconds = time.perf_counter() - group_started
    written = []
    for spec in group:
        benchmark = get_benchmark(spec.benchmark)(**spec.benchmark_options)
        seed_everything(spec.seed)
        ctx.datasets = {}
        ctx.artifact_dir = artifact_dir(Path(results_dir), spec)
        started_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        started = time.perf_counter()
        blocked = representation_blocked(steps_log) if benchmark.reads == "representations" else None
        if lm.kind not in benchmark.kinds or blocked:
            reason = blocked or f"{spec.benchmark} does not apply to {lm.kind} LMs"
            scores, details, status, protocol, artifacts = {}, {"reason": reason}, STATUS_NOT_APPLICABLE, spec.protocol, {}
        else:
            with torch.no_grad():
                result = benchmark.run(lm, ctx)
            scores, details, status = result.scores, result.details, "ok"
            protocol, artifacts = result.protocol or spec.protocol, result.artifacts
        record = RunRecord(
            model=spec.model, variant=spec.variant, benchmark=spec.benchmark, seed=spec.seed, protocol=protocol,
            bias_type=spec.bias_type, config=spec.full_config(), config_hash=spec.config_hash, scores=scores,
            status=status, details=details, datasets={k: v.provenance() for k, v in ctx.datasets.items()},
            model_origin=lm.origin, variant_steps=steps_log, environment=environment(), git=git_state(),
            started_at=started_at, wall_time_s=round(time.perf_counter() - started + variant_seconds / len(group), 3),
            peak_memory_mb=_peak_memory_mb(), artifacts=artifacts)
        written.append(str(write_record(Path(results_dir), spec, record)))
    return written


def _prefetch_zoo_models(specs: set[str]) -> None:
    """Unpack zoo models once, here, so parallel workers never race to build the same cache entry."""
    from harness.models.catalog import ZOO_PREFIX, model_catalog

    for spec in sorted(specs):
        if spec.startswith(ZOO_PREFIX):
            model_catalog().fetch(spec)


def run_experiment(config: ExperimentConfig, *, results_dir: str | Path | None = None, jobs: int = 1,
                   backend: str = "loky", scheduler: str | None = None, force: bool = False,
                   progress: bool = True, scheduler_timeout_s: float = 20.0) -> RunSummary:
    import joblib

    if backend not in BACKENDS:
        raise HarnessError(f"unknown backend '{backend}'", f"choose one of: {', '.join(BACKENDS)}")
    if backend == "dask" and not scheduler:
        raise HarnessError("backend 'dask' needs a scheduler address", "pass --scheduler tcp://HOST:PORT")
    if jobs < 1:
        raise HarnessError(f"--jobs must be at least 1, got {jobs}", "pass --jobs 1 or more")
    results = Path(results_dir or config.results_dir)
    summary = RunSummary()
    started = time.perf_counter()
    specs = expand(config)
    todo = []
    for spec in specs:
        if not force and is_complete(results, spec):
            summary.skipped.append(record_path(results, spec))
        else:
            todo.append(spec)
    groups = group_runs(todo)
    if not groups:
        summary.wall_time_s = round(time.perf_counter() - started, 3)
        return summary
    _prefetch_zoo_models({g[0].model for g in groups})
    threads = max(1, (os.cpu_count() or 1) // min(jobs, len(groups))) if jobs > 1 else None
    calls = [joblib.delayed(execute_group)(g, str(results), progress and jobs == 1, threads) for g in groups]
    if backend == "dask":
        try:
            from distributed import Client
        except ImportError:
            raise HarnessError("backend 'dask' needs the distributed package", "pip install 'dask[distributed]'") from None
        try:
            client = Client(scheduler, timeout=f"{scheduler_timeout_s}s")
        except (OSError, TimeoutError) as exc:
            raise HarnessError(f"cannot reach dask scheduler {scheduler} ({exc})", "start it with `dask scheduler` and check the address") from None
        with client, joblib.parallel_config(backend="dask"):
            outputs = joblib.Parallel(n_jobs=jobs)(calls)
    elif backend == "sequential" or (jobs == 1 and backend == "loky"):
        outputs = [execute_group(g, str(results), progress) for g in groups]
    else:
        outputs = joblib.Parallel(n_jobs=jobs, backend=backend)(calls)
    summary.written = [Path(p) for out in outputs for p in out]
    summary.wall_time_s = round(time.perf_counter() - started, 3)
    return summary


def describe_plan(config: ExperimentConfig, results_dir: Path | None = None) -> dict[str, Any]:
    results = Path(results_dir or config.results_dir)
    specs = expand(config)
    done = sum(is_complete(results, s) for s in specs)
    return {"runs": len(specs), "done": done, "groups": len(group_runs(specs))}
