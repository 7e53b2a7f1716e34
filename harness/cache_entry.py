"""Checksummed cache entries, verified on every load and built once under a lock.

Every cache the harness and its methods keep (fitted hooks, pooled features, trained copies, GRADIEND
artefacts) goes through this module:

* a **file** entry ``x`` has a sidecar ``x.sha256`` with the sha256 of its bytes (:func:`write_file`,
  :func:`read_file`);
* a **folder** entry has a manifest ``.sha256.json`` with the sha256 of every file in it, written last
  (:func:`seal`, :func:`problem`).

An entry whose bytes do not match, or that has no checksum (written by older code), is a miss: the caller
rebuilds it and a warning names the file. :func:`cached_file` and :func:`cached_folder` add the lock
(:mod:`harness.locks`) so concurrent processes build an entry once and the others reuse it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Callable, TypeVar

from harness.atomic import atomic_directory, sha256_file, write_bytes_atomic, write_json_atomic, write_text_atomic
from harness.locks import file_lock

log = logging.getLogger(__name__)
MANIFEST = ".sha256.json"
T = TypeVar("T")


# -- file entries ----------------------------------------------------------------------------------
def sidecar(path: Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def write_file(path: Path, data: bytes) -> None:
    """Write ``data`` then its checksum, each atomically (a crash in between leaves a mismatch = a miss)."""
    write_bytes_atomic(path, data)
    write_text_atomic(sidecar(path), hashlib.sha256(data).hexdigest() + "\n")


def read_file(path: Path) -> bytes | None:
    """The bytes of ``path`` if present and matching its checksum; None (with a warning if the file
    exists) when missing, unchecksummed or corrupt."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        expected = sidecar(path).read_text().strip()
    except (OSError, UnicodeDecodeError):
        log.warning("cache entry %s has no checksum (written by older code); rebuilding it", path)
        return None
    if hashlib.sha256(data).hexdigest() != expected:
        log.warning("cache entry %s does not match its sha256 (corrupt); rebuilding it", path)
        return None
    return data


def cached_file(path: Path, build: Callable[[], bytes], decode: Callable[[bytes], T]) -> tuple[T, bool]:
    """``(decode(bytes), cache_hit)`` for the verified entry at ``path``, else build, write and decode.

    ``decode`` may raise ValueError for bytes that are intact but unusable (then the entry is rebuilt).
    Holds the entry's lock throughout, so concurrent callers build once.
    """
    with file_lock(path):
        data = read_file(path)
        if data is not None:
            try:
                return decode(data), True
            except ValueError as exc:
                log.warning("cache entry %s is unusable (%s); rebuilding it", path, exc)
        data = build()
        write_file(path, data)
        log.info("built cache entry %s", path)
        return decode(data), False


# -- folder entries --------------------------------------------------------------------------------
def _files(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): sha256_file(p) for p in sorted(Path(folder).rglob("*"))
            if p.is_file() and p.name != MANIFEST}


def seal(folder: Path) -> None:
    """Record the sha256 of every file in ``folder`` (call last, on the scratch folder)."""
    write_json_atomic(Path(folder) / MANIFEST, {"files": _files(folder)})


def problem(folder: Path) -> str | None:
    """None if ``folder`` matches its manifest, else what is wrong, naming the file."""
    folder = Path(folder)
    manifest = folder / MANIFEST
    try:
        recorded = json.loads(manifest.read_text())["files"]
        if not isinstance(recorded, dict):
            raise TypeError
    except FileNotFoundError:
        return f"cache entry {folder} has no checksum manifest (written by older code or unfinished)"
    except (OSError, ValueError, KeyError, TypeError):
        return f"cache entry {folder} has a malformed {MANIFEST}"
    for name, digest in recorded.items():
        path = folder / name
        if not path.is_file():
            return f"cache entry file {path} is missing"
        if sha256_file(path) != digest:
            return f"cache entry file {path} does not match its sha256 (corrupt)"
    return None


def verified(folder: Path) -> bool:
    """True if ``folder`` exists and matches its manifest; a mismatch is logged as a warning."""
    if not Path(folder).exists():
        return False
    found = problem(folder)
    if found:
        log.warning("%s; rebuilding it", found)
    return found is None


def cached_folder(folder: Path, build: Callable[[Path], None], load: Callable[[Path], T]) -> tuple[T, bool]:
    """``(load(folder), cache_hit)`` for the verified entry, else ``build(scratch)``, seal, swap in, load.

    Holds the entry's lock throughout, so concurrent callers build once and the others wait and reuse.
    """
    folder = Path(folder)
    with file_lock(folder):
        if verified(folder):
            return load(folder), True
        with atomic_directory(folder) as scratch:
            build(scratch)
            seal(scratch)
        log.info("built cache entry %s", folder)
        return load(folder), False
