"""Per-example scores of a run, compact enough to commit inside its run record.

A benchmark that can be resampled stores, per example (StereoSet cluster, CrowS-Pairs pair, SEAT target
sentence), the few numbers its statistics need, as named arrays of equal length. Two runs can be paired
(resampled with the same weights) only when they were scored on the same examples in the same order, which
``ids_digest`` (SHA-256 of the example ids) checks. In the record the arrays are stored as
``{"dtype", "data"}`` with ``data`` the base64 of the zlib-compressed little-endian bytes: exact, and
about 1–10 KB per record.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from harness.errors import HarnessError

DTYPES = ("uint8", "int8", "uint16", "int32", "float64")


def digest(ids: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


def _encode(array: np.ndarray) -> dict[str, str]:
    dtype = str(array.dtype)
    if dtype not in DTYPES:
        raise ValueError(f"per-example arrays must be one of {DTYPES}, not {dtype}")
    raw = np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()
    return {"dtype": dtype, "data": base64.b64encode(zlib.compress(raw, 9)).decode("ascii")}


def _decode(raw: dict[str, str], n: int, where: str) -> np.ndarray:
    try:
        dtype = np.dtype(raw["dtype"]).newbyteorder("<")
        if raw["dtype"] not in DTYPES:
            raise ValueError(f"dtype {raw['dtype']}")
        array = np.frombuffer(zlib.decompress(base64.b64decode(raw["data"])), dtype=dtype).astype(raw["dtype"])
    except (KeyError, TypeError, ValueError, zlib.error) as exc:
        raise HarnessError(f"{where}: per-example array is corrupt ({type(exc).__name__}: {exc})",
                           "re-run the record (`gradiend-bench run CONFIG --force`)") from None
    if array.shape != (n,):
        raise HarnessError(f"{where}: per-example array has {array.size} entries, not {n}",
                           "re-run the record (`gradiend-bench run CONFIG --force`)")
    return array


@dataclass(frozen=True)
class Examples:
    """Named per-example arrays of one run; ``strata`` names the array whose values are resampling strata."""

    unit: str
    arrays: dict[str, np.ndarray]
    ids_digest: str
    strata: str | None = None
    labels: dict[str, list[str]] = field(default_factory=dict)  # names of integer codes, e.g. term names

    def __post_init__(self):
        sizes = {k: len(v) for k, v in self.arrays.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"per-example arrays differ in length: {sizes}")
        if self.strata is not None and self.strata not in self.arrays:
            raise ValueError(f"strata array '{self.strata}' is not among {sorted(self.arrays)}")

    @property
    def n(self) -> int:
        return len(next(iter(self.arrays.values()))) if self.arrays else 0

    @property
    def strata_values(self) -> np.ndarray | None:
        return None if self.strata is None else self.arrays[self.strata]

    def to_json(self) -> dict[str, Any]:
        return {"unit": self.unit, "n": self.n, "ids_sha256": self.ids_digest, "strata": self.strata,
                "labels": self.labels, "arrays": {k: _encode(v) for k, v in self.arrays.items()}}

    @classmethod
    def from_json(cls, raw: dict[str, Any], where: str = "record") -> "Examples":
        try:
            n = int(raw["n"])
            arrays = {k: _decode(v, n, where) for k, v in raw["arrays"].items()}
            return cls(str(raw["unit"]), arrays, str(raw["ids_sha256"]), raw.get("strata"), raw.get("labels") or {})
        except (KeyError, TypeError, ValueError) as exc:
            raise HarnessError(f"{where}: per-example scores are malformed ({type(exc).__name__}: {exc})",
                               "re-run the record (`gradiend-bench run CONFIG --force`)") from None
