"""Content keys: one canonical JSON form and its sha256, for record hashes and cache folder names.

``config_hash`` (record file names, the records' ``config_hash`` field) is :func:`stable_key` of the hashed
config, so the canonical form below must not change: committed records under ``results/runs`` are found by
it. Cache keys are truncated :func:`stable_key` values (method caches ``<cache>/methods/<namespace>/<key>``, all
through :func:`harness.variants.method_cache_key`) or :func:`stable_digest` objects extended with the bytes of
texts and hook tensors (feature caches); docs/caching.md. Changing either orphans every existing cache entry.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(obj: Any) -> str:
    """``obj`` as JSON with sorted keys, no spaces and ASCII only; non-JSON values (paths, ...) via ``str``."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def stable_digest(obj: Any) -> Any:
    """A sha256 object fed with :func:`canonical_json` of ``obj``; ``update`` it with more bytes if needed."""
    return hashlib.sha256(canonical_json(obj).encode())


def stable_key(obj: Any, length: int | None = None) -> str:
    """Hex sha256 of :func:`canonical_json` of ``obj``, the first ``length`` characters if given: equal for
    equal content whatever the dict order, so it can name records and cache folders across runs."""
    return stable_digest(obj).hexdigest()[:length]
