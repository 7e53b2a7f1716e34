"""The GRADIEND workflow as one cached unit: data → filter → (pre-prune) → train → encoder → decoder grid.

Everything one trained GRADIEND produces lives in one folder, written through
:func:`harness.cache_entry.cached_folder` (a failure leaves nothing behind; every file checksummed in
``.sha256.json``, verified on each load) and finished by ``done.json``:
``data/`` (templates, names, neutral sentences as parquet and CSV), ``gradiend.safetensors`` (all seeds,
sign-normalised, with the kept index), ``training.json``, ``convergence.png``, ``encoder.json``,
``encoder_test.png``, ``decoder_grid.csv``, ``decoder_grid.png`` and ``selection.json``.

Protocols: ``full`` is the paper's (all templates, batch 32, 3 epochs, evaluation every ≤250 steps,
16 names per class in the base-model filter, the reference's α grid); ``cpu`` caps the templates at
400, trains 60 steps, evaluates every 20 and uses a smaller grid — recorded in every artefact.

Device: everything runs on the language model's device (``lm.device``: the gradient engine, the encoder-decoder,
the decoder grid); the pre-pruning sum and the kept index stay on the CPU (host memory: the sum over all selected
weights would cost GPU memory the training needs), and checkpoints are written from the CPU.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import torch

from harness.atomic import write_bytes_atomic, write_json_atomic
from harness.errors import HarnessError
from harness.models.interface import LanguageModel
from methods.gradiend.convergence import ConvergenceRule
from methods.gradiend.data import GradiendData, build_data
from methods.gradiend.evaluation import (
    GRIDS,
    METRICS,
    DecoderGrid,
    EncoderProbe,
    class_examples,
    encoder_metrics,
    neutral_examples,
    plot_distribution,
    plot_grid,
    screened_grid,
    select,
)
from methods.gradiend.feature_spec import FeatureSpec, load_feature
from methods.gradiend.gradients import GradientEngine, ParamMap, auto_micro_batch, make_batch, select_parameters
from methods.gradiend.instruct import chat_format
from methods.gradiend.model import Gradiend
from methods.gradiend.name_prediction import ClassWordObjective, NamePredictionObjective, name_weights
from methods.gradiend.plots import plot_convergence
from methods.gradiend.template_checks import check_splits, check_targets, filter_templates
from methods.gradiend.training import TrainConfig, TrainResult, sample_batch, train

CPU_MAX_STEPS = 400  # an upper bound: the cpu protocol stops a seed once it has converged

MEMORY_BUDGET = 2 * 1024 ** 3  # bytes for the encoder-decoders + AdamW state before pre-pruning kicks in


@dataclass(frozen=True)
class Settings:
    """Everything that determines a trained GRADIEND (part of the cache key, so frozen: change one with
    ``dataclasses.replace``)."""

    bias_type: str = "gender"
    pair: tuple[int, int] = (0, 1)
    feature: str | None = None  # a feature spec (shipped name or YAML path); None: the bias type's shipped spec
    protocol: str = "cpu"
    seed: int = 0
    include: list[str] | None = None
    exclude: list[str] | None = None
    pre_prune: float | str | None = "auto"  # fraction of weights kept, "auto" (fit MEMORY_BUDGET) or None
    post_prune: float | None = None
    seeds: tuple[int, ...] = (0, 1, 2)
    lr: float | None = None  # None: the reference's rate for the model family (see learning_rate)
    max_steps: int | None = None
    convergence: str = "reference"  # convergence rule (methods.gradiend.convergence)
    min_convergent_seeds: int | None = 1
    grid: str | None = None  # decoder grid: "paper" (240 candidates) or "package" (1-2-5); None: the protocol's
    bf16: bool = False
    source: str = "factual"
    target: str = "diff"

    def feature_spec(self) -> FeatureSpec:
        return load_feature(self.feature or self.bias_type)

    def key_fields(self) -> dict:
        """The fields as a cache key: ``feature`` only when set (so keys made before it existed stay valid),
        with its spec's content hash (editing a spec file retrains)."""
        fields = dict(vars(self))
        if fields.pop("feature") is not None:
            fields["feature"] = {"spec": self.feature, "sha256": self.feature_spec().sha256}
        return fields

    def protocol_values(self) -> dict:
        if self.protocol == "full":
            return {"max_templates": None, "filter_names": 16, "max_steps": None, "eval_every": 250,
                    "stop_on_convergence": False, "eval_examples": None, "n_neutral": 1000, "neutral_eval": 200,
                    "lms_sentences": 1000, "grid": "paper", "screen": None, "class_word_prompts": None}
        return {"max_templates": 400, "filter_names": 4, "max_steps": CPU_MAX_STEPS, "eval_every": 20,
                "stop_on_convergence": True, "eval_examples": 64, "n_neutral": 400, "neutral_eval": 64,
                "lms_sentences": 96, "grid": "paper", "screen": 4, "finalists": 8, "class_word_prompts": 96}

    def training_seeds(self) -> tuple[int, ...]:
        """The GRADIEND initialisation seeds of run seed k: ``seeds`` shifted by k·len(seeds), so every run seed
        trains its own, disjoint GRADIENDs (run seed 0: the configured seeds themselves). The run seed also
        draws the data split and order; without the shift, run seeds would differ only in their data."""
        return tuple(s + self.seed * len(self.seeds) for s in self.seeds)

    def learning_rate(self, lm: LanguageModel) -> float:
        """``lr``, else the reference's per-model rate: 1e-4 for Llama-architecture models (aieng-lab/gradiend-bias,
        ``gradiend/training/gradiend_training.py``: Llama-3.2-3B ``lr=1e-4``), 1e-5 otherwise (its default).

        The ``cpu`` protocol trains Llama-architecture models at 1e-3 (a deviation, in the record): with tens of
        millions of trained weights the MSE's 1/n makes every AdamW gradient far smaller than its ε = 1e-8, so
        AdamW acts as plain gradient descent with rate lr/ε and the class means grow in proportion to lr —
        SmolLM2 at 1e-4 reached class means +0.040/−0.014 after 20 steps (docs/gradiend.md)."""
        if self.lr is not None:
            return self.lr
        llama = getattr(lm.model.config, "model_type", "") == "llama"
        if self.protocol != "full" and llama:
            return 1e-3
        return 1e-4 if llama else 1e-5


def auto_prune_fraction(param_map: ParamMap) -> float | None:
    """``pre_prune: auto``: the fraction of weights whose encoder-decoder fits MEMORY_BUDGET, None if all fit."""
    per_dim = 4 * 9  # W_e, W_d, b_d and two AdamW moments each, fp32, for the seed in training
    return None if param_map.total * per_dim <= MEMORY_BUDGET else MEMORY_BUDGET / (param_map.total * per_dim)


def pre_prune(engine: GradientEngine, data: GradiendData, fraction: float, samples: int, seed: int,
              batch_size: int) -> torch.Tensor:
    """Indices of the top ``fraction`` of weights by mean |∇±W| over ``samples`` batches (both classes), on the CPU.
    The sum is kept in host memory: each gradient is copied there before taking its absolute value."""
    rng = random.Random(f"{seed}-pre-prune")
    total = torch.zeros(engine.map.total)
    for k in range(samples):
        texts, fact, counter = sample_batch(data, "train", k % 2, batch_size, rng)
        total += engine.gradients(make_batch(engine.lm, texts, fact, counter), ("diff",))["diff"].cpu().abs()
    keep = max(1, int(math.ceil(fraction * engine.map.total)))
    return torch.topk(total, keep, sorted=False).indices.sort().values


@dataclass
class Artefacts:
    folder: Path
    param_map: ParamMap
    model: Gradiend  # the selected seed, one row
    selection: dict
    summary: dict = field(default_factory=dict)
    cache_hit: bool = False  # loaded from a verified cache entry rather than trained now

    def update(self, metric: str, rule: str = "product") -> tuple[float, torch.Tensor]:
        chosen = self.selection[rule][metric]
        return chosen["alpha"], self.model.decode(chosen["h"], 0)


def prepare_data(lm: LanguageModel, settings: Settings, progress: bool = False) -> GradiendData:
    """Mine the templates/names/neutral text for ``settings`` and apply the base-model filter."""
    values = settings.protocol_values()
    data = build_data(settings.feature_spec(), settings.seed, pair=settings.pair, n_neutral=values["n_neutral"],
                      max_templates=values["max_templates"])
    check_targets(lm, data)
    filter_templates(lm, data, values["filter_names"], settings.seed, progress=progress)
    return data


def fit(lm: LanguageModel, settings: Settings, folder: Path, *, progress: bool = False,
        batch_size: int = 32, data: GradiendData | None = None) -> Artefacts:
    """Run (or load) the whole workflow for ``lm`` into ``folder`` (``data``: prepared data to reuse).

    The folder is one checksummed cache entry (:func:`harness.cache_entry.cached_folder`): every file is
    verified on load, a corrupt or unfinished folder is retrained (with a warning naming the file), and
    processes sharing the cache train once. ``Artefacts.cache_hit`` says whether it was reused.
    """
    from harness.cache_entry import cached_folder

    # beside the entry, not in its scratch folder (which a crash leaves to be cleaned up): a training
    # stopped after hours continues from its last evaluation
    resume_dir = Path(folder).with_name(Path(folder).name + ".resume")

    def build(scratch: Path) -> None:
        timings: dict[str, float] = {}
        clock = time.perf_counter()
        prepared = data if data is not None else prepare_data(lm, settings, progress)
        check_splits(lm, prepared)
        prepared.save(scratch / "data")
        timings["data"] = time.perf_counter() - clock
        engine, result, model = step_train(lm, settings, prepared, scratch, batch_size=batch_size,
                                           progress=progress, timings=timings, resume_dir=resume_dir)
        clock = time.perf_counter()
        encoder = step_encoder(engine, settings, prepared, model, scratch, progress=progress)
        timings["encoder_eval"] = time.perf_counter() - clock
        clock = time.perf_counter()
        step_decoder(engine, settings, prepared, model, scratch, progress=progress)
        timings["decoder_eval"] = time.perf_counter() - clock
        summary = {"protocol": settings.protocol, "classes": list(prepared.classes.names), "data": prepared.info,
                   "parameters": {"selected": engine.map.total, "trained": engine.map.dim},
                   "training": result.summary(), "encoder": encoder,
                   "seconds": {k: round(v, 2) for k, v in timings.items()}}
        write_json_atomic(scratch / "done.json", summary)

    artefacts, hit = cached_folder(Path(folder), build, load_artefacts)
    artefacts.cache_hit = hit
    shutil.rmtree(resume_dir, ignore_errors=True)
    return artefacts


def step_train(lm: LanguageModel, settings: Settings, data: GradiendData, folder: Path, *, batch_size: int = 32,
               progress: bool = False, timings: dict | None = None, resume_dir: Path | None = None
               ) -> tuple[GradientEngine, TrainResult, Gradiend]:
    """Pre-prune, train the seeds, post-prune; writes the checkpoints, training.json, convergence.png.
    ``resume_dir`` holds the training state after every evaluation, so a stopped run continues there."""
    timings = timings if timings is not None else {}
    values = settings.protocol_values()
    param_map = select_parameters(lm, settings.include, settings.exclude)
    engine = GradientEngine(lm, param_map, bf16=settings.bf16, micro_batch=auto_micro_batch(lm))
    clock = time.perf_counter()
    fraction = auto_prune_fraction(param_map) if settings.pre_prune == "auto" else settings.pre_prune
    if fraction is not None and fraction < 1:
        param_map.index = pre_prune(engine, data, float(fraction), 8, settings.seed, batch_size)
    timings["pre_prune"] = time.perf_counter() - clock
    n_train = len(data.split("train"))
    steps = settings.max_steps or values["max_steps"] or max(150, 3 * n_train // batch_size)
    config = TrainConfig(settings.training_seeds(), settings.learning_rate(lm), batch_size=batch_size, max_steps=steps,
                         eval_every=values["eval_every"], source=settings.source, target=settings.target,
                         rule=settings.convergence, min_convergent_seeds=settings.min_convergent_seeds,
                         stop_on_convergence=values["stop_on_convergence"])
    val_probe = EncoderProbe(engine, class_examples(data, "val", settings.seed, values["eval_examples"]))
    clock = time.perf_counter()
    result = train(engine, data, config, val_probe.correlations, data_seed=settings.seed, progress=progress,
                   resume_dir=resume_dir)
    timings["train"] = time.perf_counter() - clock
    model = result.model.row(result.selected)
    if settings.post_prune is not None and settings.post_prune < 1:
        keep = torch.topk(model.w_d[0].abs(), max(1, int(settings.post_prune * model.dim))).indices.sort().values
        model.prune_(keep)
        keep = keep.cpu()  # the map's index lives on the CPU (ParamMap.index_on)
        param_map.index = keep if param_map.index is None else param_map.index[keep]  # the engine shares this map
    index = param_map.index if param_map.index is not None else torch.empty(0, dtype=torch.long)
    result.model.meta = model.meta = {"param_map": param_map.to_json(), "settings": asdict(settings),
                                      "model": lm.spec}
    if settings.post_prune is None:
        result.model.save(folder / "all_seeds.safetensors", {"index": index})
    model.save(folder / "gradiend.safetensors", {"index": index})
    write_json_atomic(folder / "training.json", {"config": asdict(config), **result.summary(),
                                                 "history": {str(k): v for k, v in result.history.items()},
                                                 "protocol": settings.protocol})
    plot_convergence(result, folder / "convergence.png", ConvergenceRule.named(settings.convergence))
    return engine, result, model


def step_encoder(engine: GradientEngine, settings: Settings, data: GradiendData, model: Gradiend, folder: Path,
                 *, progress: bool = False) -> dict:
    """Encoder on the test split (unseen names) and neutral text; writes encoder.json and encoder_test.png."""
    values = settings.protocol_values()
    model = model.to(engine.device)  # a GRADIEND loaded from its checkpoint is on the CPU
    test = class_examples(data, "test", settings.seed)
    neutral = neutral_examples(data.neutral, settings.seed, values["neutral_eval"])
    examples = type(test)(*(getattr(test, f) + getattr(neutral, f)
                            for f in ("texts", "factual", "counterfactual", "labels")))
    h = EncoderProbe(engine, examples).encode(model, 0, progress)
    labels = torch.tensor(examples.labels)
    encoder = {"split": "test", "protocol": settings.protocol, **encoder_metrics(h, labels)}
    write_json_atomic(folder / "encoder.json", encoder)
    # per-example encodings (labels +1/−1, 0 neutral) in the order of the test examples, for intervals and plots
    write_bytes_atomic(folder / "encoder_test.csv",
                       pd.DataFrame({"h": h.numpy(), "label": labels.numpy()}).to_csv(index=False).encode())
    plot_distribution(h, labels, data.classes.names, folder / "encoder_test.png",
                      f"{engine.lm.spec} {data.classes.key}: test names unseen, r={encoder['pearson']:.3f}")
    return encoder


def selection_objective(lm: LanguageModel, settings: Settings, data: GradiendData):
    """The decoder-selection objective and its description for the records, as the feature spec says:
    ``name-prediction`` (gender) → the paper's name prediction on the GENTypes prompts (offline: the project's
    substitute set); ``class-words`` (race, religion, any other feature) → the class words on validation
    templates (the paper defines no name task for them)."""
    values = settings.protocol_values()
    chat = chat_format(lm)
    described = {"chat_template": chat.note()} if chat.used else {}  # only then: other artefacts stay as they were
    if settings.feature_spec().objective == "name-prediction":
        from methods.gradiend.selection_data import load_name_genders, load_selection_prompts

        rows, prompt_source = load_selection_prompts()
        names, name_source = load_name_genders()
        texts = [r["text"] if isinstance(r, dict) else r.text for r in rows]
        weights = name_weights(lm, names)
        objective = NamePredictionObjective(lm, texts, weights)
        return objective, {"kind": objective.kind, "prompts": prompt_source, "n_prompts": len(texts),
                           "names": name_source, "n_names": weights.n_names, "n_name_tokens": weights.n_tokens,
                           **described}
    prompts = class_examples(data, "val", settings.seed + 1, values["class_word_prompts"])
    first = [f if lab > 0 else c for f, c, lab in zip(prompts.factual, prompts.counterfactual, prompts.labels)]
    second = [c if lab > 0 else f for f, c, lab in zip(prompts.factual, prompts.counterfactual, prompts.labels)]
    objective = ClassWordObjective(lm, prompts.texts, first, second)
    return objective, {"kind": objective.kind, "prompts": "validation templates", "n_prompts": len(prompts.texts),
                       "words": [list(w) for w in data.classes.words], **described}


def step_decoder(engine: GradientEngine, settings: Settings, data: GradiendData, model: Gradiend, folder: Path,
                 *, progress: bool = False) -> dict:
    """Decoder grid with the selection objective + neutral LMS sentences; writes decoder_grid.csv/png and
    selection.json (the chosen rows per rule and metric, the objective and the grid)."""
    values = settings.protocol_values()
    model = model.to(engine.device)  # a GRADIEND loaded from its checkpoint is on the CPU
    objective, described = selection_objective(engine.lm, settings, data)
    lms_text = data.neutral[values["neutral_eval"]:values["neutral_eval"] + values["lms_sentences"]]
    factors, alphas = GRIDS[settings.grid or values["grid"]]
    full = DecoderGrid(engine, objective, lms_text, settings.seed)
    if values["screen"]:  # cpu: every candidate on a quarter of the prompts/sentences, the finalists on all
        screen = DecoderGrid(engine, objective.subset(values["screen"]), lms_text[::values["screen"]], settings.seed)
        grid = screened_grid(full, screen, model, 0, factors, alphas, values["finalists"], progress)
    else:
        grid = full.run(model, 0, factors, alphas, progress)
    grid.to_csv(folder / "decoder_grid.csv", index=False)
    plot_grid(grid, folder / "decoder_grid.png", f"{engine.lm.spec} {data.classes.key} ({settings.protocol})")
    selection = {rule: {m: select(grid, m, rule) for m in METRICS} for rule in ("product", "lms-threshold")}
    selection["objective"] = {**described, "lms_sentences": len(lms_text)}
    selection["grid"] = {"name": settings.grid or values["grid"], "feature_factors": factors, "alphas": alphas,
                         "candidates": len(factors) * len(alphas), "unchanged_model_in_argmax": True,
                         "screen_every": values["screen"], "finalists_per_metric": values.get("finalists"),
                         "scored_on_full_sets": int((grid["scored_on"] == "full").sum()) - 1
                         if "scored_on" in grid else len(factors) * len(alphas)}
    write_json_atomic(folder / "selection.json", selection)
    return selection


def load_trained(folder: Path) -> tuple[Gradiend, ParamMap]:
    """The selected seed's checkpoint and its parameter map from ``folder``."""
    folder = Path(folder)
    model, extra = Gradiend.load(folder / "gradiend.safetensors")
    pm = model.meta["param_map"]
    index = extra.get("index")
    param_map = ParamMap(pm["names"], [tuple(s) for s in pm["shapes"]],
                         index if index is not None and index.numel() else None)
    if param_map.dim != model.dim:
        raise HarnessError(f"GRADIEND checkpoint {folder / 'gradiend.safetensors'} does not match its parameter map",
                           f"delete {folder} and run again")
    return model, param_map


def load_artefacts(folder: Path) -> Artefacts:
    """A trained and evaluated GRADIEND folder: made by :func:`fit` (with ``done.json``) or by the CLI steps
    ``train`` + ``eval-decoder`` (``training.json``, ``selection.json``, optionally ``encoder.json``)."""
    folder = Path(folder)
    fix = f"delete {folder} and run again"
    try:
        selection = json.loads((folder / "selection.json").read_text())
        if (folder / "done.json").is_file():
            summary = json.loads((folder / "done.json").read_text())
        else:
            training = json.loads((folder / "training.json").read_text())
            encoder = folder / "encoder.json"
            summary = {"protocol": training.get("protocol"),
                       "training": {k: v for k, v in training.items() if k not in ("config", "history", "protocol")},
                       "encoder": json.loads(encoder.read_text()) if encoder.is_file() else None}
    except FileNotFoundError as exc:
        step = "eval-decoder" if Path(exc.filename).name == "selection.json" else "train"
        raise HarnessError(f"GRADIEND folder {folder} has no {Path(exc.filename).name}",
                           f"run `gradiend-bench gradiend {step} --dir {folder}` first") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise HarnessError(f"GRADIEND artefacts in {folder} are incomplete or corrupt ({type(exc).__name__})",
                           fix) from None
    model, param_map = load_trained(folder)
    return Artefacts(folder, param_map, model, selection, summary)
