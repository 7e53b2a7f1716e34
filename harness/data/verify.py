"""`gradiend-bench data verify`: which data sets are available here, from which source, and intact."""

from __future__ import annotations

from dataclasses import dataclass

from harness.data.catalog import DataCatalog, SourceUnavailable
from harness.settings import mirror_dir


@dataclass
class DatasetStatus:
    name: str
    status: str  # ok | partial | unavailable
    source: str
    files: int
    note: str = ""


def verify_dataset(catalog: DataCatalog, name: str) -> DatasetStatus:
    entry = catalog.entry(name)
    reasons = []
    partial: DatasetStatus | None = None
    for source in entry.sources:
        label = source.describe(catalog.wheels)
        try:
            resolved = catalog._from_source(entry, source, None)
            return DatasetStatus(name, "ok", label, len(resolved.files))
        except SourceUnavailable as why:
            reasons.append(f"{label}: {why}")
        if source.kind == "mirror" and partial is None:
            found, missing = [], []
            for file_name in source.files:
                try:
                    catalog._from_source(entry, source, [file_name])
                    found.append(file_name)
                except SourceUnavailable:
                    missing.append(file_name)
            if found:
                partial = DatasetStatus(name, "partial", label, len(found), f"missing {', '.join(missing)}")
    if partial is not None:
        return partial
    return DatasetStatus(name, "unavailable", "-", 0, "; ".join(reasons))


def manifest_problems(catalog: DataCatalog) -> list[str]:
    """Files the mirror's MANIFEST.tsv lists that the catalog does not cover or pins differently."""
    root = mirror_dir()
    if root is None or not (root / "MANIFEST.tsv").is_file():
        return []
    pins = {}
    for entry in catalog.entries.values():
        for source in entry.sources:
            if source.kind == "mirror":
                for file_name, location in source.files.items():
                    pins[location] = entry.files.get(file_name)
    problems = []
    for line in (root / "MANIFEST.tsv").read_text().splitlines()[1:]:
        parts = line.split("\t")
        if len(parts) != 3:
            continue
        path, _, digest = parts
        if path not in pins:
            problems.append(f"{path}: in the mirror's MANIFEST.tsv but not in the catalog")
        elif pins[path] and pins[path] != digest:
            problems.append(f"{path}: MANIFEST.tsv sha256 {digest[:12]}… "
                            f"differs from the catalog pin {pins[path][:12]}…")
    return problems
