"""Run records: one JSON file per (model, variant, benchmark, seed), written atomically.

Path: ``RESULTS/<model>/<variant>/<benchmark>__seed<k>__<hash12>.json`` — the config hash in the name
makes "already done?" a file-existence check, so an interrupted grid resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from harness import RECORD_SCHEMA_VERSION
from harness.api import Score
from harness.atomic import write_json_atomic
from harness.config import RunSpec
from harness.errors import HarnessError

STATUS_OK = "ok"
STATUS_NOT_APPLICABLE = "not_applicable"


def slug(text: str) -> str:
    """A file-name part: runs of other characters become '_'; never '', '.' or '..' (which would name the
    folder itself or its parent), so a record stays inside its results folder."""
    cleaned = re.sub(r"[^A-Za-z0-9_.+-]+", "_", text.replace("zoo:", "zoo-")).strip("_")
    return cleaned if cleaned.strip(".") else "_" * max(1, len(cleaned))


@dataclass
class RunRecord:
    model: str
    variant: str
    benchmark: str
    seed: int
    protocol: str
    bias_type: str
    config: dict[str, Any]
    config_hash: str
    scores: dict[str, Score]
    status: str = STATUS_OK
    details: dict[str, Any] = field(default_factory=dict)
    datasets: dict[str, Any] = field(default_factory=dict)
    model_origin: dict[str, Any] = field(default_factory=dict)
    variant_steps: list[dict[str, Any]] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    git: dict[str, Any] = field(default_factory=dict)
    started_at: str = ""
    wall_time_s: float = 0.0
    peak_memory_mb: float | None = None
    artifacts: dict[str, str] = field(default_factory=dict)
    per_example: dict[str, Any] | None = None  # harness.examples.Examples.to_json(): what the bootstrap resamples
    schema_version: int = RECORD_SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["scores"] = {k: v.to_dict() for k, v in self.scores.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RunRecord":
        data = dict(data)
        data["scores"] = {k: Score.from_dict(v) for k, v in data.get("scores", {}).items()}
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def examples(self):
        """The decoded per-example scores, or None when the record has none."""
        from harness.examples import Examples

        if self.per_example is None:
            return None
        return Examples.from_json(self.per_example, f"{self.model}/{self.variant} {self.benchmark} seed {self.seed}")

    def score(self, metric: str) -> float | None:
        found = self.scores.get(metric)
        return None if found is None else found.value


def record_path(results_dir: Path, spec: RunSpec) -> Path:
    path = (Path(results_dir) / slug(spec.model) / slug(spec.variant)
            / f"{slug(spec.benchmark)}__seed{spec.seed}__{spec.config_hash[:12]}.json")
    # slug() rules this out; checked by name (not resolve(), which would follow a symlinked model folder)
    if not Path(os.path.abspath(path)).is_relative_to(os.path.abspath(results_dir)):
        raise HarnessError(f"the record of {spec.model} / {spec.variant} would leave the results folder ({path})",
                           "rename the model so that it is not a relative path like '..'")
    return path


def write_record(results_dir: Path, spec: RunSpec, record: RunRecord) -> Path:
    path = record_path(results_dir, spec)
    write_json_atomic(path, record.to_json())
    return path


def read_record(path: Path) -> RunRecord:
    try:
        return RunRecord.from_json(json.loads(Path(path).read_text()))
    except (OSError, ValueError, TypeError) as exc:
        raise HarnessError(f"run record {path} is unreadable ({type(exc).__name__}: {str(exc)[:120]})",
                           "delete it and re-run its grid "
                           "(`gradiend-bench run CONFIG` recomputes only missing records)") from None


def iter_record_paths(results_dir: Path) -> Iterator[Path]:
    root = Path(results_dir)
    if root.is_dir():
        yield from sorted(p for p in root.rglob("*.json") if not p.name.startswith("."))


def load_records(results_dir: Path) -> list[RunRecord]:
    return [read_record(p) for p in iter_record_paths(results_dir)]


def expects_per_example(benchmark: str) -> bool:
    """True for a benchmark whose records carry per-example scores: one that declares a metric the leaderboard and
    ``compare`` recompute from them (:class:`harness.metrics.Metric` with a ``statistic``; StereoSet, SEAT, CrowS).
    GLUE, SuperGLUE and lm-quality declare none, and a benchmark not installed here cannot be checked."""
    from harness.registry import get_benchmark

    try:
        declared = get_benchmark(benchmark).metrics
    except HarnessError:
        return False
    return any(metric.statistic is not None for metric in declared)


def is_complete(results_dir: Path, spec: RunSpec) -> bool:
    """True when a readable record with the same config hash exists (a corrupt one is redone) and, when it
    scored a benchmark with per-example scores, holds them: without them the leaderboard and ``compare`` cannot
    use it, so ``run`` recomputes it."""
    path = record_path(results_dir, spec)
    if not path.is_file():
        return False
    try:
        record = read_record(path)
    except HarnessError:
        return False
    if record.config_hash != spec.config_hash:
        return False
    return not (record.status == STATUS_OK and record.per_example is None and expects_per_example(spec.benchmark))
