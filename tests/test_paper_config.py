"""configs/paper.yaml is the GRADIEND paper's grid: its seven hub models, its 15 variants, the `full` protocol —
and its dry run plans every (model, variant) group offline, without loading or downloading a model."""

from __future__ import annotations

from pathlib import Path

from harness.cli import main
from harness.config import expand, load_config
from harness.pipeline import group_runs

ROOT = Path(__file__).resolve().parents[1]
# the reference code's ids (aieng-lab/gradiend-bias, gradiend/training/gradiend_training.py)
PAPER_MODELS = ["bert-base-cased", "bert-large-cased", "distilbert-base-cased", "roberta-large", "gpt2",
                "meta-llama/Llama-3.2-3B", "meta-llama/Llama-3.2-3B-Instruct"]
# the rows of the paper's table (../shared/reference/gradiend-paper-table.md)
PAPER_VARIANTS = {"base", "gradiend", "cda", "dropout", "inlp", "sentdebias", "selfdebias", "leace", "rlace",
                  "gradiend+inlp", "gradiend+sentdebias", "cda+inlp", "cda+sentdebias", "dropout+inlp",
                  "dropout+sentdebias"}
ALL_BENCHMARKS = ["stereoset", "seat", "crows", "lm-quality", "glue", "superglue"]


def test_paper_config_is_the_papers_grid():
    config = load_config(ROOT / "configs" / "paper.yaml")
    assert config.models == PAPER_MODELS
    variants = [v.name for v in config.variants]
    assert len(variants) == 15 and set(variants) == PAPER_VARIANTS
    assert variants == [v.name for v in load_config(ROOT / "configs" / "zoo-cpu.yaml").variants]  # the same rows
    assert [b.name for b in config.benchmarks] == ALL_BENCHMARKS and all(not b.options for b in config.benchmarks)
    assert (config.protocol, config.bias_type, config.seeds) == ("full", "gender", [0])
    assert config.device == "auto"  # a GPU when there is one; a dry run on a CPU machine still validates


def test_paper_grid_plans_every_model_and_variant():
    specs = expand(load_config(ROOT / "configs" / "paper.yaml"))
    groups = group_runs(specs)
    assert {(g[0].model, g[0].variant) for g in groups} == {(m, v) for m in PAPER_MODELS for v in PAPER_VARIANTS}
    assert len(groups) == 7 * 15 and len(specs) == 7 * 15 * len(ALL_BENCHMARKS)
    assert {s.protocol for s in specs} == {"full"}
    gradiend = next(s for s in specs if s.variant == "gradiend")
    assert gradiend.variant_options["gradiend"]["pre_prune"] == "auto"  # what lets Llama-3.2-3B's GRADIEND fit


def test_paper_dry_run_is_offline_and_counts_the_grid(tmp_path, capsys):
    """conftest sets HF_HUB_OFFLINE and GRADIEND_BENCH_OFFLINE, so a dry run that reached for the hub would fail
    here; it writes nothing either."""
    results = tmp_path / "runs"
    assert main(["run", str(ROOT / "configs" / "paper.yaml"), "--dry-run", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert out.strip() == "paper: 630 run(s) in 105 group(s), 0 already recorded"
    assert not results.exists()
