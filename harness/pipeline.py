"""Execute an experiment grid: load model → weight change → post-processing → benchmarks → records.

Runs that share (model, variant, seed) form a *group* and share one loaded, debiased model. Groups run
through joblib, so ``--jobs N`` parallelises on this machine and ``--backend dask --scheduler ADDR``
sends them to a dask.distributed cluster. Records already present (same config hash) are skipped; each
record is computed under a file lock, so concurrent runs on one results folder compute it once, and local
workers exit when the run process dies (see docs/robustness.md).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import resource
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.config import ExperimentConfig, RunSpec, expand
from harness.errors import HarnessError
from harness.locks import file_lock
from harness.records import STATUS_NOT_APPLICABLE, RunRecord, is_complete, record_path, write_record

log = logging.getLogger(__name__)
BACKENDS = ("loky", "threading", "multiprocessing", "sequential", "dask")
# distributed's comm schemes; an address without one is tcp (distributed.comm.addressing)
SCHEDULER_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx", "inproc")
# The run cache (method fits, pooled features); distinct from GRADIEND_BENCH_CACHE (downloads: models, data, wheels)
RUN_CACHE_ENV = "GRADIEND_BENCH_RUN_CACHE"
ARTIFACTS_ENV = "GRADIEND_BENCH_ARTIFACTS"


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


def default_cache_dir(results_dir: Path) -> Path:
    """The run cache when none is chosen: ``<results>/../cache``, beside the records folder (kept as given, not
    resolved, so the paths in method notes read as they always did). Record locks always live here."""
    return Path(results_dir).parent / "cache"


def run_cache_dir(results_dir: Path, given: str | Path | None = None) -> Path:
    """Where a run keeps method fits and pooled features (docs/caching.md): ``given`` (``run --cache``), else
    ``$GRADIEND_BENCH_RUN_CACHE``, else :func:`default_cache_dir`. Entries are content-keyed, so any results
    folders may share one cache; the run record names the one used (``environment.cache_dir``)."""
    chosen = given or os.environ.get(RUN_CACHE_ENV)
    return Path(chosen).expanduser() if chosen else default_cache_dir(results_dir)


def artifacts_root(results_dir: Path, given: str | Path | None = None) -> Path:
    """Where large per-run outputs go (docs/caching.md): ``given`` (``run --artifacts``), else
    ``$GRADIEND_BENCH_ARTIFACTS``, else ``<results>/../artifacts`` beside the records folder."""
    chosen = given or os.environ.get(ARTIFACTS_ENV)
    return Path(chosen).expanduser() if chosen else Path(results_dir).parent / "artifacts"


def artifact_dir(results_dir: Path, spec: RunSpec, root: str | Path | None = None) -> Path:
    """One run's folder for large outputs: ``<artifacts root>/<the record's path without .json>``."""
    relative = record_path(results_dir, spec).relative_to(results_dir).with_suffix("")
    return Path(root or artifacts_root(results_dir)) / relative


def check_run_flags(jobs: int = 1, backend: str = "loky", scheduler: str | None = None) -> None:
    """``--jobs``, ``--backend`` and ``--scheduler`` (``run_experiment``'s jobs, backend and scheduler): checked by
    ``run`` before it prints the plan (so ``--dry-run`` finds a bad one) and again by :func:`run_experiment`."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise HarnessError(f"--jobs must be an integer ≥ 1, got {jobs!r}", "pass --jobs 1 or more")
    if backend not in BACKENDS:
        raise HarnessError(f"unknown backend '{backend}'", f"choose one of: {', '.join(BACKENDS)}")
    if backend == "dask" and not scheduler:
        raise HarnessError("backend 'dask' needs a scheduler address", "pass --scheduler tcp://HOST:PORT")
    if scheduler and backend != "dask":
        raise HarnessError(f"--scheduler {scheduler} is only read by --backend dask, but the backend is '{backend}'",
                           "add --backend dask, or drop --scheduler")
    if scheduler:
        check_scheduler_address(scheduler)


def check_scheduler_address(address: str) -> None:
    """A dask scheduler address as distributed reads it: ``[SCHEME://]HOST:PORT`` (``inproc://NAME``)."""
    scheme, sep, location = address.partition("://")
    if not sep:
        scheme, location = "tcp", address
    fix = "write it as tcp://HOST:PORT, e.g. tcp://127.0.0.1:8786 (the address `dask scheduler` prints)"
    if scheme not in SCHEDULER_SCHEMES:
        raise HarnessError(f"--scheduler {address!r} has the unknown scheme '{scheme}' (known: "
                           f"{', '.join(SCHEDULER_SCHEMES)})", fix)
    if scheme == "inproc":
        if not location:
            raise HarnessError(f"--scheduler {address!r} names no in-process scheduler", fix)
        return
    host, colon, port = location.rpartition(":")
    if not colon or not host.strip("[]") or "/" in location or not port.isdigit() or not 0 < int(port) < 65536:
        raise HarnessError(f"--scheduler {address!r} is not HOST:PORT with a port from 1 to 65535", fix)


def group_runs(specs: list[RunSpec]) -> list[list[RunSpec]]:
    groups: OrderedDict[tuple, list[RunSpec]] = OrderedDict()
    for spec in specs:
        groups.setdefault(spec.group_key, []).append(spec)
    return list(groups.values())


def die_with_parent(parent_pid: int | None) -> None:
    """In a worker process, exit as soon as ``parent_pid`` (the ``run`` process that started it) is gone.

    loky and multiprocessing workers are children of the run process; when that process is killed
    (SIGKILL runs no cleanup) they are re-parented and would go on writing records. A daemon thread polls
    ``os.getppid()`` and ends the worker with ``os._exit``: records are written atomically and locks are
    released by the kernel, so nothing is left half-done. Not used for dask (a worker's parent is its nanny).
    """
    global _WATCHED_PARENT
    if parent_pid is None or parent_pid == os.getpid() or _WATCHED_PARENT == parent_pid:
        return
    _WATCHED_PARENT = parent_pid

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        log.warning("run process %d is gone; worker %d exits", parent_pid, os.getpid())
        os._exit(70)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


_WATCHED_PARENT: int | None = None


def execute_group(group: list[RunSpec], results_dir: str, progress: bool = True,
                  torch_threads: int | None = None, parent_pid: int | None = None,
                  force: bool = False, cache_dir: str | None = None,
                  artifacts_dir: str | None = None) -> tuple[list[str], list[str]]:
    """Load the group's model once, apply its variant, run each benchmark and write its record.

    ``cache_dir`` is the run cache (:func:`run_cache_dir` of ``results_dir`` when None), ``artifacts_dir`` the root
    of the large per-run outputs (:func:`artifacts_root` of ``results_dir`` when None).

    Returns (written, skipped) record paths. Each record is computed under its lock
    (:func:`harness.locks.file_lock`) after re-checking that no other process wrote it meanwhile, so
    concurrent runs on one results folder compute each record once.
    """
    die_with_parent(parent_pid)
    results = Path(results_dir)
    done = [] if force else [s for s in group if is_complete(results, s)]
    if len(done) == len(group):
        return [], [str(record_path(results, s)) for s in done]  # another process finished the group
    import torch

    from harness.api import RunContext
    from harness.models import load_model
    from harness.variants import apply_variant, parse_variant

    if torch_threads:
        torch.set_num_threads(torch_threads)
    first = group[0]
    seed_everything(first.seed)
    group_started = time.perf_counter()
    lm = load_model(first.model, device=first.device)
    ctx = RunContext(seed=first.seed, protocol=first.protocol, bias_type=first.bias_type,
                     batch_size=first.batch_size, cache_dir=run_cache_dir(results, cache_dir), progress=progress)
    lm, steps_log = apply_variant(lm, parse_variant(first.variant, first.variant_options), ctx)
    variant_seconds = time.perf_counter() - group_started
    written, skipped = [], [str(record_path(results, s)) for s in done]
    pending = [s for s in group if s not in done]
    for blocking in (False, True):  # first the records nobody else is computing, then wait for the rest
        busy = []
        for spec in pending:
            with file_lock(_record_lock_target(results, spec), blocking=blocking) as locked:
                if not locked:
                    busy.append(spec)
                elif not force and is_complete(results, spec):
                    skipped.append(str(record_path(results, spec)))
                else:
                    record = _run_one(spec, results, lm, ctx, steps_log, variant_seconds / len(group),
                                      artifacts_dir)
                    written.append(str(write_record(results, spec, record)))
        pending = busy
    return written, skipped


def _record_lock_target(results: Path, spec: RunSpec) -> Path:
    """What a record's lock is named after: a path under the (git-ignored) default cache beside the results
    folder, so the records folder, which may be committed, holds nothing but records. Not under a chosen
    ``--cache``: every process writing one results folder must take the same lock, whatever cache it uses."""
    relative = record_path(results, spec).relative_to(results)
    return default_cache_dir(results) / "record-locks" / results.name / relative


def _run_one(spec: RunSpec, results: Path, lm, group_ctx, steps_log: list, variant_share_s: float,
             artifacts: str | None = None) -> RunRecord:
    """Run one benchmark on the prepared model and build its record (with its own copy of the group's context:
    no data sets recorded yet, this run's artefact folder)."""
    import torch

    from harness.provenance import environment, git_state
    from harness.registry import get_benchmark
    from harness.variants import representation_blocked

    benchmark = get_benchmark(spec.benchmark)(**spec.benchmark_options)
    seed_everything(spec.seed)
    ctx = replace(group_ctx, datasets={}, artifact_dir=artifact_dir(results, spec, artifacts))
    started_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    started = time.perf_counter()
    blocked = representation_blocked(steps_log) if benchmark.reads == "representations" else None
    if lm.kind not in benchmark.kinds or blocked:
        reason = blocked or f"{spec.benchmark} does not apply to {lm.kind} LMs"
        scores, details, status, protocol, artifacts = {}, {"reason": reason}, STATUS_NOT_APPLICABLE, spec.protocol, {}
        per_example = None
    else:
        with torch.set_grad_enabled(benchmark.trains):  # scoring-only benchmarks need no autograd graph
            result = benchmark.run(lm, ctx)
        scores, details, status = result.scores, result.details, "ok"
        protocol, artifacts = result.protocol or spec.protocol, result.artifacts
        per_example = result.per_example.to_json() if result.per_example is not None else None
    return RunRecord(
        model=spec.model, variant=spec.variant, benchmark=spec.benchmark, seed=spec.seed, protocol=protocol,
        bias_type=spec.bias_type, config=spec.full_config(), config_hash=spec.config_hash, scores=scores,
        status=status, details=details, datasets={k: v.provenance() for k, v in ctx.datasets.items()},
        model_origin=lm.origin, variant_steps=steps_log, git=git_state(),
        environment={**environment(), "cache_dir": str(ctx.cache_dir)},  # where it ran, not what: outside the hash
        started_at=started_at, wall_time_s=round(time.perf_counter() - started + variant_share_s, 3),
        peak_memory_mb=_peak_memory_mb(), artifacts=artifacts, per_example=per_example)


def _prefetch_zoo_models(specs: set[str]) -> None:
    """Unpack zoo models once, here, so parallel workers never race to build the same cache entry."""
    from harness.models.catalog import ZOO_PREFIX, model_catalog

    for spec in sorted(specs):
        if spec.startswith(ZOO_PREFIX):
            model_catalog().fetch(spec)


def run_experiment(config: ExperimentConfig, *, results_dir: str | Path | None = None, jobs: int = 1,
                   backend: str = "loky", scheduler: str | None = None, force: bool = False,
                   progress: bool = True, scheduler_timeout_s: float = 20.0,
                   cache_dir: str | Path | None = None, artifacts_dir: str | Path | None = None) -> RunSummary:
    """Run every spec of ``config`` without a record; ``cache_dir`` as :func:`run_cache_dir` and ``artifacts_dir``
    as :func:`artifacts_root` (resolved here, once, so workers on other machines use what this process chose)."""
    import joblib

    check_run_flags(jobs, backend, scheduler)
    results = Path(results_dir or config.results_dir)
    cache = str(run_cache_dir(results, cache_dir))
    artifacts = str(artifacts_root(results, artifacts_dir))
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
    parent = None if backend == "dask" else os.getpid()  # local workers die with this process
    calls = [joblib.delayed(execute_group)(g, str(results), progress and jobs == 1, threads, parent, force, cache,
                                           artifacts) for g in groups]
    if backend == "dask":
        try:
            from distributed import Client
        except ImportError:
            raise HarnessError("backend 'dask' needs the distributed package",
                               "pip install 'dask[distributed]'") from None
        try:
            client = Client(scheduler, timeout=f"{scheduler_timeout_s}s")
        except (OSError, TimeoutError) as exc:
            raise HarnessError(f"cannot reach dask scheduler {scheduler} ({exc})",
                               "start it with `dask scheduler` and check the address") from None
        with client, joblib.parallel_config(backend="dask"):
            outputs = joblib.Parallel(n_jobs=jobs)(calls)
    elif backend == "sequential" or (jobs == 1 and backend == "loky"):
        outputs = [execute_group(g, str(results), progress, force=force, cache_dir=cache, artifacts_dir=artifacts)
                   for g in groups]
    else:
        outputs = joblib.Parallel(n_jobs=jobs, backend=backend)(calls)
    summary.written = [Path(p) for written, _ in outputs for p in written]
    summary.skipped += [Path(p) for _, skipped in outputs for p in skipped]  # written by a concurrent run
    summary.wall_time_s = round(time.perf_counter() - started, 3)
    return summary


def describe_plan(config: ExperimentConfig, results_dir: Path | None = None) -> dict[str, Any]:
    results = Path(results_dir or config.results_dir)
    specs = expand(config)
    done = sum(is_complete(results, s) for s in specs)
    return {"runs": len(specs), "done": done, "groups": len(group_runs(specs))}
