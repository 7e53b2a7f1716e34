"""GLUE / SuperGLUE task definitions: readers for the raw files and the hub's jsonl, and the task metrics.

Every task becomes a :class:`Split` of rows ``(first, second, label, group)``: a single sentence
(``second`` is None) or a pair that the encoder joins like the tokenizer's pair encoding. Two task kinds
need more than one row per example:

* **choice** (COPA) — one row per (premise + question, choice); ``group`` is the example, exactly one row
  per group has label 1 and the prediction is the higher-scoring row (SuperGLUE's baseline: score each
  choice, softmax over the choices);
* **MultiRC** — one row per (paragraph, question + answer), binary; ``group`` is the question, for EM.

Metrics (``y`` gold, ``p`` predicted), all in [−1, 1] or [0, 1] and reported ×100:

* MCC :math:`= (tp\\,tn - fp\\,fn)/\\sqrt{(tp+fp)(tp+fn)(tn+fp)(tn+fn)}` (0 when a margin is empty);
* F1 of the positive class :math:`= 2tp / (2tp + fp + fn)`; Pearson's r for STS-B;
* CB :math:`= (\\text{acc} + \\text{macro-F1})/2`, macro over the three classes;
* MultiRC :math:`= (F1_a + EM)/2`: F1a over all answer options, EM = fraction of questions whose answers
  are all right; MNLI = mean accuracy over matched and mismatched; everything else accuracy.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from harness.errors import HarnessError

csv.field_size_limit(1 << 24)


@dataclass(frozen=True)
class TaskSpec:
    name: str  # score key, e.g. "cola" or "superglue rte" → "rte"
    dataset: str  # catalog name
    metric: str  # mcc | f1 | pearson | accuracy | cb | multirc
    classes: tuple[str, ...] | None  # None: regression (STS-B)
    kind: str = "classification"  # classification | regression | choice | multirc
    eval_splits: tuple[str, ...] = ("validation",)  # MNLI: matched and mismatched


@dataclass
class Split:
    first: list[str]
    second: list[str | None]
    labels: np.ndarray  # class index (int) or float target (regression) or 0/1 (choice, multirc)
    groups: np.ndarray | None = None  # choice: example id per row; multirc: question id per row
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.first)

    def take(self, rows: np.ndarray) -> "Split":
        rows = np.asarray(rows, dtype=np.int64)
        return Split([self.first[i] for i in rows], [self.second[i] for i in rows], self.labels[rows],
                     None if self.groups is None else self.groups[rows], self.meta)


GLUE_TASKS = (
    TaskSpec("cola", "glue-cola", "mcc", ("0", "1")),
    TaskSpec("sst2", "glue-sst2", "accuracy", ("0", "1")),
    TaskSpec("mrpc", "glue-mrpc", "f1", ("0", "1")),
    TaskSpec("qqp", "glue-qqp", "accuracy", ("0", "1")),
    TaskSpec("mnli", "glue-mnli", "accuracy", ("entailment", "neutral", "contradiction"),
             eval_splits=("validation_matched", "validation_mismatched")),
    TaskSpec("qnli", "glue-qnli", "accuracy", ("entailment", "not_entailment")),
    TaskSpec("rte", "glue-rte", "accuracy", ("entailment", "not_entailment")),
    TaskSpec("stsb", "glue-stsb", "pearson", None, kind="regression"),
    TaskSpec("wnli", "glue-wnli", "accuracy", ("0", "1")),
)
SUPERGLUE_TASKS = (
    TaskSpec("boolq", "superglue-boolq", "accuracy", ("False", "True")),
    TaskSpec("cb", "superglue-cb", "cb", ("entailment", "contradiction", "neutral")),
    TaskSpec("copa", "superglue-copa", "accuracy", ("0", "1"), kind="choice"),
    TaskSpec("multirc", "superglue-multirc", "multirc", ("0", "1"), kind="multirc"),
    TaskSpec("rte", "superglue-rte", "accuracy", ("entailment", "not_entailment")),
    TaskSpec("wic", "superglue-wic", "accuracy", ("False", "True")),
    TaskSpec("wsc", "superglue-wsc", "accuracy", ("False", "True")),
)

# Scored and reported but kept out of the suite mean. WNLI's dev set is adversarial (the same sentences as in
# training with the other label), so models fall *below* its majority class (GLUE FAQ); BERT (Devlin et al.
# 2019, Table 1 and footnote) excluded it from its GLUE average ("we exclude the problematic WNLI set") and
# predicted the majority class in its submission. The GRADIEND paper's mean (bias-bench
# experiments/glue_bootstrap_evaluation.py) included it; its per-task score stays in every record.
OUTSIDE_THE_MEAN = ("wnli",)

# GLUE TSV columns (raw distribution) and hub jsonl fields, per task: (first, second, label)
_TSV_COLUMNS = {"sst2": ("sentence", None, "label"), "mrpc": ("#1 String", "#2 String", "Quality"),
                "qqp": ("question1", "question2", "is_duplicate"), "qnli": ("question", "sentence", "label"),
                "rte": ("sentence1", "sentence2", "label"), "stsb": ("sentence1", "sentence2", "score"),
                "wnli": ("sentence1", "sentence2", "label"), "mnli": ("sentence1", "sentence2", "gold_label")}
_HUB_FIELDS = {"cola": ("sentence", None), "sst2": ("sentence", None), "mrpc": ("sentence1", "sentence2"),
               "qqp": ("question1", "question2"), "mnli": ("premise", "hypothesis"), "qnli": ("question", "sentence"),
               "rte": ("sentence1", "sentence2"), "stsb": ("sentence1", "sentence2"),
               "wnli": ("sentence1", "sentence2")}
COPA_QUESTIONS = {"cause": "What was the cause of this?", "effect": "What happened as a result?"}


def _bad(path: Path, where: str, why: str) -> HarnessError:
    return HarnessError(f"malformed data file {path} ({where}: {why})",
                        "re-fetch it with `gradiend-bench data fetch`, or fix/remove the file")


def _label(spec: TaskSpec, raw: Any, path: Path, where: str) -> int | float:
    if spec.classes is None:
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise _bad(path, where, f"score {raw!r} is not a number") from None
    if isinstance(raw, bool):
        raw = str(raw)
    if isinstance(raw, int) and 0 <= raw < len(spec.classes):
        return raw
    if isinstance(raw, str) and raw.strip() in spec.classes:
        return spec.classes.index(raw.strip())
    raise _bad(path, where, f"label {raw!r} is not one of {', '.join(spec.classes)}")


def read_tsv(spec: TaskSpec, path: Path) -> Split:
    """A raw GLUE TSV (``csv.QUOTE_NONE``; CoLA has no header: source, label, original label, sentence)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    except (OSError, UnicodeDecodeError) as exc:
        raise _bad(path, "reading", str(exc)) from None
    if spec.name == "cola":
        header, body, cols = None, rows, (3, None, 1)
    else:
        if not rows:
            raise _bad(path, "line 1", "empty file, expected a header row")
        header, body = rows[0], rows[1:]
        names = _TSV_COLUMNS[spec.name]
        missing = [n for n in names if n is not None and n not in header]
        if missing:
            raise _bad(path, "header", f"missing column(s) {', '.join(missing)}")
        cols = tuple(None if n is None else header.index(n) for n in names)
    first, second, labels = [], [], []
    for number, row in enumerate(body, start=1 if header is None else 2):
        if not row or row == [""]:
            continue
        width = max(c for c in cols if c is not None) + 1
        if len(row) < width:
            raise _bad(path, f"line {number}", f"{len(row)} tab-separated fields, expected at least {width}")
        first.append(row[cols[0]])
        second.append(None if cols[1] is None else row[cols[1]])
        labels.append(_label(spec, row[cols[2]], path, f"line {number}"))
    if not first:
        raise _bad(path, "body", "no examples")
    return Split(first, second, np.asarray(labels, dtype=np.float64 if spec.classes is None else np.int64))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    records = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise _bad(path, "reading", str(exc)) from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _bad(path, f"line {number}", f"invalid JSON: {exc.msg}") from None
        if not isinstance(record, dict):
            raise _bad(path, f"line {number}", "expected a JSON object")
        records.append(record)
    if not records:
        raise _bad(path, "body", "no examples")
    return records


def _field(record: dict, key: str, path: Path, number: int) -> Any:
    if key not in record:
        raise _bad(path, f"record {number}", f"missing field '{key}'")
    return record[key]


def _mark(text: str, start: int, end: int, marker: str = "*") -> str:
    return text[:start] + marker + text[start:end] + marker + text[end:]


def _wsc_rows(record: dict, path: Path, number: int) -> tuple[str, str]:
    """SuperGLUE's WSC as a pair: the text with the pronoun (span 2) marked ``*he*``, and the candidate."""
    target = record.get("target", record)
    text = _field(record, "text", path, number)
    words = text.split(" ")
    index, pronoun = _field(target, "span2_index", path, number), _field(target, "span2_text", path, number)
    n = len(pronoun.split(" "))
    if not 0 <= index <= len(words) - n:
        raise _bad(path, f"record {number}", f"span2_index {index} outside the text")
    words[index:index + n] = ["*" + " ".join(words[index:index + n]) + "*"]
    return " ".join(words), _field(target, "span1_text", path, number)


def superglue_rows(spec: TaskSpec, records: list[dict], path: Path) -> Split:
    """Raw SuperGLUE jsonl or the hub's flattened rows (MultiRC: one row per answer, ``idx`` a dict)."""
    first, second, labels, groups = [], [], [], []
    for number, r in enumerate(records, start=1):
        def get(key, rec=r):
            return _field(rec, key, path, number)

        if spec.name == "boolq":
            rows = [(get("question"), get("passage"), get("label"))]
        elif spec.name in ("cb", "rte"):
            rows = [(get("premise"), get("hypothesis"), get("label"))]
        elif spec.name == "wic":
            s1 = _mark(get("sentence1"), get("start1"), get("end1"))
            s2 = _mark(get("sentence2"), get("start2"), get("end2"))
            rows = [(f"{get('word')}: {s1}", s2, get("label"))]
        elif spec.name == "wsc":
            rows = [(*_wsc_rows(r, path, number), get("label"))]
        elif spec.name == "copa":
            question = COPA_QUESTIONS.get(get("question"))
            if question is None:
                raise _bad(path, f"record {number}", f"question {get('question')!r} is not cause/effect")
            label = get("label")
            if label not in (0, 1):
                raise _bad(path, f"record {number}", f"label {label!r} is not 0 or 1")
            for k in (0, 1):
                first.append(f"{get('premise')} {question}")
                second.append(get(f"choice{k + 1}"))
                labels.append(int(label == k))
                groups.append(number)
            continue
        elif spec.name == "multirc":
            if "passage" in r:  # raw: passage → questions → answers
                passage = get("passage")
                for q in _field(passage, "questions", path, number):
                    for a in _field(q, "answers", path, number):
                        first.append(_field(passage, "text", path, number))
                        second.append(f"{_field(q, 'question', path, number)} {_field(a, 'text', path, number)}")
                        labels.append(_label(spec, _field(a, "label", path, number), path, f"record {number}"))
                        groups.append(f"{get('idx')}/{_field(q, 'idx', path, number)}")
            else:  # hub: one row per answer
                idx = get("idx")
                first.append(get("paragraph"))
                second.append(f"{get('question')} {get('answer')}")
                labels.append(_label(spec, get("label"), path, f"record {number}"))
                groups.append(f"{idx['paragraph']}/{idx['question']}" if isinstance(idx, dict) else str(idx))
            continue
        else:
            raise HarnessError(f"no reader for SuperGLUE task '{spec.name}'")
        for a, b, label in rows:
            first.append(a)
            second.append(b)
            labels.append(_label(spec, label, path, f"record {number}"))
    group_ids = None
    if groups:
        _, group_ids = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    return Split(first, second, np.asarray(labels, dtype=np.int64), group_ids)


def glue_hub_rows(spec: TaskSpec, records: list[dict], path: Path) -> Split:
    a_key, b_key = _HUB_FIELDS[spec.name]
    first, second, labels = [], [], []
    for number, r in enumerate(records, start=1):
        first.append(_field(r, a_key, path, number))
        second.append(None if b_key is None else _field(r, b_key, path, number))
        labels.append(_label(spec, _field(r, "label", path, number), path, f"record {number}"))
    return Split(first, second, np.asarray(labels, dtype=np.float64 if spec.classes is None else np.int64))


def load_task(spec: TaskSpec, files: dict[str, Path]) -> tuple[Split, dict[str, Split]]:
    """(train, {eval split: rows}) from whichever files the winning source provided."""
    def read(name: str) -> Split:
        path = files[name]
        if name.endswith(".tsv"):
            return read_tsv(spec, path)
        records = read_jsonl(path)
        return (superglue_rows if spec.dataset.startswith("superglue") else glue_hub_rows)(spec, records, path)

    if "train.tsv" in files and "dev.tsv" in files:
        return read("train.tsv"), {"validation": read("dev.tsv")}
    if "train.jsonl" in files and "val.jsonl" in files:
        return read("train.jsonl"), {"validation": read("val.jsonl")}
    wanted = [f"{s}.jsonl" for s in spec.eval_splits]
    if "train.jsonl" in files and all(w in files for w in wanted):
        return read("train.jsonl"), {s: read(f"{s}.jsonl") for s in spec.eval_splits}
    raise HarnessError(f"data set '{spec.dataset}' provided files {', '.join(sorted(files))}",
                       "expected train/dev TSVs, train/val jsonl or the hub's train/validation jsonl")


# -- metrics ------------------------------------------------------------------------------------------
def accuracy(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(y == p)) if y.size else 0.0


def mcc(y: np.ndarray, p: np.ndarray) -> float:
    tp, tn = float(np.sum((y == 1) & (p == 1))), float(np.sum((y == 0) & (p == 0)))
    fp, fn = float(np.sum((y == 0) & (p == 1))), float(np.sum((y == 1) & (p == 0)))
    den = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
    return (tp * tn - fp * fn) / np.sqrt(den) if den > 0 else 0.0


def f1(y: np.ndarray, p: np.ndarray, positive: int = 1) -> float:
    tp = float(np.sum((y == positive) & (p == positive)))
    wrong = float(np.sum((y == positive) != (p == positive)))
    return 2 * tp / (2 * tp + wrong) if tp + wrong > 0 else 0.0


def pearson(y: np.ndarray, p: np.ndarray) -> float:
    y, p = y - y.mean(), p - p.mean()
    den = np.sqrt(np.sum(y * y) * np.sum(p * p))
    return float(np.sum(y * p) / den) if den > 0 else 0.0


def macro_f1(y: np.ndarray, p: np.ndarray, n_classes: int) -> float:
    return float(np.mean([f1(y, p, k) for k in range(n_classes)]))


def cb_score(y: np.ndarray, p: np.ndarray) -> float:
    return (accuracy(y, p) + macro_f1(y, p, 3)) / 2


def multirc_parts(y: np.ndarray, p: np.ndarray, groups: np.ndarray) -> tuple[float, float]:
    """(F1a over all answers, EM over questions)."""
    wrong = np.bincount(groups, weights=(y != p).astype(np.float64))
    present = np.bincount(groups) > 0
    return f1(y, p), float(np.mean(wrong[present] == 0))


def multirc_score(y: np.ndarray, p: np.ndarray, groups: np.ndarray) -> float:
    return float(np.mean(multirc_parts(y, p, groups)))


def choice_predictions(scores: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """0/1 per row: 1 for the highest-scoring row of each group (first row on ties)."""
    order = np.lexsort((-scores, groups))
    first = np.ones(len(order), dtype=bool)
    first[1:] = groups[order][1:] != groups[order][:-1]
    out = np.zeros(len(scores), dtype=np.int64)
    out[order[first]] = 1
    return out


def metric_fn(spec: TaskSpec) -> Callable[[np.ndarray, np.ndarray, np.ndarray | None], float]:
    """metric(gold, predicted, groups) for the task; choice tasks are scored per group (example)."""
    simple = {"mcc": mcc, "f1": f1, "pearson": pearson, "cb": cb_score}
    if spec.metric == "multirc":
        return lambda y, p, g: multirc_score(y, p, g)
    if spec.kind == "choice":  # a group is right when its chosen row is the gold one
        return lambda y, p, g: float(np.mean(np.bincount(g, weights=(y * p).astype(np.float64))[np.bincount(g) > 0]))
    if spec.metric in simple:
        return lambda y, p, g: simple[spec.metric](y, p)
    return lambda y, p, g: accuracy(y, p)
