"""Write files and directories so that readers never see half-written results."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any, Iterator


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, fsync, then rename over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _default_mode())  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


# -- scratch folders ---------------------------------------------------------------------------------
# A scratch folder is named ``.<final>.owner-<host>-<pid>.<random>.partial``, so a later process can tell
# a scratch whose owner was killed (same host, pid gone) from one another process is still filling.
_SCRATCH = re.compile(r"\.owner-(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)\.[^.]*\.partial$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname()) or "host"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True


def scratch_owner_gone(path: Path) -> bool:
    """True for a ``.partial`` scratch folder made on this host by a process that no longer exists.
    Scratch folders of other hosts, of live processes and of older code (no owner in the name) are kept."""
    match = _SCRATCH.search(Path(path).name)
    return bool(match) and match["host"] == _host() and not _alive(int(match["pid"]))


def remove_stale_scratch(parent: Path) -> list[Path]:
    """Delete the scratch folders in ``parent`` left by killed processes (see :func:`scratch_owner_gone`)."""
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for path in Path(parent).iterdir():
            if path.name.endswith(".partial") and scratch_owner_gone(path):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed


def _scratch(final: Path, tag: str = "") -> Path:
    scratch = Path(tempfile.mkdtemp(prefix=f".{final.name}.owner-{_host()}-{os.getpid()}.{tag}",
                                    suffix=".partial", dir=final.parent))
    os.chmod(scratch, 0o777 & ~os.umask(os.umask(0)))  # mkdtemp makes 0700; caches are meant to be shared
    return scratch


@contextlib.contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield a scratch directory that replaces ``final`` only if the block finishes without error.

    An existing ``final`` is first renamed aside (a reader holding its files open keeps reading them) and
    deleted after the swap. Scratch folders of killed processes in the same parent are cleaned up first.
    Concurrent writers of one ``final`` should hold :func:`harness.locks.file_lock` on it.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_scratch(final.parent)
    scratch = _scratch(final)
    try:
        yield scratch
        _swap_in(scratch, final)
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)


def _swap_in(scratch: Path, final: Path) -> None:
    for _ in range(10):  # only an unlocked concurrent writer can make this loop more than once
        old = None
        if final.exists():
            old = _scratch(final, "old")
            try:
                os.replace(final, old / "entry")
            except FileNotFoundError:
                pass  # another writer moved it first
        try:
            os.replace(scratch, final)
            return
        except OSError:
            if not final.exists():
                raise
        finally:
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
    raise OSError(f"could not replace {final}: other processes keep writing it")
