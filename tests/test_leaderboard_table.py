"""Summary tables from hand-built records: seed averaging, newest record per cell, headline columns."""

from __future__ import annotations

from harness.api import Score
from harness.records import RunRecord
from leaderboard.table import latest_records, summary_table


def _record(model, benchmark, seed, scores, started="2026-01-01T00:00:00", variant="base"):
    return RunRecord(model=model, variant=variant, benchmark=benchmark, seed=seed, protocol="cpu", bias_type="gender",
                     config={}, config_hash=started, scores={k: Score(*v) for k, v in scores.items()},
                     started_at=started)


def test_newest_record_per_cell_and_seed_mean():
    old = _record("m", "stereoset", 0, {"ss": (70.0,)}, "2026-01-01T00:00:00")
    new = _record("m", "stereoset", 0, {"ss": (60.0, 58.0, 62.0)}, "2026-02-01T00:00:00")
    other_seed = _record("m", "stereoset", 1, {"ss": (50.0, 49.0, 51.0)})
    records = latest_records([old, new, other_seed])
    assert old not in records and new in records and other_seed in records
    headers, rows = summary_table(records)
    assert headers == ["model", "variant", "stereoset:ss"]
    assert rows == [["m", "base", "55.00 ± 1.50"]]


def test_headline_metrics_and_missing_cells():
    records = [_record("m", "stereoset", 0, {"icat": (1.0,), "ss": (2.0,), "ss:race": (3.0,), "lms": (4.0,)}),
               _record("m", "seat", 0, {"effect_size_mean_abs": (0.5,)}, variant="inlp")]
    headers, rows = summary_table(records)
    assert headers == ["model", "variant", "stereoset:ss", "stereoset:lms", "stereoset:icat",
                       "seat:effect_size_mean_abs"]
    assert rows[1] == ["m", "inlp", "–", "–", "–", "0.50"]
    assert "stereoset:ss:race" in summary_table(records, all_metrics=True)[0]
