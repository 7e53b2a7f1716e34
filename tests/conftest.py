"""Shared fixtures: offline mode, the data mirror (skip when absent), real zoo models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["GRADIEND_BENCH_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_DEFAULT_MIRROR = PROJECT_ROOT.parent / "shared" / "data"


def mirror_path() -> Path | None:
    value = os.environ.get("GRADIEND_BENCH_DATA")
    path = Path(value) if value else _DEFAULT_MIRROR
    return path if (path / "MANIFEST.tsv").is_file() else None


@pytest.fixture
def mirror(monkeypatch) -> Path:
    path = mirror_path()
    if path is None:
        pytest.skip("data mirror absent: set GRADIEND_BENCH_DATA to ../shared/data to run this test")
    monkeypatch.setenv("GRADIEND_BENCH_DATA", str(path))
    return path


@pytest.fixture
def no_mirror(monkeypatch):
    monkeypatch.delenv("GRADIEND_BENCH_DATA", raising=False)


@pytest.fixture
def shared_wheels(monkeypatch):
    """Point the wheelhouse at the user cache's wheels so tests with a private cache do not re-download."""
    from harness.wheels import wheels_cache

    monkeypatch.setenv("GRADIEND_BENCH_WHEELHOUSE", str(wheels_cache()))


@pytest.fixture
def private_cache(tmp_path, monkeypatch, shared_wheels):
    monkeypatch.setenv("GRADIEND_BENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def bert_tiny():
    from harness.models import load_model

    return load_model("zoo:bert-tiny")


@pytest.fixture(scope="session")
def smollm2():
    from harness.models import load_model

    return load_model("zoo:smollm2-135m")


@pytest.fixture(params=["bert_tiny", "smollm2"])
def any_lm(request):
    lm = request.getfixturevalue(request.param)
    yield lm
    lm.clear_hooks()
