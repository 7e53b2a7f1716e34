"""Data for GRADIEND's decoder selection: gender-stereotype prompts and first names with p(gender | name).

The paper selects the decoder setting by **name prediction on gender-stereotype prompts**
(aieng-lab/gradiend-bias, ``gradiend/evaluation/analyze_decoder.py``,
``evaluate_gender_bias_name_predictions``): it masks the ``[NAME]`` slot of every GENTypes prompt
(hub ``aieng-lab/gentypes``, field ``text``, e.g. "My friend, [NAME], <stereotyped trait>.") and weighs the
predicted first names by p(gender | name) from NAMEXTEND (hub ``aieng-lab/namextend``: name, gender M/F,
prob_F; prob_M = 1 − prob_F).

Without internet both come from offline stand-ins, and the provenance says so:

* prompts — the catalog's ``gentypes`` entry falls back to its ``project`` source, an **offline substitute**
  written for this project (``harness/catalog/data/gentypes-offline.jsonl``, see docs/gradiend.md);
* names — NAMEXTEND falls back to the ``first-names`` data set (nomquamgender's ``name_data.json``:
  key → [n_sources, count, p_female, …], read as in :func:`methods.gradiend.data.load_names`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.data.catalog import resolve
from harness.errors import HarnessError
from methods.gradiend.data import _name_table

NAME_SLOT = "[NAME]"
STEREOTYPES = ("M", "F")
SUBSTITUTE_FILE = "gentypes-offline.jsonl"  # the file of the catalog's `project` source for gentypes
NAME_COLUMNS = ["name", "gender", "prob"]
# nomquamgender keeps every spelling it ever saw (721,739 keys, many seen once, in one source, or with digits
# and symbols); like the GRADIEND training names (data.load_names) we keep only plain ASCII names that at least
# three of its sources know and that were counted at least 2000 times, so p(female) rests on real evidence
# (11,390 names in nomquamgender 0.1.4).
NOMQUAMGENDER_MIN_SOURCES = 3
NOMQUAMGENDER_MIN_COUNT = 2000


@dataclass(frozen=True)
class SelectionPrompt:
    """One prompt with exactly one ``[NAME]`` slot; ``stereotype`` is "M"/"F" where the source labels it."""

    text: str
    stereotype: str | None


# -- prompts ---------------------------------------------------------------------------------------
def load_selection_prompts() -> tuple[list[SelectionPrompt], dict[str, Any]]:
    """GENTypes from the hub when it resolves (or is cached), else the project's offline substitute."""
    resolved = resolve("gentypes")
    file_name = next(iter(resolved.files))  # each gentypes source provides exactly one file
    prompts = read_prompts(resolved.path(file_name))
    return prompts, {"dataset": "gentypes", "source": resolved.source, "substitute": file_name == SUBSTITUTE_FILE,
                     "n_prompts": len(prompts), "sha256": resolved.checksums[file_name]}


def read_prompts(path: Path) -> list[SelectionPrompt]:
    """Read a jsonl of ``{"text": …, "stereotype": "M"|"F" (optional)}`` rows; malformed data is a HarnessError."""
    path = Path(path)
    fix = (f"each line of {path.name} must be a JSON object whose 'text' has exactly one {NAME_SLOT} slot and "
           "ends with '.' ('stereotype', if given, M or F); restore the file from the repository "
           "(harness/catalog/data) or delete its cache entry to fetch it again")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise HarnessError(f"selection prompt file {path} cannot be read ({type(exc).__name__})", fix) from None
    prompts = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        problem = _row_problem(row)
        if problem:
            raise HarnessError(f"selection prompt file {path}, line {number}: {problem}", fix)
        prompts.append(SelectionPrompt(row["text"].strip(), row.get("stereotype")))
    if not prompts:
        raise HarnessError(f"selection prompt file {path} has no prompts", fix)
    return prompts


def _row_problem(row: Any) -> str | None:
    if not isinstance(row, dict) or not isinstance(row.get("text"), str):
        return "not a JSON object with a string 'text'"
    text = row["text"].strip()
    if text.count(NAME_SLOT) != 1:
        return f"{text!r} has {text.count(NAME_SLOT)} {NAME_SLOT} slots, not one"
    if not text.endswith("."):
        return f"{text!r} does not end with '.'"
    if row.get("stereotype") not in (None, *STEREOTYPES):
        return f"stereotype {row['stereotype']!r} is not M or F"
    return None


# -- names -----------------------------------------------------------------------------------------
def load_name_genders() -> tuple[pd.DataFrame, dict[str, Any]]:
    """First names with ``gender`` ("M"/"F") and ``prob`` = p(that gender | name): NAMEXTEND from the hub when
    it resolves (or is cached), else nomquamgender's names (:func:`nomquamgender_names`)."""
    try:
        resolved = resolve("namextend")
    except HarnessError as exc:
        fallback_reason = exc.what
    else:
        frame = namextend_names(resolved.path("train.jsonl"))
        return frame, {"dataset": "namextend", "source": resolved.source, "substitute": False,
                       "n_names": len(frame), "sha256": resolved.checksums["train.jsonl"]}
    resolved = resolve("first-names")
    frame = nomquamgender_names(resolved.path("name_data.json"))
    return frame, {"dataset": "first-names", "source": resolved.source, "substitute": True, "n_names": len(frame),
                   "sha256": resolved.checksums["name_data.json"], "unavailable": fallback_reason,
                   "filter": {"ascii_alphabetic": True, "min_sources": NOMQUAMGENDER_MIN_SOURCES,
                              "min_count": NOMQUAMGENDER_MIN_COUNT}}


def namextend_names(path: Path) -> pd.DataFrame:
    """NAMEXTEND rows (name, gender, prob_F[, prob_M]) → name, gender, prob; prob_M defaults to 1 − prob_F."""
    try:
        raw = pd.read_json(path, lines=True)
    except ValueError as exc:
        raise HarnessError(f"NAMEXTEND file {path} is not jsonl ({exc})", f"delete {path.parent} and fetch again")
    missing = {"name", "gender", "prob_F"} - set(raw.columns)
    if missing or not raw["gender"].isin(STEREOTYPES).all():
        raise HarnessError(f"NAMEXTEND file {path} lacks columns {sorted(missing)} or has genders other than M/F",
                           f"delete {path.parent} and fetch aieng-lab/namextend again")
    prob_male = raw["prob_M"] if "prob_M" in raw.columns else 1.0 - raw["prob_F"]
    prob = raw["prob_F"].where(raw["gender"] == "F", prob_male)
    return pd.DataFrame({"name": raw["name"].astype(str), "gender": raw["gender"], "prob": prob.astype(float)})


def nomquamgender_names(path: Path) -> pd.DataFrame:
    """nomquamgender's name_data.json → name (capitalised), gender = F if p(female) ≥ 0.5 else M, prob =
    max(p, 1 − p); only names passing the NOMQUAMGENDER_* filter above."""
    rows = []
    for key, (n_sources, count, p_female, *_rest) in _name_table(str(path)).items():
        if not (key.isalpha() and key.isascii()) or n_sources < NOMQUAMGENDER_MIN_SOURCES \
                or count < NOMQUAMGENDER_MIN_COUNT:
            continue
        female = p_female >= 0.5
        rows.append((key.capitalize(), "F" if female else "M", float(p_female if female else 1.0 - p_female)))
    return pd.DataFrame(rows, columns=NAME_COLUMNS)
