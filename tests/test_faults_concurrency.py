"""Concurrent runs on one results folder and killed run processes (issue 14, cases 2 and 3): real
`gradiend-bench run` processes of a tiny grid on zoo:bert-tiny with the real corpus."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

# The CLI with INFO logs from the cache layer, so each process reports the cache entries it built.
RUN_WITH_CACHE_LOG = ("import logging, sys; "
                      "logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(name)s: %(message)s'); "
                      "logging.getLogger('harness.cache_entry').setLevel(logging.INFO); "
                      "from harness.cli import main; sys.exit(main(sys.argv[1:]))")


def _config(tmp_path: Path, variants: list[str], seeds: list[int], n_sentences: int = 50) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({
        "name": "faults", "models": ["zoo:bert-tiny"], "variants": variants, "seeds": seeds,
        "benchmarks": [{"name": "lm-quality", "options": {"n_sentences": n_sentences, "resamples": 100}}],
        "protocol": "cpu", "bias_type": "gender", "results_dir": str(tmp_path / "runs"),
        **({"method_options": {"leace": {"n_per_class": 100}}} if "leace" in variants else {})}))
    return path


def _records(results: Path) -> list[Path]:
    return sorted(p for p in results.rglob("*.json") if not p.name.startswith(".")) if results.is_dir() else []


def test_two_runs_on_one_folder_both_finish_and_compute_each_entry_once(tmp_path, mirror, private_cache):
    config = _config(tmp_path, ["base", "leace"], [0])
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-c", RUN_WITH_CACHE_LOG, "run", str(config), "--quiet"]
    runs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    outputs = [run.communicate(timeout=600) for run in runs]
    for run, (out, err) in zip(runs, outputs):
        assert run.returncode == 0, err
        assert "Traceback" not in err and "error:" not in err
    wrote = [int(re.search(r"wrote (\d+) record", out)[1]) for out, _ in outputs]
    skipped = [int(re.search(r"skipped (\d+) existing", out)[1]) for out, _ in outputs]
    assert sum(wrote) == 2 and [w + s for w, s in zip(wrote, skipped)] == [2, 2]  # each record computed once
    built = [line.split("built cache entry ")[1] for _, err in outputs for line in err.splitlines()
             if "built cache entry" in line]
    assert sum("/methods/leace/" in entry for entry in built) == 1  # one LEACE fit for both processes
    assert any("/features/" in entry for entry in built)
    assert len(built) == len(set(built)), built  # no cache entry built twice
    assert len(_records(tmp_path / "runs")) == 2
    assert not list((tmp_path / "cache").rglob("*.partial")) and not list((tmp_path / "cache").rglob("*.tmp"))


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc, no extra dependency)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie (a dead child not yet reaped by whoever adopted it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs Linux /proc")
def test_sigkilled_parallel_run_leaves_no_live_worker(tmp_path, mirror):
    config = _config(tmp_path, ["base"], list(range(12)), n_sentences=200)
    parent = subprocess.Popen([sys.executable, "-m", "harness", "run", str(config), "--jobs", "2", "--quiet"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300  # a bound on waiting for the first record, not a timing assertion
        while not _records(tmp_path / "runs"):  # workers are inside their groups once a record exists
            assert parent.poll() is None and time.monotonic() < deadline, parent.stderr.read()
            time.sleep(0.2)
        workers = [pid for pid in _children(parent.pid) if _running(pid)]
        assert workers, "the run has no worker processes"
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    survivors = workers
    for _ in range(100):  # up to ~10 s for the workers to notice
        survivors = [pid for pid in survivors if _running(pid)]
        if not survivors:
            break
        time.sleep(0.1)
    for pid in survivors:  # do not leave them behind after a failure
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"workers {survivors} outlived the killed run process"
    assert len(_records(tmp_path / "runs")) < 12
