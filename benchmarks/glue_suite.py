"""Shared runner of the ``glue`` and ``superglue`` benchmarks (registered in glue.py / superglue.py).

Protocols (the record's ``protocol`` says which ran; option ``protocol: auto`` maps the experiment's
``cpu`` to ``probe`` and ``full`` to ``full``):

* ``probe`` — frozen model with its hooks, pooled features (cached per weights, see
  :mod:`benchmarks.glue_encode`), a linear probe (:mod:`benchmarks.probe`) on at most ``max_train``
  seeded training examples, scored on the whole validation set;
* ``finetune-lite`` — end-to-end fine-tuning (:mod:`benchmarks.finetune`) on at most
  ``finetune_max_train`` examples, 1 epoch, seeds ``finetune_seeds``, averaged;
* ``full`` — the same on all training data for 3 epochs (the literature's protocol; needs a GPU).

Score of a task = its metric ×100 (averaged over seeds), 95% percentile-bootstrap CI over validation
examples; ``score`` = unweighted mean over the tasks whose data are available, with the CI of the mean
from the tasks' aligned bootstrap draws. A task whose data cannot be resolved is listed in
``details.unavailable`` with the catalog's reason, never dropped silently.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np

from benchmarks.glue_encode import (
    COMPILE_CHOICES,
    PRECISIONS,
    features,
    release_encoder,
    resolve_compile,
    resolve_precision,
)
from benchmarks.glue_tasks import Split, TaskSpec, load_task
from benchmarks.probe import bootstrap_task, fit_probe, majority_predictions, sample_rows
from harness.api import Benchmark, BenchmarkResult, RunContext, Score
from harness.errors import HarnessError
from harness.models.interface import LanguageModel
from harness.options import Option

PROTOCOLS = ("auto", "probe", "finetune-lite", "full")


class GlueSuite(Benchmark):
    tasks: ClassVar[tuple[TaskSpec, ...]] = ()
    reads = "representations"
    headline = ("score",)
    execution_options = ("batch_size", "compile")  # how fast, not what: not part of the record's hash
    options_spec = {
        "protocol": Option(str, "auto", choices=PROTOCOLS),
        "tasks": Option(list, None, allow_none=True, items=Option(str, ""), min_items=1, comma_text=True),
        "max_train": Option(int, 2000, minimum=1, allow_none=True),  # null: every training example
        "max_length": Option(int, 128, minimum=1), "precision": Option(str, "auto", choices=PRECISIONS),
        "compile": Option(bool, "auto", choices=COMPILE_CHOICES), "batch_size": Option(int, 32, minimum=1),
        "resamples": Option(int, 1000, minimum=1), "finetune_max_train": Option(int, 1000, minimum=1, allow_none=True),
        "finetune_seeds": Option(list, [0, 1, 2], items=Option(int, 0, minimum=0), min_items=1, unique=True),
        "lr": Option(float, 2e-5, above=0), "train_batch_size": Option(int, 32, minimum=1)}

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.selected()  # unknown task names fail when the config is read

    # -- options -------------------------------------------------------------------------------------
    def protocol(self, ctx: RunContext) -> str:
        chosen = self.options["protocol"]
        if chosen != "auto":
            return chosen
        return "full" if ctx.protocol == "full" else "probe"

    def selected(self) -> list[TaskSpec]:
        chosen = self.options["tasks"]
        names = [t.name for t in self.tasks]
        if chosen is None:
            return list(self.tasks)
        chosen = [c.strip() for c in chosen.split(",")] if isinstance(chosen, str) else [str(c) for c in chosen]
        unknown = [c for c in chosen if c not in names]
        if unknown or not chosen:
            raise HarnessError(f"{self.name} has no task(s) {', '.join(unknown) or '(none given)'}",
                               f"choose from: {', '.join(names)}")
        return [t for t in self.tasks if t.name in chosen]

    # -- one task ------------------------------------------------------------------------------------
    def _probe(self, lm: LanguageModel, ctx: RunContext, spec: TaskSpec, train: Split,
               evals: dict[str, Split]) -> tuple[dict[str, list[np.ndarray]], dict[str, Any]]:
        rows = sample_rows(train, spec, self.options["max_train"], ctx.seed)
        sample = train.take(rows)
        precision = resolve_precision(lm, self.options["precision"])
        settings = dict(cache_dir=ctx.cache_dir, max_length=self.options["max_length"],
                        batch_size=self.options["batch_size"], precision=precision,
                        compiled=resolve_compile(precision, self.options["compile"], lm), progress=ctx.progress)
        x_train, how = features(lm, sample.first, sample.second, **settings)
        x_eval = {}
        for name, split in evals.items():
            x_eval[name], _ = features(lm, split.first, split.second, **settings)
        preds = fit_probe(spec, x_train, sample, x_eval, evals, ctx.seed)
        majority = {name: majority_predictions(spec, sample, split) for name, split in evals.items()}
        return {k: [v] for k, v in preds.items()}, {"train_examples": len(rows), "features": how,
                                                     "majority_predictions": majority}

    def _finetune(self, lm: LanguageModel, ctx: RunContext, spec: TaskSpec, train: Split, evals: dict[str, Split],
                  protocol: str) -> tuple[dict[str, list[np.ndarray]], dict[str, Any]]:
        from benchmarks.finetune import FinetuneSettings, finetune_predict

        lite = protocol == "finetune-lite"
        settings = FinetuneSettings(epochs=1 if lite else 3, lr=self.options["lr"],
                                    batch_size=self.options["train_batch_size"], max_length=self.options["max_length"],
                                    eval_batch_size=self.options["batch_size"], progress=ctx.progress)
        preds: dict[str, list[np.ndarray]] = {name: [] for name in evals}
        losses = {}
        for seed in self.options["finetune_seeds"]:
            rows = sample_rows(train, spec, self.options["finetune_max_train"] if lite else None, seed)
            out, log = finetune_predict(lm, spec, train.take(rows), evals, seed=seed, settings=settings)
            for name in evals:
                preds[name].append(out[name])
            losses[str(seed)] = {"steps": log.steps, "final_loss": log.losses[-1] if log.losses else None}
        return preds, {"train_examples": len(rows), "seeds": list(self.options["finetune_seeds"]),
                       "epochs": settings.epochs, "training": losses}

    def _tasks(self, lm, ctx, protocol, specs, scores, per_task, unavailable) -> list[np.ndarray]:
        draws = []
        for spec in specs:
            try:
                resolved = ctx.data(spec.dataset)
            except HarnessError as exc:
                unavailable[spec.name] = exc.what
                continue
            started = time.perf_counter()
            train, evals = load_task(spec, resolved.files)
            if protocol == "probe":
                preds, info = self._probe(lm, ctx, spec, train, evals)
            else:
                preds, info = self._finetune(lm, ctx, spec, train, evals, protocol)
            values, stats, majority = [], [], []
            for name, split in evals.items():
                value, draw = bootstrap_task(spec, split, preds[name], resamples=self.options["resamples"],
                                             seed=ctx.seed)
                values.append(value)
                stats.append(draw)
                if "majority_predictions" in info:
                    majority.append(bootstrap_task(spec, split, [info["majority_predictions"][name]], resamples=1,
                                                   seed=ctx.seed)[0])
            info.pop("majority_predictions", None)
            value, draw = float(np.mean(values)) * 100, np.mean(stats, axis=0) * 100
            low, high = np.percentile(draw, [2.5, 97.5])
            n_eval = sum(len(s) for s in evals.values())
            scores[spec.name] = Score(value, float(low), float(high), n_eval)
            draws.append(draw)
            per_task[spec.name] = {"metric": spec.metric, "score": value,
                                   "eval_splits": {k: len(v) for k, v in evals.items()},
                                   "train_available": len(train), "source": resolved.source,
                                   "seconds": round(time.perf_counter() - started, 2), **info}
            if majority:
                per_task[spec.name]["majority_baseline"] = float(np.mean(majority)) * 100
        return draws

    # -- the suite -----------------------------------------------------------------------------------
    def run(self, lm: LanguageModel, ctx: RunContext) -> BenchmarkResult:
        protocol = self.protocol(ctx)
        specs = self.selected()
        scores: dict[str, Score] = {}
        per_task: dict[str, Any] = {}
        unavailable: dict[str, str] = {}
        try:
            draws = self._tasks(lm, ctx, protocol, specs, scores, per_task, unavailable)
        finally:
            release_encoder(lm)
        if not draws:
            raise HarnessError(f"{self.name}: no task has data here (" +
                               "; ".join(f"{k}: {v}" for k, v in unavailable.items()) + ")",
                               "set GRADIEND_BENCH_DATA to the data mirror or run with internet access")
        precision = resolve_precision(lm, self.options["precision"])
        mean_draw = np.mean(draws, axis=0)
        low, high = np.percentile(mean_draw, [2.5, 97.5])
        mean = float(np.mean([scores[name].value for name in per_task]))
        scores = {"score": Score(mean, float(low), float(high), len(per_task)), **scores}
        details = {"protocol": protocol, "tasks": list(per_task), "unavailable": unavailable, "per_task": per_task,
                   "precision": precision if protocol == "probe" else "float32",
                   "compiled": resolve_compile(precision, self.options["compile"], lm)
                   if protocol == "probe" else False,
                   "note": "probe numbers are not comparable with published fine-tuning numbers"
                   if protocol == "probe" else "fine-tuned"}
        return BenchmarkResult(scores, details=details, protocol=protocol)
