"""Progress bars (tqdm) for loops that take more than a few seconds."""

from __future__ import annotations

from typing import Iterable, TypeVar

T = TypeVar("T")


def progress(iterable: Iterable[T], enabled: bool, desc: str) -> Iterable[T]:
    """``iterable`` wrapped in a transient tqdm bar counting batches, or unchanged when disabled."""
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, unit="batch", leave=False)
