"""The grid runs on a real dask.distributed cluster on loopback through the joblib dask backend."""

from __future__ import annotations

import pytest

from harness.config import parse_config
from harness.pipeline import run_experiment
from harness.records import read_record

distributed = pytest.importorskip("distributed")


def test_grid_runs_on_local_dask_cluster(tmp_path, mirror):
    config = parse_config({"name": "dask", "models": ["zoo:bert-tiny"], "seeds": [0, 1], "variants": ["base", "damage"],
                           "benchmarks": [{"name": "lm-quality", "options": {"n_sentences": 20, "resamples": 100}}],
                           "results_dir": str(tmp_path / "runs")})
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        summary = run_experiment(config, jobs=2, backend="dask", scheduler=cluster.scheduler_address, progress=False)
        with distributed.Client(cluster.scheduler_address) as client:
            assert len(client.scheduler_info()["workers"]) == 2
    assert len(summary.written) == 3  # base once (seed-free), the seeded damage control per seed
    local = run_experiment(config, results_dir=tmp_path / "local", progress=False)
    assert [read_record(p).scores for p in summary.written] == [read_record(p).scores for p in local.written]


def test_unreachable_scheduler_is_one_line_error(tmp_path, mirror):
    from harness.errors import HarnessError

    config = parse_config({"name": "dask", "models": ["zoo:bert-tiny"], "results_dir": str(tmp_path),
                           "benchmarks": [{"name": "lm-quality", "options": {"n_sentences": 5}}]})
    with pytest.raises(HarnessError, match="cannot reach dask scheduler tcp://127.0.0.1:9"):
        run_experiment(config, backend="dask", scheduler="tcp://127.0.0.1:9", scheduler_timeout_s=2)
