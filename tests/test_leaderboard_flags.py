"""Cells built on a GRADIEND that did not converge carry a dagger and a footnote in every export, and only those.

The grid: models m1, m2; variants base, gradiend, gradiend+inlp, cda. The GRADIEND step of gradiend+inlp on m2
says ``converged: False`` (the ``flagged`` grid); everywhere else it says True, and CDA's step has no such key.
So gradiend+inlp's SS, LMS and LMS (Δ) (both models), GLUE (both models) and its Mean are marked, while its
SEAT (m1 only: m2 is not applicable) and GLUE (Δ) (m1 only: m2 has no base GLUE score) are not.
"""

from __future__ import annotations

import csv
import io
import re

import pytest

from harness.records import STATUS_NOT_APPLICABLE
from leaderboard.flags import FOOTNOTE, MARK, unconverged
from leaderboard.table import render
from leaderboard_records import make_record, write

ORDER = ["base", "gradiend", "gradiend+inlp", "cda"]
GRID = {
    ("m1", "base", "stereoset"): {"ss": 60.0, "lms": 80.0},
    ("m1", "gradiend", "stereoset"): {"ss": 55.0, "lms": 79.0},
    ("m1", "gradiend+inlp", "stereoset"): {"ss": 52.0, "lms": 77.0},
    ("m1", "cda", "stereoset"): {"ss": 57.0, "lms": 78.0},
    ("m2", "base", "stereoset"): {"ss": 58.0, "lms": 85.0},
    ("m2", "gradiend", "stereoset"): {"ss": 54.0, "lms": 84.0},
    ("m2", "gradiend+inlp", "stereoset"): {"ss": 49.0, "lms": 81.0},
    ("m2", "cda", "stereoset"): {"ss": 56.0, "lms": 83.0},
    ("m1", "base", "seat"): {"effect_size_mean_abs": 0.9},
    ("m1", "gradiend", "seat"): {"effect_size_mean_abs": 0.5},
    ("m1", "gradiend+inlp", "seat"): {"effect_size_mean_abs": 0.2},
    ("m1", "cda", "seat"): {"effect_size_mean_abs": 0.6},
    ("m2", "gradiend+inlp", "seat"): "na",
    ("m1", "base", "glue"): {"score": 70.0},
    ("m1", "gradiend", "glue"): {"score": 69.0},
    ("m1", "gradiend+inlp", "glue"): {"score": 68.0},
    ("m1", "cda", "glue"): {"score": 71.0},
    ("m2", "gradiend+inlp", "glue"): {"score": 66.0},
}
MARKED = ["mean", "ss", "lms_delta", "lms", "glue"]  # gradiend+inlp's marked CSV columns, in column order


def write_grid(root, m2_converged):
    """``m2_converged``: what gradiend+inlp's GRADIEND step says on m2 (None: no ``converged`` key)."""
    for (model, variant, benchmark), scores in GRID.items():
        rec = (make_record(model, variant, benchmark, {}, status=STATUS_NOT_APPLICABLE) if scores == "na"
               else make_record(model, variant, benchmark, scores))
        if variant.startswith("gradiend"):
            says = m2_converged if (model, variant) == ("m2", "gradiend+inlp") else True
            rec.variant_steps[0]["notes"] = {"selected_seed": 0} | ({} if says is None else {"converged": says})
        write(root, rec)
    return root


@pytest.fixture
def flagged(tmp_path):
    return write_grid(tmp_path / "flagged", False)


@pytest.fixture(params=[True, None], ids=["converged", "no-key"])
def clean(tmp_path, request):
    return write_grid(tmp_path / "clean", request.param)


def test_only_a_step_saying_converged_false_is_unconverged():
    rec = make_record("m", "gradiend+inlp", "stereoset", {"ss": 50.0})
    assert not unconverged(rec)  # steps without notes
    for notes, want in [({}, False), ({"converged": True}, False), ({"converged": None}, False),
                        ({"converged": False}, True)]:
        rec.variant_steps[0]["notes"] = notes
        assert unconverged(rec) is want, notes
    rec.variant_steps[0]["notes"] = {"converged": True}
    rec.variant_steps[1]["notes"] = {"converged": False}  # any step counts, not only the first
    assert unconverged(rec)
    assert not unconverged(make_record("m", "base", "stereoset", {"ss": 50.0}))


def csv_rows(results):
    text = render(results, "csv", order=ORDER, intervals=False)
    return {row["variant"]: row for row in csv.DictReader(io.StringIO(text))}


def test_csv_keeps_its_numbers_and_names_the_marked_columns(flagged, clean):
    marked, plain = csv_rows(flagged), csv_rows(clean)
    assert marked["gradiend+inlp"]["unconverged"] == ";".join(MARKED)
    assert all(row["unconverged"] == "" for v, row in marked.items() if v != "gradiend+inlp")
    assert all(row["unconverged"] == "" for row in plain.values())
    for variant, row in marked.items():  # the mark changes no number
        assert {k: v for k, v in row.items() if k != "unconverged"} == \
               {k: v for k, v in plain[variant].items() if k != "unconverged"}
    assert float(marked["gradiend+inlp"]["ss"]) == pytest.approx(1.0)  # closest to 50 on both models
    assert marked["gradiend+inlp"]["seat"] == "1.000000" and marked["gradiend+inlp"]["glue"] == "67.000000"


def board_cells(markdown: str) -> dict[str, list[str]]:
    lines = [line for line in markdown.split("### Scores per model")[0].splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {c[0]: c for c in ([x.strip() for x in line.strip("|").split("|")] for line in lines[1:])}
    return {name: dict(zip(header, cells)) for name, cells in rows.items()}


def test_markdown_marks_cells_and_adds_the_footnote(flagged, clean):
    md = render(flagged, "markdown", order=ORDER, intervals=False)
    cells = board_cells(md)
    marked = {col for col, text in cells["GRADIEND + INLP"].items() if text.endswith(f" {MARK}")}
    assert marked == {"Mean ↑", "SS", "LMS (Δ)", "LMS", "GLUE"}
    assert not any(MARK in text for name, row in cells.items() if name != "GRADIEND + INLP" for text in row.values())
    assert md.count(f"{MARK} {FOOTNOTE}.") == 1 and "(|r| ≥ 0.6, min |class mean| ≥ 0.5, opposite signs)" in md
    per_model = [line for line in md.split("### Scores per model")[1].splitlines() if MARK in line]
    assert len(per_model) == 1 and per_model[0].startswith("| m2") and "gradiend+inlp" in per_model[0]
    assert per_model[0].count(MARK) == 3  # GLUE, SS and LMS of that one (model, variant); not its SEAT dash
    plain = render(clean, "markdown", order=ORDER, intervals=False)
    assert MARK not in plain
    unmarked = {name: {col: text.removesuffix(f" {MARK}") for col, text in row.items()} for name, row in cells.items()}
    assert unmarked == board_cells(plain)  # the mark changes no number


def test_latex_marks_cells_with_a_dagger_and_adds_footnote_rows(flagged, clean):
    tex = render(flagged, "latex", order=ORDER, intervals=False)
    body, after = tex.split(r"\midrule")[1].split(r"\bottomrule")
    rows = {line.split(" & ")[0]: line.split(" & ") for line in body.strip().splitlines()}
    header = next(line for line in tex.splitlines() if line.startswith("Variant &")).split(" & ")
    marked = [header[i] for i, cell in enumerate(rows["GRADIEND + INLP"]) if r"$^\dagger$" in cell]
    assert marked == [r"Mean $\uparrow$", "SS", r"LMS ($\Delta$)", "LMS", "GLUE"]
    assert body.count(r"$^\dagger$") == 5  # no other row
    assert after.count(r"\multicolumn{12}{l}{\footnotesize") == 2 and r"$^\dagger$ built on a GRADIEND" in after
    assert r"$|r| \geq 0.6$" in after and after.strip().endswith(r"\end{tabular}")
    assert tex.count("{") == tex.count("}")
    plain = render(clean, "latex", order=ORDER, intervals=False)
    assert r"\dagger" not in plain and "footnotesize" not in plain
    assert plain.splitlines()[-2:] == [r"\bottomrule", r"\end{tabular}"]


def test_html_marks_cells_with_a_titled_sup_and_adds_the_footnote(flagged, clean):
    page = render(flagged, "html", order=ORDER, intervals=False)
    board = page.split('<table id="board">')[1].split("</table>")[0]
    row = re.search(r'<tr data-variant="gradiend\+inlp">(.*?)</tr>', board).group(1)
    sup = f'<sup class="unconverged" title="{FOOTNOTE.replace(chr(39), "&#x27;")}">{MARK}</sup>'
    assert row.count(sup) == 5 == board.count(sup)  # Mean, SS, LMS (Δ), LMS, GLUE; no other row
    assert re.search(r'<td data-v="1\.000000"[^>]*>1\.00' + re.escape(sup), row)  # SS: sort key stays a number
    per_model = page.split('<table id="per-model">')[1].split("</table>")[0]
    m2 = re.search(r"<tr><td>m2</td><td>GRADIEND \+ INLP</td>(.*?)</tr>", per_model).group(1)
    assert m2.count(sup) == per_model.count(sup) == 4  # SS, its rank, LMS and GLUE on m2
    assert page.count('<p class="notes" id="unconverged">') == 1
    assert f"{MARK} {FOOTNOTE}.".replace("'", "&#x27;") in page
    plain = render(clean, "html", order=ORDER, intervals=False)
    assert MARK not in plain and 'id="unconverged"' not in plain


def test_text_and_scores_formats_follow_the_same_rule(flagged, clean):
    for fmt in ("text", "scores"):
        text = render(flagged, fmt, order=ORDER, intervals=False)
        assert MARK in text.split(FOOTNOTE)[0] and text.count(f"{MARK} {FOOTNOTE}.") == 1
        assert MARK not in render(clean, fmt, order=ORDER, intervals=False)
    long = list(csv.DictReader(io.StringIO(render(flagged, "long-csv"))))
    assert {(r["model"], r["variant"]) for r in long if r["unconverged"] == "True"} == {("m2", "gradiend+inlp")}
