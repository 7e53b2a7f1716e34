"""Handing freed heap memory back to the operating system.

glibc serves allocations below its mmap threshold (which grows to 32 MB once large blocks are freed) from
the heap, and a freed heap block stays in the process's resident set until ``malloc_trim`` releases its
pages. Copying a model's weights into one flat buffer frees hundreds of MB of such blocks (every weight
matrix of SmolLM2 is 1–4 MB) that later large tensors — mmapped, above the threshold — never reuse, so
without a trim they are dead weight in the peak memory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys


def release_freed_memory() -> bool:
    """Collect garbage and return free heap pages to the OS; True when glibc's ``malloc_trim`` ran."""
    gc.collect()
    if not sys.platform.startswith("linux"):
        return False
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # musl and other C libraries have no malloc_trim
        return False
    return True
