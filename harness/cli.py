"""Command line: ``gradiend-bench`` (also ``python -m harness``).

Errors caused by input (names, files, configs, missing data) print one line and exit with code 2.
Other packages add sub-commands through the ``gradiend_bench.commands`` entry-point group.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import sys
import threading
import time
from importlib.metadata import entry_points
from pathlib import Path

from tabulate import tabulate

from harness import __version__
from harness.data.catalog import SOURCE_KINDS
from harness.errors import HarnessError

COMMAND_GROUP = "gradiend_bench.commands"


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)  # its retries are reported by our one-line error
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()  # "Loading weights" bars on every load
    except ImportError:
        pass


# -- models -------------------------------------------------------------------------------------------
def cmd_models_list(args) -> int:
    from harness.models.catalog import model_catalog

    catalog = model_catalog()
    rows = [[e.spec, e.kind, e.parameters, e.source, "yes" if catalog.cached(e, verify=False) else "no",
             e.description] for e in catalog.zoo.values()]
    print(tabulate(rows, headers=["model", "kind", "params", "source", "cached", "description"],
                   maxcolwidths=[None, None, None, 40, None, 60]))
    print("\nAlso accepted: a local save_pretrained directory, or a Hugging Face hub id (needs internet).")
    return 0


def cmd_models_fetch(args) -> int:
    from harness.models.catalog import load_model, model_catalog

    for spec in args.specs:
        started = time.perf_counter()
        folder = model_catalog().fetch(spec, force=args.force)
        fetched = time.perf_counter() - started
        lm = load_model(spec)
        print(f"{spec}: {lm.kind} LM, {sum(p.numel() for p in lm.model.parameters()) / 1e6:.1f}M parameters, "
              f"cached at {folder} (fetch {fetched:.1f}s, load {lm.origin['load_seconds']:.1f}s)")
    return 0


_SETTING_FLAGS = ("steps", "batch_size", "grad_accumulation", "seq_len", "lr", "warmup_fraction", "weight_decay",
                  "mlm_probability", "seed", "eval_every", "eval_blocks", "objective")


def cmd_models_build(args) -> int:
    """Build a recipe zoo model, or continue pre-training any model on a corpus into --output."""
    from harness.atomic import atomic_directory
    from harness.models.build import build_model
    from harness.models.catalog import ZOO_PREFIX, model_catalog
    from harness.pretraining import TrainingSettings

    catalog = model_catalog()
    given = {k: getattr(args, k) for k in _SETTING_FLAGS if getattr(args, k) is not None}
    if args.settings:
        given = {**_read_yaml_mapping(args.settings), **given}
    recipe_entry = catalog.zoo.get(args.model[len(ZOO_PREFIX):]) if args.model.startswith(ZOO_PREFIX) else None
    if recipe_entry is not None and recipe_entry.recipe is not None and not args.output:
        if given or args.corpus:
            raise HarnessError(f"{args.model} is built by its catalog recipe; settings flags would change it",
                               "drop the flags, or pass --output DIR to build a variant of the recipe there")
        started = time.perf_counter()
        folder = catalog.fetch(args.model, force=args.force)
        report = catalog.build_report(args.model)
        final = report["final"]
        print(f"{args.model}: cached at {folder} ({time.perf_counter() - started:.1f}s); training took "
              f"{report['seconds']:.0f}s; held-out accuracy {100 * final['accuracy']:.1f}%, "
              f"top-5 {100 * final['top5']:.1f}%, perplexity {final['perplexity']:.1f}")
        return 0
    if not args.output:
        raise HarnessError(f"building from '{args.model}' needs an output folder", "pass --output DIR")
    base, corpus = args.model, args.corpus or "corpus-en"
    if recipe_entry is not None and recipe_entry.recipe is not None:  # a variant of a recipe: start from its settings
        base, corpus = recipe_entry.recipe["base"], args.corpus or recipe_entry.recipe["corpus"]
        given = {**recipe_entry.recipe["training"], **given}
    settings = TrainingSettings.from_dict(given)
    output = Path(args.output)
    if output.exists() and any(output.iterdir()) and not args.force:
        raise HarnessError(f"output folder {output} is not empty", "choose a new folder or pass --force")
    with atomic_directory(output) as scratch:
        report = build_model(base, corpus, settings, scratch)
    print(f"{base} → {output}: {report.seconds:.0f}s, held-out loss {report.initial['loss']:.3f} → "
          f"{report.final['loss']:.3f}, accuracy {100 * report.final['accuracy']:.1f}%")
    return 0


def _read_yaml_mapping(path: str) -> dict:
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise HarnessError(f"cannot read settings file {path} ({exc})",
                           "give a YAML mapping of training settings") from None
    if not isinstance(raw, dict):
        raise HarnessError(f"settings file {path} is not a mapping", "write e.g. `steps: 600` lines")
    return raw


# -- data ---------------------------------------------------------------------------------------------
def cmd_data_list(args) -> int:
    from harness.data.catalog import catalog

    cat = catalog()
    rows = [[name, len(e.files), ", ".join(s.describe(cat.wheels) for s in e.sources), e.license, e.description]
            for name, e in sorted(cat.entries.items())]
    print(tabulate(rows, headers=["data set", "files", "sources (in order)", "licence", "description"],
                   maxcolwidths=[None, None, 40, 18, 60]))
    return 0


def cmd_data_fetch(args) -> int:
    from harness.data.catalog import catalog

    for name in args.names:
        resolved = catalog().resolve(name, kinds=[args.source] if args.source else None)
        print(f"{name}: {len(resolved.files)} file(s) from {resolved.source}")
        for file_name, path in sorted(resolved.files.items()):
            print(f"  {file_name}  {resolved.checksums[file_name][:16]}…  {path}")
    return 0


def cmd_data_verify(args) -> int:
    from harness.data.catalog import catalog
    from harness.data.verify import manifest_problems, verify_dataset
    from harness.settings import mirror_dir

    cat = catalog()
    names = args.names or cat.names()
    for name in names:
        cat.entry(name)  # unknown names fail before any work
    statuses = [verify_dataset(cat, name) for name in names]
    rows = [[s.name, s.status, s.source, s.files, s.note[:110]] for s in statuses]
    print(f"mirror: {mirror_dir() or '(GRADIEND_BENCH_DATA not set)'}")
    print(tabulate(rows, headers=["data set", "status", "source", "files", "note"]))
    problems = manifest_problems(cat) if not args.names else []
    for problem in problems:
        print(f"MANIFEST: {problem}")
    ok = sum(s.status == "ok" for s in statuses)
    print(f"\n{ok} ok, {sum(s.status == 'partial' for s in statuses)} partial, "
          f"{sum(s.status == 'unavailable' for s in statuses)} unavailable here")
    bad_requested = args.names and any(s.status != "ok" for s in statuses)
    return 1 if problems or bad_requested else 0


# -- registry -----------------------------------------------------------------------------------------
def cmd_list_registered(args) -> int:
    from harness.registry import BENCHMARKS, METHODS, load_plugins

    load_plugins()
    table = METHODS if args.what == "methods" else BENCHMARKS
    rows = []
    for name, cls in sorted(table.items()):
        doc = (cls.__doc__ or sys.modules[cls.__module__].__doc__ or "").strip().splitlines()
        extra = getattr(cls, "kind", None) if args.what == "methods" else ",".join(getattr(cls, "kinds", ()))
        rows.append([name, extra, doc[0] if doc else ""])
    if args.what == "methods":
        rows.insert(0, ["base", "-", "the unchanged model"])
    print(tabulate(rows, headers=[args.what[:-1], "kind" if args.what == "methods" else "LMs", "description"]))
    return 0


# -- run ----------------------------------------------------------------------------------------------
def cmd_run(args) -> int:
    from harness.config import load_config
    from harness.paths import ensure_writable_dir
    from harness.pipeline import (
        ARTIFACTS_ENV,
        RUN_CACHE_ENV,
        artifacts_root,
        check_run_flags,
        default_cache_dir,
        describe_plan,
        run_cache_dir,
        run_experiment,
    )

    check_run_flags(args.jobs, args.backend, args.scheduler)
    config = load_config(args.config)
    results = Path(args.results or config.results_dir)
    fix = "pass --results with a writable folder (or set results_dir in the config)"
    ensure_writable_dir(results, "results folder", fix)
    # record locks stay beside the results folder; the run cache and the artefacts go where they are chosen
    artifacts = artifacts_root(results, args.artifacts)
    ensure_writable_dir(artifacts, "artifacts folder", fix if artifacts == results.parent / "artifacts"
                        else f"pass --artifacts (or set {ARTIFACTS_ENV}) with a writable folder")
    ensure_writable_dir(default_cache_dir(results), "cache folder", fix)
    cache = run_cache_dir(results, args.cache)
    if cache != default_cache_dir(results):
        ensure_writable_dir(cache, "cache folder", f"pass --cache (or set {RUN_CACHE_ENV}) with a writable folder")
    plan = describe_plan(config, args.results)
    print(f"{config.name}: {plan['runs']} run(s) in {plan['groups']} group(s), {plan['done']} already recorded"
          + (" (ignored: --force)" if args.force and plan["done"] else ""))
    if args.dry_run:
        return 0
    summary = run_experiment(config, results_dir=args.results, jobs=args.jobs, backend=args.backend,
                             scheduler=args.scheduler, force=args.force, progress=not args.quiet, cache_dir=cache,
                             artifacts_dir=artifacts)
    print(f"wrote {len(summary.written)} record(s), skipped {len(summary.skipped)} existing, "
          f"in {summary.wall_time_s:.1f}s -> {args.results or config.results_dir}")
    return 0


class OneLineParser(argparse.ArgumentParser):
    """Usage errors (a bad flag value, a missing argument) are one ``error:`` line too; sub-parsers,
    including those other packages register, inherit this class."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message}. See `{self.prog} --help`.\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="gradiend-bench", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"gradiend-bench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    models = sub.add_parser("models", help="list or fetch catalog models").add_subparsers(dest="action", required=True)
    models.add_parser("list", help="list zoo models").set_defaults(func=cmd_models_list)
    fetch = models.add_parser("fetch", help="fetch, verify, unpack and load models")
    fetch.add_argument("specs", nargs="+", metavar="MODEL")
    fetch.add_argument("--force", action="store_true", help="rebuild the cache entry")
    fetch.set_defaults(func=cmd_models_fetch)
    build = models.add_parser("build", help="build a recipe zoo model, or continue pre-training any model on a corpus")
    build.add_argument("model", metavar="MODEL", help="zoo:bert-tiny-mlm, or any model spec to train further")
    build.add_argument("--corpus", help="catalog data set (default corpus-en) or a text file, one document per line")
    build.add_argument("--output", "-o", help="folder for the trained model (required unless MODEL is a recipe)")
    build.add_argument("--settings", help="YAML file of training settings (flags override it)")
    for flag in _SETTING_FLAGS:
        kind = {"lr": float, "warmup_fraction": float, "weight_decay": float, "mlm_probability": float,
                "objective": str}.get(flag, int)
        build.add_argument(f"--{flag.replace('_', '-')}", dest=flag, type=kind)
    build.add_argument("--force", action="store_true", help="rebuild / overwrite")
    build.set_defaults(func=cmd_models_build)

    data = sub.add_parser("data", help="list, fetch or verify catalog data sets").add_subparsers(dest="action",
                                                                                                 required=True)
    data.add_parser("list", help="list data sets and their sources").set_defaults(func=cmd_data_list)
    dfetch = data.add_parser("fetch", help="resolve data sets to local files")
    dfetch.add_argument("names", nargs="+", metavar="NAME")
    dfetch.add_argument("--source", choices=SOURCE_KINDS, help="use only this source kind")
    dfetch.set_defaults(func=cmd_data_fetch)
    verify = data.add_parser("verify", help="check which data sets are available and intact")
    verify.add_argument("names", nargs="*", metavar="NAME")
    verify.set_defaults(func=cmd_data_verify)

    for what in ("methods", "benchmarks"):
        lister = sub.add_parser(what, help=f"list registered {what}").add_subparsers(dest="action", required=True)
        lister.add_parser("list").set_defaults(func=cmd_list_registered, what=what)

    run = sub.add_parser("run", help="run an experiment grid from a YAML config")
    run.add_argument("config")
    run.add_argument("--results", help="records folder (default: the config's results_dir)")
    run.add_argument("--cache", metavar="DIR", help="run cache for method fits and features (default: "
                     "$GRADIEND_BENCH_RUN_CACHE, else <results>/../cache; see docs/caching.md)")
    run.add_argument("--artifacts", metavar="DIR", help="large per-run outputs such as predictions (default: "
                     "$GRADIEND_BENCH_ARTIFACTS, else <results>/../artifacts; see docs/caching.md)")
    run.add_argument("--jobs", type=int, default=1, help="parallel groups (default 1)")
    run.add_argument("--backend", default="loky",
                     help="joblib backend: loky, threading, multiprocessing, sequential, dask")
    run.add_argument("--scheduler", help="dask scheduler address for --backend dask, e.g. tcp://127.0.0.1:8786")
    run.add_argument("--force", action="store_true", help="recompute runs that already have a record")
    run.add_argument("--dry-run", action="store_true", help="show the plan only")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.set_defaults(func=cmd_run)

    for ep in entry_points(group=COMMAND_GROUP):
        ep.load()(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a batch system's time limit), raised like Ctrl-C in the main thread so that every
    ``finally`` and ``with`` block runs: temporary files are removed and locks released; records are written to
    a temporary file and renamed, so each one is whole or absent."""


def _terminate_like_interrupt():
    """Turn SIGTERM into :class:`Terminated` while ``main`` runs; returns the function that restores the old
    handler. Only the main thread may set handlers (``main`` called from another thread keeps the default)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    owner = os.getpid()

    def handler(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
        if os.getpid() != owner:  # a forked worker (multiprocessing backend) dies as it would without us
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, previous)


_NO_ROOM = (errno.ENOSPC, errno.EDQUOT)


def main(argv: list[str] | None = None) -> int:
    restore = lambda: None  # noqa: E731 - replaced as soon as the handler is set
    try:
        restore = _terminate_like_interrupt()
        _quiet_libraries()
        parser = build_parser()
        args = parser.parse_args(argv)
        return int(args.func(args) or 0)
    except HarnessError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # a path the user chose that cannot be read or written: one line, no traceback
        where = f" ({exc.filename})" if exc.filename else ""
        fix = ("Free space on that file system (or choose a folder on another one) and run the command again"
               if exc.errno in _NO_ROOM else "Check that the path exists, is the right kind (file or folder) and "
               "is writable, or choose another one")
        print(f"error: {exc.strerror or exc}{where}. {fix}.", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        print(f"error: {'terminated (SIGTERM)' if terminated else 'interrupted'}; finished records are kept and "
              "`gradiend-bench run` resumes from them", file=sys.stderr)
        return 128 + signal.SIGTERM if terminated else 130
    finally:
        restore()
