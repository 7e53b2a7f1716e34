"""Environment facts for run records: package versions, git commit, platform."""

from __future__ import annotations

import functools
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PACKAGES = ("gradiend-bench", "torch", "transformers", "datasets", "lm-eval", "numpy", "scipy", "scikit-learn",
            "pandas", "safetensors", "gguf", "accelerate", "joblib", "concept-erasure")
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@functools.lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


@functools.lru_cache(maxsize=1)
def git_state() -> dict[str, object]:
    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def environment() -> dict[str, object]:
    import torch

    return {"python": sys.version.split()[0], "platform": platform.platform(), "machine": platform.machine(),
            "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available(),
            "packages": package_versions()}
