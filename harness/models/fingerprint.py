"""A model folder's identity from its content: weights, tokenizer files and the config fields that compute.

Every cache key of a model (method fits, features, GRADIEND trainings; :func:`harness.variants.fitted_on`)
starts from this fingerprint, so it must change exactly when the model computes something else. It covers

* **weights** — each tensor of a ``*.safetensors`` file by name, dtype, shape and bytes (so a safetensors
  header that another library version writes differently, e.g. its ``__metadata__``, does not count);
  other weight files (``*.bin``) by their bytes;
* **config** — ``config.json`` and ``generation_config.json`` as canonical JSON without the fields that
  record who wrote the file rather than what the model is (:data:`WRITER_FIELDS`: ``transformers_version``
  and friends, at any depth);
* **tokenizer** — the tokenizer files (:data:`TOKENIZER_FILES`), JSON ones in canonical form, and the chat
  template.

and nothing else: build reports, training logs and curves hold timings and plots, and a README is prose.
Why: the fingerprint used to be the sha256 of every file in the folder, so converting SmolLM2 with a newer
``transformers`` (bit-identical weights, a new ``"transformers_version"`` in ``config.json``) or rebuilding
zoo:bert-tiny-mlm with identical weights (new timings in ``build_report.json``) re-keyed every cache of
the model. ``files`` (every file's sha256) stays in the cache manifest and the run record as provenance
and as the cache's integrity check; it is not identity.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from harness.atomic import sha256_file
from harness.keys import canonical_json

WEIGHT_SUFFIXES = (".safetensors", ".bin")
CONFIG_FILES = ("config.json", "generation_config.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "vocab.txt", "vocab.json", "merges.txt", "tokenizer.model", "spiece.model",
                   "sentencepiece.bpe.model", "chat_template.jinja", "chat_template.json")
WRITER_FIELDS = frozenset({"transformers_version", "_name_or_path", "_commit_hash", "_from_model_config",
                           "_attn_implementation_autoset"})
# A model loads in the dtype the harness asks for (float32 unless a config says otherwise), not the one a file
# was saved with, so the saved dtype is not identity either.
LOAD_FIELDS = frozenset({"torch_dtype", "dtype"})
# Keys of a model's ``origin`` that say where its files came from, not what they compute: recorded, not keyed.
PROVENANCE_KEYS = frozenset({"load_seconds", "lineage", "files", "path", "wheel", "wheel_sha256", "recipe",
                             "base"})


def _without(obj: Any, fields: frozenset[str]) -> Any:
    if isinstance(obj, dict):
        return {k: _without(v, fields) for k, v in obj.items() if k not in fields}
    if isinstance(obj, list):
        return [_without(v, fields) for v in obj]
    return obj


def _json_digest(path: Path, fields: frozenset[str]) -> str:
    data = json.loads(path.read_text(encoding="utf-8"))
    return hashlib.sha256(canonical_json(_without(data, fields)).encode()).hexdigest()


def safetensors_digest(path: Path) -> str:
    """sha256 over the tensors of a safetensors file in name order (name, dtype, shape, raw bytes)."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        header_size = int.from_bytes(handle.read(8), "little")
        if not 0 < header_size <= size - 8:  # garbage: do not try to allocate what its first bytes say
            raise ValueError(f"its header length {header_size} does not fit its {size} bytes")
        header = json.loads(handle.read(header_size))
        start = 8 + header_size
        digest = hashlib.sha256()
        for name in sorted(k for k in header if k != "__metadata__"):
            entry = header[name]
            begin, end = entry["data_offsets"]
            digest.update(canonical_json([name, entry["dtype"], entry["shape"]]).encode())
            handle.seek(start + begin)
            remaining = end - begin
            while remaining:
                block = handle.read(min(remaining, 1 << 22))
                if not block:
                    raise ValueError(f"{path} ends inside tensor {name}")
                digest.update(block)
                remaining -= len(block)
    return digest.hexdigest()


def file_digest(path: Path) -> str | None:
    """The content digest of one file of a model folder, or None when the file is not part of the identity."""
    name = path.name
    if name.endswith(".safetensors"):
        return safetensors_digest(path)
    if name.endswith(WEIGHT_SUFFIXES):
        return sha256_file(path)
    if name in CONFIG_FILES:
        return _json_digest(path, WRITER_FIELDS | LOAD_FIELDS)
    if name in TOKENIZER_FILES:
        return _json_digest(path, WRITER_FIELDS) if name.endswith(".json") else sha256_file(path)
    return None


def content_fingerprint(folder: Path) -> dict[str, str]:
    """{file name: content digest} of the files of ``folder`` (top level) that make up the model's identity.

    Raises ValueError naming the file when one cannot be read as what its name says (a corrupt checkpoint)."""
    folder = Path(folder)
    out = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        try:
            digest = file_digest(path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path} cannot be read ({type(exc).__name__}: {exc})") from None
        if digest is not None:
            out[path.name] = digest
    if not any(name.endswith(WEIGHT_SUFFIXES) for name in out):
        raise ValueError(f"{folder} holds no weights (*.safetensors or *.bin)")
    return out


def identity(origin: dict[str, Any]) -> dict[str, Any]:
    """The part of a model's ``origin`` that identifies what it computes (its cache keys' model part)."""
    return {k: v for k, v in origin.items() if k not in PROVENANCE_KEYS}
