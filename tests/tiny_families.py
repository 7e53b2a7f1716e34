"""Tiny random-weight models of the paper's five families (:mod:`harness.models.tiny`) for the family tests:
built once per session into a tmp folder from the first documents of the real corpus, the smallest settings of
every method and benchmark that still run their real code, and the grids run through the real pipeline."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import torch

from conftest import require_mirror
from harness.models.tiny import FAMILIES

DOCUMENTS = 3000  # corpus documents the tokenizers learn from (~2 s per tokenizer on one core)

# every method with options that shrink it to seconds on a tiny model (a config's method_options)
METHOD_OPTIONS = {
    "gradiend": {"seeds": [0], "max_steps": 4, "grid": "package"},
    "cda": {"corpus": None, "steps": 2, "batch_size": 4, "seq_len": 32},  # corpus: TinyFamilies.small_corpus
    # distinct rates, so a test sees which of the family's dropout fields got which rate
    "dropout": {"corpus": None, "steps": 2, "batch_size": 4, "seq_len": 32, "hidden_dropout": 0.25,
                "attention_dropout": 0.05},
    "inlp": {"n_per_class": 60, "iterations": 4, "stop_at_majority": False},  # random features: no early stop
    "sentdebias": {"n_examples": 60},
    "selfdebias": {},
    "leace": {"n_per_class": 60},
    "rlace": {"n_per_class": 60, "steps": 30, "evaluate_every": 10, "batch_size": 32},
}
COMBINATIONS = ["gradiend+inlp", "cda+sentdebias"]
VARIANTS = ["base", *METHOD_OPTIONS, *COMBINATIONS]

# every benchmark on a few examples; GLUE/SuperGLUE with the probe on their smallest tasks of each kind
BENCHMARKS = {
    "stereoset": {"split": "test-subset", "resamples": 10},
    "seat": {"tests": ["sent-weat6"], "n_permutations": 100, "resamples": 10},
    "crows": {"resamples": 10},
    "lm-quality": {"n_sentences": 30, "resamples": 10},
    "glue": {"protocol": "probe", "tasks": ["wnli", "stsb"], "max_train": 40, "resamples": 10},
    "superglue": {"protocol": "probe", "tasks": ["cb", "copa"], "max_train": 40, "resamples": 10},
}


class TinyFamilies:
    """Builds a family's model on first request (so running one family's tests builds only that one) and runs
    its grids through :func:`harness.pipeline.run_experiment`, one results folder and cache per family."""

    def __init__(self, root: Path, mirror: Path):
        self.root, self.mirror = root, mirror
        self._documents: list[str] | None = None
        self._grids: dict[tuple, dict] = {}

    def documents(self) -> list[str]:
        if self._documents is None:
            from harness.data.corpus import load_documents

            self._documents = load_documents()
        return self._documents

    def folder(self, family: str) -> Path:
        from harness.models.tiny import build_tiny_model

        folder = self.root / family
        if not (folder / "config.json").is_file():
            build_tiny_model(family, folder, self.documents()[:DOCUMENTS])
        return folder

    def lm(self, family: str):
        """A freshly loaded model (methods add hooks to and record lineage on the model they are given)."""
        from harness.models import load_model

        return load_model(str(self.folder(family)))

    def small_corpus(self) -> Path:
        """300 corpus documents as a text file: CDA/Dropout's continued pre-training corpus (option ``corpus``)."""
        path = self.root / "small-corpus.txt"
        if not path.is_file():
            path.write_text("\n".join(self.documents()[DOCUMENTS:DOCUMENTS + 300]) + "\n", encoding="utf-8")
        return path

    def method_options(self) -> dict[str, dict]:
        corpus = str(self.small_corpus())
        return {name: ({**opts, "corpus": corpus} if "corpus" in opts else dict(opts))
                for name, opts in METHOD_OPTIONS.items()}

    def results(self, family: str) -> Path:
        return self.root / f"runs-{family}" / "records"

    def context(self, family: str, seed: int = 0):
        """The run context the pipeline gives a group of this family's grid (same cache: fitted steps are reused)."""
        from harness.api import RunContext

        return RunContext(seed=seed, protocol="cpu", bias_type="gender", batch_size=64,
                          cache_dir=self.results(family).parent / "cache", progress=False)

    def apply(self, family: str, variant: str):
        """(model, steps log) of ``variant`` through :func:`harness.variants.apply_variant` with the grid's options
        and cache, so a step the grid fitted is loaded, not fitted again."""
        from harness.variants import apply_variant, parse_variant

        return apply_variant(self.lm(family), parse_variant(variant, self.method_options()), self.context(family))

    def prefit_gradiend(self, family: str) -> None:
        """Train the grid's GRADIEND on the base-model-filtered templates with every template kept.

        The filter keeps a template when the model prefers the class's word for most names; a random model
        prefers he or she whatever the name, so it keeps a few templates by chance and can leave a split empty
        (RoBERTa's validation split, here). The filter still runs; its verdict is then overridden, and the
        entry lands where the pipeline's ``gradiend`` step looks for it (same model, options and cache)."""
        from harness.registry import get_method
        from methods.gradiend.adapter import shared_folder
        from methods.gradiend.workflow import fit, prepare_data

        lm, ctx = self.lm(family), self.context(family)
        settings = get_method("gradiend")(**self.method_options()["gradiend"]).settings(ctx)
        data = prepare_data(lm, settings)
        assert data.info["filter"]["total"] > 0
        data.templates["kept"] = True
        fit(lm, settings, shared_folder(lm, settings, ctx), data=data)

    def grid(self, family: str, variants: list[str], benchmarks: list[str]) -> dict[tuple[str, str], object]:
        """Records {(variant, benchmark): RunRecord} of the grid run through the pipeline (records already
        written by an earlier grid of this family are reused, as ``run`` does)."""
        from harness.config import parse_config
        from harness.pipeline import run_experiment
        from harness.records import read_record

        key = (family, tuple(variants), tuple(benchmarks))
        if key not in self._grids:
            if any("gradiend" in v.split("+") for v in variants) and not self._grids.get((family, "gradiend")):
                self.prefit_gradiend(family)
                self._grids[(family, "gradiend")] = {}
            used = {m for v in variants for m in v.split("+")}
            config = parse_config({
                "name": f"families-{family}", "models": [str(self.folder(family))], "variants": variants,
                "benchmarks": [{"name": b, "options": BENCHMARKS[b]} for b in benchmarks],
                "method_options": {m: o for m, o in self.method_options().items() if m in used},
                "results_dir": str(self.results(family))}, "tiny-families")
            summary = run_experiment(config, progress=False)
            records = [read_record(p) for p in [*summary.written, *summary.skipped]]
            self._grids[key] = {(r.variant, r.benchmark): r for r in records}
        return self._grids[key]


_SESSION: list[TinyFamilies] = []  # one builder per test process, shared by the family test modules


def session_families(tmp_path_factory) -> TinyFamilies:
    """The process's :class:`TinyFamilies` (each family test module's session fixture returns this one, so the
    models and grids are built once however many modules ask)."""
    if not _SESSION:
        mirror = require_mirror()
        with pytest.MonkeyPatch.context() as patch:  # the corpus is read here, outside any test's mirror fixture
            patch.setenv("GRADIEND_BENCH_DATA", str(mirror))
            families = TinyFamilies(tmp_path_factory.mktemp("tiny-families"), mirror)
            families.documents()
        _SESSION.append(families)
    return _SESSION[0]


@contextlib.contextmanager
def one_torch_thread():
    """One intra-op thread for the family tests: a 64-wide model gains nothing from more, and on a loaded
    machine the threads' synchronisation costs several times the work (StereoSet 13 s on 2 threads, 2 s on 1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


__all__ = ["BENCHMARKS", "COMBINATIONS", "FAMILIES", "METHOD_OPTIONS", "VARIANTS", "TinyFamilies",
           "one_torch_thread", "session_families"]
