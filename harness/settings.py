"""Where things live: cache, data mirror, results. All overridable by environment variables."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "GRADIEND_BENCH_CACHE"
DATA_ENV = "GRADIEND_BENCH_DATA"
WHEELHOUSE_ENV = "GRADIEND_BENCH_WHEELHOUSE"
OFFLINE_ENV = "GRADIEND_BENCH_OFFLINE"


def cache_dir() -> Path:
    """Root of every downloaded or derived artefact (wheels, unpacked models, fetched data)."""
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "gradiend-bench"
    return Path(root).expanduser().resolve()


def mirror_dir() -> Path | None:
    """The offline data mirror (e.g. ``../shared/data``), or None when not configured."""
    value = os.environ.get(DATA_ENV)
    return Path(value).expanduser().resolve() if value else None


def wheelhouse_dir() -> Path | None:
    """An optional folder of pre-downloaded wheels, searched before ``pip download``."""
    value = os.environ.get(WHEELHOUSE_ENV)
    return Path(value).expanduser().resolve() if value else None


def offline() -> bool:
    """True when network sources (URLs, the Hugging Face hub) must not be tried."""
    flags = (os.environ.get(OFFLINE_ENV), os.environ.get("HF_HUB_OFFLINE"))
    return any(v not in (None, "", "0", "false", "False") for v in flags)
