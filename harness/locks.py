"""Advisory file locks so concurrent processes (``--jobs``, dask workers, two ``run`` commands on one
folder) build each cache entry and write each record once.

A lock is ``fcntl.flock`` on a small file beside what it protects (``<parent>/.locks/<name>.lock``, never
deleted: deleting a lock file lets two processes lock two different files). The kernel releases a flock
when its holder dies, so a killed process never blocks the others. Locks are per open file, so two
threads of one process exclude each other too. Order, to avoid deadlocks: a process takes at most the
chain model entry → method step entry → feature entry, and a record lock → feature entry; never the
reverse (see docs/robustness.md).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover - not Linux/macOS: no locking, as before
    fcntl = None


def lock_path(target: Path) -> Path:
    """The lock file guarding ``target`` (a file or a folder), in a hidden ``.locks`` folder beside it."""
    target = Path(target)
    return target.parent / ".locks" / f"{target.name}.lock"


@contextlib.contextmanager
def file_lock(target: Path, *, blocking: bool = True) -> Iterator[bool]:
    """Hold the exclusive lock of ``target`` for the block; yields False (and holds nothing) when
    ``blocking`` is False and another process holds it."""
    path = lock_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        acquired = True
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                acquired = False
        yield acquired
    finally:
        os.close(fd)  # closing the descriptor releases the lock
