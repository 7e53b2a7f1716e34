"""Output paths checked before the work starts, so a run never fails at its end on a place it cannot write.

:func:`ensure_writable_dir` and :func:`ensure_writable_file` create nothing the caller did not ask for:
they find the nearest folder that exists and try to create (and at once delete) a temporary file in
it — the only test that also holds for root, for read-only mounts and for ``/proc``-like folders,
where ``os.access`` says yes but a write fails.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from harness.errors import HarnessError


def _nearest_existing(path: Path) -> Path:
    current = Path(os.path.abspath(path))
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def _unwritable(folder: Path) -> str | None:
    """Why no file can be created in ``folder`` (or in the folders that would be made for it), or None."""
    folder = Path(os.path.abspath(folder))
    if folder.exists() and not folder.is_dir():
        return f"{folder} is a file, not a folder"
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".write-test."):
            pass
    except OSError as exc:
        return f"no file can be created in {existing} ({exc.strerror or exc})"
    return None


def ensure_writable_dir(path: str | Path, what: str, fix: str = "choose another folder") -> Path:
    """Raise a one-line HarnessError unless ``path`` is (or can be created as) a folder we can write into."""
    problem = _unwritable(Path(path))
    if problem:
        raise HarnessError(f"{what} {path} cannot be written: {problem}", fix)
    return Path(path)


def ensure_writable_file(path: str | Path, what: str, fix: str = "choose another file") -> Path:
    """Raise a one-line HarnessError unless ``path`` can be written as a file (its folder may not exist yet)."""
    path = Path(path)
    problem = f"{path} is a folder, not a file" if path.is_dir() else _unwritable(path.parent)
    if problem:
        raise HarnessError(f"{what} {path} cannot be written: {problem}", fix)
    return path
