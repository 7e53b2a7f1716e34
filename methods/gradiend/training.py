"""Training: one encoder-decoder per seed, each with its own initialisation and its own data order.

Seeds are trained one after the other, as in the reference package (aieng-lab/gradiend,
``gradiend/trainer/trainer.py``: ``max_seeds`` runs, each seeded, stopping once ``min_convergent_seeds`` have
converged). A step of seed s draws a batch of one class (classes alternate) from s's own random stream
(``"{data_seed}-{s}-train-batches"``: the reference draws its data per seed), fills each template with a random
train name of that class, computes the source gradient (default ∇⁺W, factual) and target (default ∇±W) and
takes one AdamW step (:class:`methods.gradiend.model.Optimiser`). At step 0 and every ``eval_every`` steps
the validation encodings give r and the class means; the seed keeps its best checkpoint (best |r|).
Convergence is judged on that checkpoint (:mod:`methods.gradiend.convergence`).

``stop_on_convergence`` ends a seed at the first evaluation at which it has converged (the ``cpu`` protocol:
"train until converged"); otherwise a seed trains ``max_steps`` (the paper's schedule). Every seed's sign is
normalised so that the first class encodes to +1.

**Resume.** After every evaluation the state — finished seeds' best checkpoints, and for the seed in training
its weights, AdamW moments, data RNG state, best checkpoint and history — is written atomically to
``resume_dir/state.safetensors``; a call with the same ``resume_dir`` continues from there and gives the same
numbers as an uninterrupted run (the gradient stream is deterministic given the RNG state). The file holds CPU
tensors; a resumed seed moves back to the engine's device.

Device: the encoder-decoders are trained on the engine's device (where its gradients are); the numbers kept
for reports (losses, r, class means) are Python floats.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from harness.atomic import write_bytes_atomic
from harness.errors import HarnessError
from harness.progress import progress as progress_bar
from methods.gradiend.convergence import RULES, ConvergenceRule
from methods.gradiend.data import GradiendData
from methods.gradiend.gradients import GradientEngine, make_batch
from methods.gradiend.model import AdamW, Gradiend, Optimiser

SOURCES = ("factual", "counterfactual", "diff")
PARTS = ("w_e", "b_e", "w_d", "b_d")
RESUME_VERSION = 1

Evaluate = Callable[[Gradiend], list[tuple[float, float, float]]]


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
    rule: str = "reference"
    min_convergent_seeds: int | None = 1  # None: train every seed
    stop_on_convergence: bool = False

    def __post_init__(self):
        if self.source not in SOURCES or self.target not in SOURCES:
            raise HarnessError(f"GRADIEND source/target must be one of {SOURCES}, not {self.source}/{self.target}",
                               "use source: factual, target: diff (the paper)")
        if self.rule not in RULES:
            raise HarnessError(f"GRADIEND convergence rule {self.rule!r} is unknown", f"use one of {RULES}")

    @property
    def convergence(self) -> ConvergenceRule:
        return ConvergenceRule.named(self.rule)


@dataclass
class SeedReport:
    seed: int
    best_correlation: float = float("nan")
    best_step: int = 0
    mean_first: float = float("nan")
    mean_second: float = float("nan")
    converged: bool = False
    steps: int = 0
    seconds: float = 0.0
    checks: dict = field(default_factory=dict)


@dataclass
class TrainResult:
    model: Gradiend  # the trained seeds at their best checkpoint, sign-normalised
    seeds: list[SeedReport]
    selected: int  # row of the selected seed
    history: dict[int, list[dict]] = field(default_factory=dict)  # seed -> entries
    seconds: dict = field(default_factory=dict)
    rule: str = "reference"
    untrained: list[int] = field(default_factory=list)  # seeds skipped once enough had converged

    @property
    def converged(self) -> bool:
        return self.seeds[self.selected].converged

    def summary(self) -> dict:
        return {"selected_seed": self.seeds[self.selected].seed, "converged": self.converged,
                "rule": ConvergenceRule.named(self.rule).describe(), "seeds": [asdict(s) for s in self.seeds],
                "seeds_not_trained": self.untrained, "seconds": self.seconds,
                "steps": sum(s.steps for s in self.seeds)}


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


def data_stream(data_seed: int, seed: int) -> random.Random:
    """Seed ``seed``'s own batch order (deterministic; different seeds see different batches)."""
    return random.Random(f"{data_seed}-{seed}-train-batches")


# -- one seed ---------------------------------------------------------------------------------------
@dataclass
class _SeedRun:
    """The mutable state of the seed in training (what a resume file holds)."""

    report: SeedReport
    model: Gradiend
    optimiser: Optimiser | None
    rng: random.Random
    best: Gradiend | None = None
    step: int = 0
    history: list[dict] = field(default_factory=list)
    done: bool = False

    @classmethod
    def start(cls, dim: int, seed: int, config: TrainConfig, data_seed: int,
              device: torch.device | str = "cpu") -> "_SeedRun":
        model = Gradiend.init(dim, [seed], device=device)
        return cls(SeedReport(seed), model, Optimiser(model, AdamW(config.lr, config.weight_decay)),
                   data_stream(data_seed, seed))

    def evaluate(self, evaluate: Evaluate, rule: ConvergenceRule) -> bool:
        """Record r and the class means at this step; keep the checkpoint if |r| is the best. Converged?"""
        corr, mean_a, mean_b = evaluate(self.model)[0]
        self.history.append({"step": self.step, "correlation": corr, "mean_first": mean_a, "mean_second": mean_b})
        r = self.report
        if self.best is None or abs(corr) > abs(r.best_correlation):
            r.best_correlation, r.best_step, r.mean_first, r.mean_second = corr, self.step, mean_a, mean_b
            self.best = self.model.row(0)
        r.checks = rule.check(r.best_correlation, r.mean_first, r.mean_second, r.best_step)
        r.converged = r.checks["converged"]
        return r.converged


def _train_seed(run: _SeedRun, engine: GradientEngine, data: GradiendData, config: TrainConfig,
                evaluate: Evaluate | None, need: tuple[str, ...], save: Callable[[], None], progress: bool,
                timings: dict) -> None:
    rule = config.convergence
    if run.step == 0 and evaluate is not None and not run.history:
        run.evaluate(evaluate, rule)  # the initial checkpoint: convergence needs a later, better one
    steps = range(run.step + 1, config.max_steps + 1)
    for step in progress_bar(steps, progress, f"GRADIEND seed {run.report.seed}"):
        started = time.perf_counter()
        cls = (step - 1) % 2
        texts, fact, counter = sample_batch(data, "train", cls, config.batch_size, run.rng)
        grads = engine.gradients(make_batch(engine.lm, texts, fact, counter), need)
        clock = time.perf_counter()
        timings["gradients"] += clock - started
        losses = run.optimiser.step(grads[config.source], grads[config.target])
        timings["fit"] += time.perf_counter() - clock
        run.step = step
        run.history.append({"step": step, "loss": float(losses[0])})
        run.report.seconds += time.perf_counter() - started
        if evaluate is not None and (step % config.eval_every == 0 or step == config.max_steps):
            clock = time.perf_counter()
            converged = run.evaluate(evaluate, rule)
            timings["evaluation"] += time.perf_counter() - clock
            run.report.seconds += time.perf_counter() - clock
            if converged and config.stop_on_convergence:
                break
            save()
    run.report.steps = run.step
    run.done = True


def train(engine: GradientEngine, data: GradiendData, config: TrainConfig, evaluate: Evaluate | None, *,
          data_seed: int = 0, progress: bool = False, resume_dir: Path | None = None) -> TrainResult:
    """Train the seeds in order until ``min_convergent_seeds`` have converged (or all are trained);
    ``evaluate`` gives (r, mean₁, mean₂) for a one-row model. With ``resume_dir``, continue a stopped run."""
    need = tuple(dict.fromkeys((config.source, config.target)))
    timings = {"gradients": 0.0, "fit": 0.0, "evaluation": 0.0}
    finished: list[_SeedRun] = []
    current: _SeedRun | None = None
    state_file = Path(resume_dir) / "state.safetensors" if resume_dir is not None else None
    if state_file is not None and state_file.is_file():
        finished, current, saved_timings = _load_state(state_file, engine.map.dim, config, data_seed, engine.device)
        timings.update(saved_timings)

    def save() -> None:
        if state_file is not None:
            _save_state(state_file, finished, current, config, data_seed, engine.map.dim, timings)

    untrained: list[int] = []
    for seed in config.seeds:
        if any(run.report.seed == seed for run in finished):
            continue
        enough = config.min_convergent_seeds is not None and evaluate is not None and \
            sum(run.report.converged for run in finished) >= config.min_convergent_seeds
        if enough:
            untrained.append(seed)
            continue
        if current is None or current.report.seed != seed:
            current = _SeedRun.start(engine.map.dim, seed, config, data_seed, engine.device)
        _train_seed(current, engine, data, config, evaluate, need, save, progress, timings)
        finished.append(current)
        current = None
        save()
    return _result(finished, config, timings, untrained, evaluate is not None)


def _result(runs: list["_SeedRun"], config: TrainConfig, timings: dict, untrained: list[int],
            evaluated: bool) -> TrainResult:
    rows = [run.best if run.best is not None else run.model for run in runs]
    model = Gradiend(*(torch.cat([getattr(r, p) for r in rows]) for p in PARTS), [r.report.seed for r in runs])
    reports = [run.report for run in runs]
    flip = torch.tensor([evaluated and r.mean_first < r.mean_second for r in reports])
    model.flip_(flip)
    for report, flipped in zip(reports, flip.tolist()):
        if flipped:
            report.best_correlation = -report.best_correlation
            report.mean_first, report.mean_second = -report.mean_first, -report.mean_second
    def rank(i: int) -> tuple[bool, float]:
        r = reports[i].best_correlation
        return reports[i].converged, abs(r) if r == r else -1.0

    ranked = sorted(range(len(reports)), key=rank)
    return TrainResult(model, reports, ranked[-1], {run.report.seed: run.history for run in runs},
                       {k: round(v, 3) for k, v in timings.items()}, config.rule, untrained)


# -- resume files -----------------------------------------------------------------------------------
def _fingerprint(config: TrainConfig, data_seed: int, dim: int) -> str:
    return json.dumps({"config": asdict(config), "data_seed": data_seed, "dim": dim, "v": RESUME_VERSION},
                      sort_keys=True)


def _save_state(path: Path, finished: list[_SeedRun], current: _SeedRun | None, config: TrainConfig,
                data_seed: int, dim: int, timings: dict) -> None:
    tensors: dict[str, torch.Tensor] = {}
    runs = []
    for tag, run in [(f"done{i}", r) for i, r in enumerate(finished)] + ([("current", current)] if current else []):
        best = run.best if run.best is not None else run.model
        for p in PARTS:
            tensors[f"{tag}.best.{p}"] = getattr(best, p).cpu().contiguous()
        if tag == "current":
            for p in PARTS:
                m, v = run.optimiser.state[p]
                tensors[f"current.model.{p}"] = getattr(run.model, p).cpu().contiguous()
                tensors[f"current.m.{p}"], tensors[f"current.v.{p}"] = m.cpu().contiguous(), v.cpu().contiguous()
        state = run.rng.getstate()
        runs.append({"tag": tag, "report": asdict(run.report), "step": run.step, "history": run.history,
                     "has_best": run.best is not None,
                     "optimiser_step": run.optimiser.step_count if run.optimiser is not None else 0,
                     "rng": [state[0], list(state[1]), state[2]]})
    meta = {"fingerprint": _fingerprint(config, data_seed, dim),
            "runs": json.dumps(runs), "timings": json.dumps(timings)}
    write_bytes_atomic(path, st_save(tensors, metadata=meta))


def _load_state(path: Path, dim: int, config: TrainConfig, data_seed: int, device: torch.device | str = "cpu"):
    from safetensors import safe_open

    fix = f"delete {path.parent} to start the training afresh"
    try:
        with safe_open(str(path), "pt") as handle:
            meta = handle.metadata()
        tensors = st_load(path.read_bytes())
        runs_meta = json.loads(meta["runs"])
    except Exception as exc:  # noqa: BLE001 - any unreadable resume file means: cannot resume
        raise HarnessError(f"GRADIEND resume state {path} is unreadable ({type(exc).__name__})", fix) from None
    tensors = {name: t.to(device) for name, t in tensors.items()}  # loaded on the CPU: to the engine's device
    if meta.get("fingerprint") != _fingerprint(config, data_seed, dim):
        raise HarnessError(f"GRADIEND resume state {path} belongs to other training settings", fix)
    finished, current = [], None
    for entry in runs_meta:
        tag = entry["tag"]
        report = SeedReport(**entry["report"])
        best = Gradiend(*(tensors[f"{tag}.best.{p}"] for p in PARTS), [report.seed])
        if tag == "current":
            model = Gradiend(*(tensors[f"current.model.{p}"].clone() for p in PARTS), [report.seed])
            optimiser = Optimiser(model, AdamW(config.lr, config.weight_decay))
            optimiser.step_count = entry["optimiser_step"]
            optimiser.state = {p: (tensors[f"current.m.{p}"].clone(), tensors[f"current.v.{p}"].clone())
                               for p in PARTS}
        else:
            model, optimiser = best, None  # a finished seed needs no AdamW state
        version, internal, gauss = entry["rng"]
        rng = random.Random()
        rng.setstate((version, tuple(internal), gauss))
        run = _SeedRun(report, model, optimiser, rng, best if entry["has_best"] else None, entry["step"],
                       entry["history"], tag != "current")
        if tag == "current":
            current = run
        else:
            finished.append(run)
    return finished, current, json.loads(meta.get("timings", "{}"))
