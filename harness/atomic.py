"""Write files and directories so that readers never see half-written results."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
from pathlib import Path
from typing import Any, Iterator


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# errors of a write that has no room (the OS names no file with them)
_NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def _name_the_file(exc: OSError, path: Path) -> None:
    """A failed write's own OSError often names no file (a full disk fails in write() or fsync()); name the one
    being written, so the one-line error at the CLI says where."""
    if exc.filename is None:
        exc.filename = str(path)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, fsync, then rename over it. A failure (a full disk, an
    interrupt) removes the temporary file and leaves ``path`` as it was; its OSError names ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _temp_file(path)
    except OSError as exc:
        _name_the_file(exc, path)
        raise
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            _name_the_file(exc, path)
        raise


def _temp_file(path: Path) -> tuple[int, str]:
    """A new ``.<name>.<random>.tmp`` beside ``path``, created with mode 0o666 so that the kernel applies the
    umask: the file gets the mode any new file would (mkstemp's 0600 would make shared results private, and
    reading the umask means setting it, which races with other threads)."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), str(tmp)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary file name", str(path))


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
    """A new scratch folder beside ``final``, made with mode 0o777 so that the kernel applies the umask: once
    swapped in, the entry has the mode any new folder would have (mkdtemp's 0700 would hide a shared cache
    from its other users; forcing 0o777 would let anyone rewrite it)."""
    for _ in range(100):
        scratch = final.parent / f".{final.name}.owner-{_host()}-{os.getpid()}.{tag}{secrets.token_hex(4)}.partial"
        try:
            os.mkdir(scratch, 0o777)
            return scratch
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused scratch folder name", str(final))


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
    except OSError as exc:
        if exc.errno in _NO_ROOM:  # a full disk while the entry was built: say which entry
            _name_the_file(exc, final)
        raise
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
