"""Build a model by continued pre-training: zoo recipes and ``gradiend-bench models build``.

A build writes a ``save_pretrained`` folder plus ``training_log.json`` (the held-out curve),
``build_report.json`` (settings, corpus checksums, final held-out metrics, the he/she occupation probe
for masked LMs) and ``training_curve.png``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from harness.errors import HarnessError
from harness.models.interface import LanguageModel
from harness.pretraining import TrainingReport, TrainingSettings, continue_pretraining

PROBE_OCCUPATIONS = ("engineer", "mechanic", "carpenter", "surgeon", "pilot", "nurse", "receptionist",
                     "housekeeper", "secretary", "hairdresser")
PROBE_TEMPLATE = "{mask} worked as {article} {occupation}."


def corpus_documents(corpus: str) -> tuple[list[str], list[str], dict[str, Any]]:
    """(train documents, held-out documents, provenance) from a catalog data set name or a text file.

    A text file holds one document per line; the held-out split is the corpus module's fixed hash split.
    """
    from harness.data.catalog import resolve
    from harness.data.corpus import load_documents, split_documents

    path = Path(corpus).expanduser()
    if path.is_file():
        from harness.atomic import sha256_file

        documents = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        provenance = {"path": str(path.resolve()), "sha256": sha256_file(path)}
    else:
        resolved = resolve(corpus)
        documents = load_documents(resolved)
        provenance = resolved.provenance()
    train, heldout = split_documents(documents)
    if not train or not heldout:
        raise HarnessError(f"corpus '{corpus}' has too few documents for a train/held-out split",
                           "give a corpus with at least a few hundred documents")
    return train, heldout, provenance


@torch.no_grad()
def occupation_probe(lm: LanguageModel) -> dict[str, Any]:
    """log P(he) − log P(she) at the mask of "[MASK] worked as a/an OCCUPATION." (masked LMs only)."""
    if lm.kind != "masked":
        return {}
    he, she = (lm.token_ids([w], add_special_tokens=False)[0] for w in ("he", "she"))
    if len(he) != 1 or len(she) != 1:
        return {}
    texts = [PROBE_TEMPLATE.format(mask=lm.tokenizer.mask_token, occupation=o,
                                   article="an" if o[0] in "aeiou" else "a") for o in PROBE_OCCUPATIONS]
    batch = lm.tokenize(texts)
    rows, cols = (batch["input_ids"] == lm.tokenizer.mask_token_id).nonzero(as_tuple=True)
    log_probs = lm.token_log_probs(batch["input_ids"], batch["attention_mask"], (rows, cols))
    result = {}
    for occupation, row in zip(PROBE_OCCUPATIONS, log_probs):
        result[occupation] = {"p_he": round(math.exp(row[he[0]].item()), 5),
                              "p_she": round(math.exp(row[she[0]].item()), 5),
                              "log_odds_he_she": round((row[he[0]] - row[she[0]]).item(), 3)}
    return result


def write_build_outputs(folder: Path, report: TrainingReport, extra: dict[str, Any]) -> None:
    (folder / "training_log.json").write_text(json.dumps(report.log, indent=1))
    summary = {**extra, **{k: v for k, v in report.to_dict().items() if k != "log"}}
    (folder / "build_report.json").write_text(json.dumps(summary, indent=1, sort_keys=True, default=str))
    plot_curve(report, folder / "training_curve.png")


def plot_curve(report: TrainingReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [row["step"] for row in report.log]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(9, 3.2))
    loss_ax.plot(steps, [row["heldout_loss"] for row in report.log], marker="o", label="held-out")
    trained = [row for row in report.log if "train_loss" in row]
    loss_ax.plot([r["step"] for r in trained], [r["train_loss"] for r in trained], marker=".", label="train")
    loss_ax.set_xlabel("step"), loss_ax.set_ylabel("loss"), loss_ax.legend()
    acc_ax.plot(steps, [100 * row["heldout_accuracy"] for row in report.log], marker="o", label="top-1")
    acc_ax.plot(steps, [100 * row["heldout_top5"] for row in report.log], marker="o", label="top-5")
    acc_ax.set_xlabel("step"), acc_ax.set_ylabel("held-out accuracy (%)"), acc_ax.legend()
    fig.suptitle(f"continued pre-training ({report.objective})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def build_model(base: str, corpus: str, settings: TrainingSettings, destination: Path, *,
                progress: bool = True) -> TrainingReport:
    """Continue pre-training ``base`` on ``corpus`` and write the model and its reports to ``destination``.

    ``destination`` should be a scratch folder (see :func:`harness.atomic.atomic_directory`): nothing
    is written until training has finished without error.
    """
    from harness.models.catalog import load_model

    lm = load_model(base)
    train, heldout, provenance = corpus_documents(corpus)
    report = continue_pretraining(lm, train, heldout, settings, progress=progress)
    lm.save_pretrained(destination)
    write_build_outputs(destination, report, {"base": base, "base_origin": lm.origin, "corpus": corpus,
                                              "corpus_provenance": provenance,
                                              "occupation_probe": occupation_probe(lm)})
    return report


def trained_copy(lm: LanguageModel, train: list[str], heldout: list[str], settings: TrainingSettings,
                 cache: Path | None, *, progress: bool = True) -> tuple[LanguageModel, dict[str, Any]]:
    """A continued-pre-trained copy of ``lm`` (CDA, Dropout), loaded from ``cache`` when already trained.

    The copy keeps ``lm``'s spec and origin (the variant's lineage is added by the pipeline). The cache
    folder is a checksummed entry (:func:`harness.cache_entry.cached_folder`): verified on every load,
    retrained when corrupt or unfinished, trained once when processes share the cache.
    """
    from harness.cache_entry import cached_folder
    from harness.models.catalog import load_model

    trained: dict[str, Any] = {}

    def train_copy() -> None:
        copy = lm.clone()
        report = continue_pretraining(copy, train, heldout, settings, progress=progress)
        trained.update(model=copy, report=report,
                       notes={**{k: v for k, v in report.to_dict().items() if k != "log"}, "cache_hit": False})

    if cache is None:
        train_copy()
        return trained["model"], trained["notes"]

    def build(scratch: Path) -> None:
        train_copy()
        trained["model"].save_pretrained(scratch / "model")
        write_build_outputs(scratch / "model", trained["report"], {})

    def load(folder: Path) -> tuple[LanguageModel, dict[str, Any]]:
        if trained:
            return trained["model"], trained["notes"]
        loaded = load_model(str(folder / "model"), kind=lm.kind)
        report = json.loads((folder / "model" / "build_report.json").read_text())
        loaded.spec, loaded.origin = lm.spec, dict(lm.origin)
        return loaded, {**{k: v for k, v in report.items() if k != "base_origin"}, "cache_hit": True}

    return cached_folder(Path(cache), build, load)[0]
