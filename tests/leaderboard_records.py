"""Hand-built run records for the leaderboard tests (written as real RunRecord JSON files)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from harness.api import Score
from harness.records import STATUS_NOT_APPLICABLE, RunRecord, slug

KINDS = {"cda": "weight", "gradiend": "weight", "dropout": "weight", "inlp": "post", "sentdebias": "post",
         "selfdebias": "post"}


def make_record(model: str, variant: str, benchmark: str, scores: dict, *, seed: int = 0, status: str = "ok",
                details: dict | None = None, artifacts: dict | None = None, bias_type: str = "gender") -> RunRecord:
    """``scores``: metric → value or (value, low, high)."""
    steps = [] if variant == "base" else [{"method": p, "kind": KINDS.get(p, "post")} for p in variant.split("+")]
    parsed = {k: Score(*(v if isinstance(v, tuple) else (v,))) for k, v in scores.items()}
    digest = hashlib.sha256(json.dumps([model, variant, benchmark, seed, bias_type]).encode()).hexdigest()
    return RunRecord(model=model, variant=variant, benchmark=benchmark, seed=seed, protocol="cpu", bias_type=bias_type,
                     config={}, config_hash=digest, scores={} if status == STATUS_NOT_APPLICABLE else parsed,
                     status=status, details=details or {}, variant_steps=steps, artifacts=artifacts or {},
                     started_at="2026-01-01T00:00:00+00:00")


def write(root: Path, rec: RunRecord) -> Path:
    path = (Path(root) / slug(rec.model) / slug(rec.variant)
            / f"{rec.benchmark}__seed{rec.seed}__{rec.config_hash[:12]}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec.to_json(), indent=1))
    return path


def write_grid(root: Path, grid: dict) -> list[RunRecord]:
    """grid: (model, variant, benchmark) → scores dict, or the string "na" for a not-applicable run."""
    records = []
    for (model, variant, benchmark), scores in grid.items():
        rec = (make_record(model, variant, benchmark, {}, status=STATUS_NOT_APPLICABLE) if scores == "na"
               else make_record(model, variant, benchmark, scores))
        write(root, rec)
        records.append(rec)
    return records


# Three models, four variants (configured order base, a, b, c). Distances from the ideal, worst first:
#   m1 SS : base 10 | a 5, b 5 (tie: a configured first) | c 0        → base 0, a 1/3, b 2/3, c 1
#   m2 SS : a 8 | base 2 | c 1 | b 0.5                                 → a 0, base 1/3, c 2/3, b 1
#   m3 SS : a 10 | base 5 | c 0  (b not run)                           → a 0, base 1/2, c 1
#   m1 SEAT: base 1.0 | a 0.5 | b 0.2  (c not run)                      → base 0, a 1/2, b 1
#   m2 SEAT: base 0.3, a 0.3 (tie, base first) | b 0.1  (c not applicable) → base 0, a 1/2, b 1
#   m3 SEAT: base only                                                  → base 1/2 (n = 1)
GRID = {
    ("m1", "base", "stereoset"): {"ss": (60.0, 55.0, 65.0), "lms": (80.0, 78.0, 82.0)},
    ("m1", "a", "stereoset"): {"ss": (55.0, 50.0, 60.0), "lms": (78.0, 76.0, 80.0)},
    ("m1", "b", "stereoset"): {"ss": (45.0, 40.0, 50.0), "lms": (81.0, 79.0, 83.0)},
    ("m1", "c", "stereoset"): {"ss": (50.0, 45.0, 55.0), "lms": (70.0, 68.0, 72.0)},
    ("m2", "base", "stereoset"): {"ss": 52.0, "lms": 90.0},
    ("m2", "a", "stereoset"): {"ss": 58.0, "lms": 88.0},
    ("m2", "b", "stereoset"): {"ss": 50.5},
    ("m2", "c", "stereoset"): {"ss": 49.0},
    ("m3", "base", "stereoset"): {"ss": 45.0, "lms": 60.0},
    ("m3", "a", "stereoset"): {"ss": 40.0, "lms": 61.0},
    ("m3", "c", "stereoset"): {"ss": 50.0},
    ("m1", "base", "seat"): {"effect_size_mean_abs": 1.0},
    ("m1", "a", "seat"): {"effect_size_mean_abs": 0.5},
    ("m1", "b", "seat"): {"effect_size_mean_abs": 0.2},
    ("m2", "base", "seat"): {"effect_size_mean_abs": 0.3},
    ("m2", "a", "seat"): {"effect_size_mean_abs": 0.3},
    ("m2", "b", "seat"): {"effect_size_mean_abs": 0.1},
    ("m2", "c", "seat"): "na",
    ("m3", "base", "seat"): {"effect_size_mean_abs": 0.7},
    ("m1", "base", "glue"): {"score": 70.0},
    ("m1", "a", "glue"): {"score": 72.0},
    ("m1", "b", "glue"): "na",
}
ORDER = ["base", "a", "b", "c"]
