"""Training: one gradient stream from the language model feeds every seed's encoder-decoder.

A step draws a batch of one class (classes alternate), fills each template with a random train name of
that class, computes the source gradient (default ∇⁺W, factual) and the target (default ∇±W) once, and
updates all seeds (:class:`methods.gradiend.model.Optimiser`). Every ``eval_every`` steps the validation
correlation of each seed is measured on per-example encodings (val templates × val names); each seed
keeps its best checkpoint. A seed has **converged** when |Pearson(h, label)| ≥ 0.5 and the two class
means have opposite signs; the converged seed with the best validation correlation is selected, and
every seed's sign is normalised so the first class encodes to +1.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from harness.errors import HarnessError
from harness.progress import progress as progress_bar
from methods.gradiend.data import GradiendData
from methods.gradiend.gradients import GradientEngine, make_batch
from methods.gradiend.model import AdamW, Gradiend, Optimiser

SOURCES = ("factual", "counterfactual", "diff")


@dataclass
class TrainConfig:
    seeds: tuple[int, ...] = (0, 1, 2)
    lr: float = 1e-5
    weight_decay: float = 1e-2
    batch_size: int = 32
    max_steps: int = 150
    eval_every: int = 25
    source: str = "factual"
    target: str = "diff"
    threshold: float = 0.5

    def __post_init__(self):
        if self.source not in SOURCES or self.target not in SOURCES:
            raise HarnessError(f"GRADIEND source/target must be one of {SOURCES}, not {self.source}/{self.target}",
                               "use source: factual, target: diff (the paper)")


@dataclass
class SeedReport:
    seed: int
    best_correlation: float = float("nan")
    best_step: int = 0
    mean_first: float = float("nan")
    mean_second: float = float("nan")
    converged: bool = False


@dataclass
class TrainResult:
    model: Gradiend  # all seeds at their best checkpoint, sign-normalised
    seeds: list[SeedReport]
    selected: int  # row of the selected seed
    history: list[dict] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)

    def summary(self) -> dict:
        return {"selected_seed": self.seeds[self.selected].seed, "seeds": [asdict(s) for s in self.seeds],
                "seconds": self.seconds, "steps": self.history[-1]["step"] if self.history else 0}


def sample_batch(data: GradiendData, split: str, cls: int, size: int, rng: random.Random):
    """Texts (``[TARGET]`` slot), factual and counterfactual words for a batch of class ``cls``."""
    templates = data.split(split)
    if not data.names.empty:
        names = data.names_of(split, cls)
    else:
        names, templates = [], templates[templates["cls"] == cls]
    if templates.empty or (not data.names.empty and not names):
        raise HarnessError(f"no {split} templates/names of class {data.classes.names[cls]}",
                           "build the data from a larger corpus or lower the filter")
    rows = [templates.iloc[rng.randrange(len(templates))] for _ in range(size)]
    texts = [r[f"text_{cls}"].replace("[NAME]", rng.choice(names)) if names else r[f"text_{cls}"] for r in rows]
    return texts, [r[f"target_{cls}"] for r in rows], [r[f"target_{1 - cls}"] for r in rows]


def label_of(cls: int) -> float:
    return 1.0 if cls == 0 else -1.0


def train(engine: GradientEngine, data: GradiendData, config: TrainConfig,
          evaluate: Callable[[Gradiend], list[tuple[float, float, float]]] | None, *,
          data_seed: int = 0, progress: bool = False, on_step: Callable[[int, torch.Tensor], None] | None = None
          ) -> TrainResult:
    """Train every seed on one shared gradient stream; ``evaluate`` gives (corr, mean₊, mean₋) per seed."""
    model = Gradiend.init(engine.map.dim, list(config.seeds))
    optimiser = Optimiser(model, AdamW(config.lr, config.weight_decay))
    reports = [SeedReport(s) for s in config.seeds]
    best = [None] * len(config.seeds)
    history: list[dict] = []
    rng = random.Random(f"{data_seed}-train-batches")
    need = tuple(dict.fromkeys((config.source, config.target)))
    t_grad = t_fit = t_eval = 0.0
    for step in progress_bar(range(1, config.max_steps + 1), progress, "GRADIEND training"):
        cls = (step - 1) % 2
        texts, fact, counter = sample_batch(data, "train", cls, config.batch_size, rng)
        start = time.perf_counter()
        grads = engine.gradients(make_batch(engine.lm, texts, fact, counter), need)
        t_grad += time.perf_counter() - start
        start = time.perf_counter()
        losses = optimiser.step(grads[config.source], grads[config.target])
        t_fit += time.perf_counter() - start
        if on_step is not None:
            on_step(step, losses)
        entry = {"step": step, "loss": losses.tolist()}
        if evaluate is not None and (step % config.eval_every == 0 or step == config.max_steps):
            start = time.perf_counter()
            for row, (corr, mean_a, mean_b) in enumerate(evaluate(model)):
                entry.setdefault("correlation", []).append(corr)
                report = reports[row]
                if best[row] is None or abs(corr) > abs(report.best_correlation):
                    report.best_correlation, report.best_step = corr, step
                    report.mean_first, report.mean_second = mean_a, mean_b
                    best[row] = model.row(row)
            t_eval += time.perf_counter() - start
        history.append(entry)
    if evaluate is not None:  # every seed back to its best checkpoint
        for row, snapshot in enumerate(best):
            for name in ("w_e", "b_e", "w_d", "b_d"):
                getattr(model, name)[row] = getattr(snapshot, name)[0]
    flip = torch.tensor([r.mean_first < r.mean_second if evaluate is not None else False for r in reports])
    model.flip_(flip)
    for report, flipped in zip(reports, flip.tolist()):
        if flipped:
            report.best_correlation = -report.best_correlation
            report.mean_first, report.mean_second = -report.mean_first, -report.mean_second
        report.converged = bool(abs(report.best_correlation) >= config.threshold
                                and report.mean_first * report.mean_second < 0)
    ranked = sorted(range(len(reports)),
                    key=lambda r: (reports[r].converged, abs(reports[r].best_correlation)
                                   if reports[r].best_correlation == reports[r].best_correlation else -1))
    return TrainResult(model, reports, ranked[-1], history,
                       {"gradients": round(t_grad, 3), "fit": round(t_fit, 3), "evaluation": round(t_eval, 3)})
