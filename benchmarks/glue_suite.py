"""Shared runner of the ``glue`` and ``superglue`` benchmarks (registered in glue.py / superglue.py).

Protocols (option ``protocol``; the record's ``protocol`` says which ran, ``details.protocol_reason`` why):

* ``auto`` — the paper's protocol for the model's family (:func:`paper_protocol`): masked LMs (BERT family)
  and GPT-2 are fine-tuned (``full``), other causal LMs (Llama family, e.g. SmolLM2) are scored zero-shot
  through lm-eval (``zero-shot``), as the GRADIEND paper did for Llama-3.2;
* ``experiment`` (default) — the experiment's protocol decides: ``cpu`` → ``probe``, ``full`` → ``auto``, so
  the committed ``cpu`` grids keep meaning what they meant;
* ``probe`` — a cheap stand-in: frozen model with its hooks, pooled features (cached per weights, see
  :mod:`benchmarks.glue_encode`), a linear probe (:mod:`benchmarks.probe`) on at most ``max_train`` seeded
  training examples, scored on the whole validation set; not comparable with fine-tuning numbers;
* ``finetune-lite`` — end-to-end fine-tuning (:mod:`benchmarks.finetune`) on at most ``finetune_max_train``
  examples, 1 epoch, seeds ``finetune_seeds``, averaged;
* ``full`` — fine-tuning on all training data for 3 epochs, lr 2e-5, batch 32, max length 128, seeds 0, 1, 2
  averaged: aieng-lab/bias-bench ``shell_jobs/glue.sh`` (``run_glue.py --max_seq_length 128
  --per_device_train_batch_size 32 --learning_rate 2e-5 --num_train_epochs 3 --seed ${seed}``, ``seeds=(0 1
  2)`` in ``shell_jobs/_experiment_configuration.sh``); post-processing hooks stay in the forward pass while
  fine-tuning, as bias-bench's ``INLP…ForSequenceClassification`` models do;
* ``zero-shot`` — the ``glue-zs`` / ``superglue-zs`` scorer (:mod:`benchmarks.lm_eval_zero_shot`; bias-bench
  ``shell_jobs/glue_llama.sh``: ``lm_eval --model hf --tasks glue --num_fewshot 0``). Its task set differs:
  no STS-B (no zero-shot definition; listed unavailable), QNLI scored from its validation file.

Score of a task = its metric ×100 (averaged over seeds), 95% percentile-bootstrap CI over validation
examples; ``score`` = unweighted mean over the tasks whose data are available, except GLUE's WNLI
(:data:`benchmarks.glue_tasks.OUTSIDE_THE_MEAN`: scored and reported, kept out of the mean as BERT did), with
the CI of the mean from the tasks' aligned bootstrap draws. ``floor`` = the same mean over the tasks' floors
(:func:`benchmarks.probe.floor_score`: the best constant answer); ``details.per_task.<task>.below_floor`` flags
a task scored below its floor. A task whose data cannot be resolved is listed in ``details.unavailable`` with
the catalog's reason, never dropped silently.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np
import torch

from benchmarks.glue_encode import (
    COMPILE_CHOICES,
    PRECISIONS,
    features,
    release_encoder,
    resolve_compile,
    resolve_precision,
)
from benchmarks.glue_tasks import OUTSIDE_THE_MEAN, Split, TaskSpec, load_task
from benchmarks.probe import bootstrap_task, fit_probe, floor_score, sample_rows
from harness.api import Benchmark, BenchmarkResult, RunContext, Score
from harness.errors import HarnessError
from harness.models.interface import LanguageModel
from harness.options import Option

PROTOCOLS = ("experiment", "auto", "probe", "finetune-lite", "full", "zero-shot")
FINETUNED_CAUSAL = ("gpt2",)  # causal model types the paper fine-tuned (bias-bench GPT2ForSequenceClassification)


def paper_protocol(lm: LanguageModel) -> tuple[str, str]:
    """(protocol, why) of the GRADIEND paper for this model's family: BERT-family masked LMs and GPT-2 were
    fine-tuned (bias-bench ``shell_jobs/glue.sh``), Llama-3.2 was scored zero-shot with lm-eval
    (``shell_jobs/glue_llama.sh``); other causal LMs are treated like Llama."""
    model_type = str(getattr(lm.model.config, "model_type", "?"))
    if lm.kind == "masked" or model_type in FINETUNED_CAUSAL:
        return "full", f"auto: {lm.kind} LM ({model_type}) -> fine-tuned, as bias-bench's glue.sh"
    return "zero-shot", f"auto: causal LM ({model_type}) -> zero-shot lm-eval, as bias-bench's glue_llama.sh"


def suite_mean(names: list[str]) -> list[str]:
    """The tasks the suite mean averages: all but :data:`OUTSIDE_THE_MEAN`, unless nothing else was scored."""
    inside = [n for n in names if n not in OUTSIDE_THE_MEAN]
    return inside or list(names)


def with_floors(scores: dict[str, Score], floors: dict[str, float], draws: dict[str, np.ndarray],
                per_task: dict[str, dict[str, Any]]) -> tuple[dict[str, Score], dict[str, Any]]:
    """Scores with ``score`` (mean over :func:`suite_mean`'s tasks, CI from their aligned draws) and ``floor``
    (the same mean over the tasks' floors) in front; each task's details get its ``floor`` and ``below_floor``."""
    names = list(scores)
    mean_over = suite_mean(names)
    low, high = np.percentile(np.mean([draws[n] for n in mean_over], axis=0), [2.5, 97.5])
    suite = Score(float(np.mean([scores[n].value for n in mean_over])), float(low), float(high), len(mean_over))
    floor = Score(float(np.mean([floors[n] for n in mean_over])), n=len(mean_over))
    for name in names:
        per_task[name].update(floor=floors[name], below_floor=bool(scores[name].value < floors[name]),
                              in_mean=name in mean_over)
    summary = {"mean_over": mean_over, "below_floor": [n for n in names if scores[n].value < floors[n]]}
    return {"score": suite, "floor": floor, **scores}, summary


class GlueSuite(Benchmark):
    tasks: ClassVar[tuple[TaskSpec, ...]] = ()
    zero_shot: ClassVar[str] = ""  # the registered zero-shot scorer of the same suite
    reads = "representations"
    trains = True  # fine-tuning needs autograd; the probe and zero-shot paths score under torch.no_grad()
    headline = ("score",)
    execution_options = ("batch_size", "compile")  # how fast, not what: not part of the record's hash
    options_spec = {
        "protocol": Option(str, "experiment", choices=PROTOCOLS),
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
    def protocol(self, ctx: RunContext, lm: LanguageModel | None = None) -> tuple[str, str]:
        """(protocol that runs, why); ``auto`` needs the model."""
        chosen = self.options["protocol"]
        if chosen == "experiment":
            if ctx.protocol != "full":
                return "probe", f"experiment protocol {ctx.protocol} -> probe (cheap stand-in)"
            chosen = "auto"
        if chosen != "auto":
            return chosen, "option protocol"
        if lm is None:
            raise ValueError("protocol 'auto' is resolved per model")
        return paper_protocol(lm)

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
    @torch.no_grad()
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
        return {k: [v] for k, v in preds.items()}, {"train_examples": len(rows), "features": how}

    def _finetune(self, lm: LanguageModel, ctx: RunContext, spec: TaskSpec, train: Split, evals: dict[str, Split],
                  protocol: str) -> tuple[dict[str, list[np.ndarray]], dict[str, Any]]:
        from benchmarks.finetune import FinetuneSettings, finetune_predict

        lite = protocol == "finetune-lite"
        settings = FinetuneSettings(epochs=1 if lite else 3, lr=self.options["lr"],
                                    batch_size=self.options["train_batch_size"], max_length=self.options["max_length"],
                                    eval_batch_size=self.options["batch_size"], progress=ctx.progress)
        preds: dict[str, list[np.ndarray]] = {name: [] for name in evals}
        losses = {}
        with torch.enable_grad():  # also when called outside the pipeline under torch.no_grad()
            for seed in self.options["finetune_seeds"]:
                rows = sample_rows(train, spec, self.options["finetune_max_train"] if lite else None, seed)
                out, log = finetune_predict(lm, spec, train.take(rows), evals, seed=seed, settings=settings)
                for name in evals:
                    preds[name].append(out[name])
                losses[str(seed)] = {"steps": log.steps, "final_loss": log.losses[-1] if log.losses else None}
        return preds, {"train_examples": len(rows), "seeds": list(self.options["finetune_seeds"]),
                       "epochs": settings.epochs, "lr": settings.lr, "batch_size": settings.batch_size,
                       "max_length": settings.max_length, "training": losses}

    def _tasks(self, lm, ctx, protocol, specs, scores, per_task, unavailable) -> tuple[dict, dict]:
        draws, floors = {}, {}
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
            values, stats = [], []
            for name, split in evals.items():
                value, draw = bootstrap_task(spec, split, preds[name], resamples=self.options["resamples"],
                                             seed=ctx.seed)
                values.append(value)
                stats.append(draw)
            value, draw = float(np.mean(values)) * 100, np.mean(stats, axis=0) * 100
            low, high = np.percentile(draw, [2.5, 97.5])
            n_eval = sum(len(s) for s in evals.values())
            scores[spec.name] = Score(value, float(low), float(high), n_eval)
            draws[spec.name] = draw
            floors[spec.name] = float(np.mean([floor_score(spec, split) for split in evals.values()])) * 100
            per_task[spec.name] = {"metric": spec.metric, "score": value,
                                   "eval_splits": {k: len(v) for k, v in evals.items()},
                                   "train_available": len(train), "source": resolved.source,
                                   "seconds": round(time.perf_counter() - started, 2), **info}
        return draws, floors

    # -- the suite -----------------------------------------------------------------------------------
    def run(self, lm: LanguageModel, ctx: RunContext) -> BenchmarkResult:
        protocol, reason = self.protocol(ctx, lm)
        if protocol == "zero-shot":
            return self._zero_shot(lm, ctx, reason)
        specs = self.selected()
        scores: dict[str, Score] = {}
        per_task: dict[str, Any] = {}
        unavailable: dict[str, str] = {}
        try:
            draws, floors = self._tasks(lm, ctx, protocol, specs, scores, per_task, unavailable)
        finally:
            release_encoder(lm)
        if not draws:
            raise HarnessError(f"{self.name}: no task has data here (" +
                               "; ".join(f"{k}: {v}" for k, v in unavailable.items()) + ")",
                               "set GRADIEND_BENCH_DATA to the data mirror or run with internet access")
        precision = resolve_precision(lm, self.options["precision"])
        scores, summary = with_floors(scores, floors, draws, per_task)
        details = {"protocol": protocol, "protocol_reason": reason, "tasks": list(per_task), **summary,
                   "unavailable": unavailable, "per_task": per_task,
                   "precision": precision if protocol == "probe" else "float32",
                   "compiled": resolve_compile(precision, self.options["compile"], lm)
                   if protocol == "probe" else False,
                   "note": "probe: a cheap stand-in (linear probe on frozen features), not comparable with "
                   "published fine-tuning numbers" if protocol == "probe" else "fine-tuned"}
        return BenchmarkResult(scores, details=details, protocol=protocol)

    @torch.no_grad()
    def _zero_shot(self, lm: LanguageModel, ctx: RunContext, reason: str) -> BenchmarkResult:
        """The suite's zero-shot scorer on the selected tasks that have a zero-shot definition."""
        from harness.registry import get_benchmark

        scorer_cls = get_benchmark(self.zero_shot)
        wanted = [t.name for t in self.selected()]
        names = [n for n in wanted if n in scorer_cls.tasks]
        missing = {n: f"no zero-shot definition of {n} in lm-eval" for n in wanted if n not in scorer_cls.tasks}
        if not names:
            raise HarnessError(f"{self.name}: none of the tasks {', '.join(wanted)} has a zero-shot definition",
                               f"choose from {', '.join(scorer_cls.tasks)} or set protocol: probe / full")
        scorer = scorer_cls(tasks=names, resamples=self.options["resamples"])
        result = scorer.run(lm, ctx)
        result.details.update(protocol_reason=reason, scorer=self.zero_shot,
                              unavailable={**missing, **result.details["unavailable"]})
        return result
