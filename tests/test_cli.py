"""The CLI end to end: listing, bad input → one line on stderr and exit code 2, a real run."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import PROJECT_ROOT


def cli(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, env=env, timeout=600)


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_models_list_shows_both_zoo_models():
    proc = cli("models", "list")
    assert proc.returncode == 0
    assert "zoo:bert-tiny" in proc.stdout and "zoo:smollm2-135m" in proc.stdout


def test_registries_list():
    assert "lm-quality" in cli("benchmarks", "list").stdout
    assert "base" in cli("methods", "list").stdout


def test_bad_model_name(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("name: x\nmodels: [zoo:gpt-9]\nbenchmarks: [lm-quality]\n")
    assert_one_line_error(cli("run", str(config)), "unknown zoo model 'zoo:gpt-9'", "zoo:bert-tiny")
    assert_one_line_error(cli("models", "fetch", "zoo:gpt-9"), "unknown zoo model")


def test_bad_config(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("name: x\nmodels: [zoo:bert-tiny]\nbenchmarks: [lm-quality]\nsede: [0]\n")
    assert_one_line_error(cli("run", str(config)), "unknown key 'sede'", "allowed keys")
    assert_one_line_error(cli("run", str(tmp_path / "none.yaml")), "not found")


def test_gradiend_steps_check_device_before_loading(tmp_path):
    """A GPU this machine lacks (CI has none: cuda:7 is absent everywhere it runs) or a made-up device is one line
    naming --device, and nothing is written."""
    run = tmp_path / "g"
    assert_one_line_error(cli("gradiend", "data", "--model", "zoo:bert-tiny", "--dir", str(run), "--device", "cuda:7"),
                          "--device: cuda:7 is not available here", "use device: cpu")
    assert_one_line_error(cli("gradiend", "data", "--model", "zoo:bert-tiny", "--dir", str(run), "--device", "tpu"),
                          "--device: unknown device 'tpu'")
    assert not run.exists()


def test_missing_data_set():
    env = {"GRADIEND_BENCH_DATA": ""}
    assert_one_line_error(cli("data", "fetch", "stereoset-test-subset", env_extra=env),
                          "data set 'stereoset-test-subset' not found", "GRADIEND_BENCH_DATA not set")
    assert_one_line_error(cli("data", "fetch", "no-such-data"), "unknown data set 'no-such-data'")


def test_data_verify_reports_every_mirrored_data_set(mirror):
    proc = cli("data", "verify")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ["stereoset-dev", "stereoset-test-subset", "seat", "crows-pairs", "bias-attribute-words",
                 "gender-specific-words", "glue-cola", "glue-sst2", "glue-mrpc", "glue-rte", "glue-stsb", "glue-wnli",
                 "superglue-boolq", "superglue-cb", "superglue-copa", "superglue-multirc", "superglue-rte",
                 "superglue-wic", "superglue-wsc", "superglue-ax-b", "superglue-ax-g", "corpus-en"]:
        row = next(line for line in proc.stdout.splitlines() if line.startswith(name + " "))
        assert " ok " in row and "mirror" in row, row
    assert "glue-qnli" in proc.stdout and "partial" in proc.stdout
    assert "MANIFEST:" not in proc.stdout


def test_run_and_leaderboard(tmp_path, mirror):
    config = tmp_path / "c.yaml"
    config.write_text("name: x\nmodels: [zoo:bert-tiny]\nbenchmarks: [{name: lm-quality, options: {n_sentences: 30}}]\n"
                      f"results_dir: {tmp_path / 'runs'}\n")
    proc = cli("run", str(config), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "wrote 1 record(s)" in proc.stdout
    assert "skipped 1 existing" in cli("run", str(config), "--quiet").stdout
    board = cli("leaderboard", "--results", str(tmp_path / "runs"))
    assert board.returncode == 0 and "| zoo:bert-tiny | base" in board.stdout and "lm-quality:accuracy" in board.stdout
