"""Exports parse back (CSV numbers, LaTeX shape, Markdown), byte-identical reruns, the CLI end to end."""

from __future__ import annotations

import csv
import io
import math
import re

import pytest

from harness.cli import main
from harness.records import load_records
from leaderboard import export
from leaderboard.ranking import NA, build
from leaderboard.table import render
from leaderboard_records import GRID, ORDER, write_grid


@pytest.fixture
def results(tmp_path):
    write_grid(tmp_path / "runs", GRID)
    return tmp_path / "runs"


def test_csv_parses_back_to_the_same_numbers(results):
    board = build(load_records(results), order=ORDER)
    parsed = list(csv.DictReader(io.StringIO(render(results, "csv", order=ORDER, intervals=False))))
    assert [p["variant"] for p in parsed] == [r.variant for r in board.rows]
    for row, p in zip(board.rows, parsed):
        assert float(p["mean"]) == pytest.approx(row.mean, abs=1e-6)
        for key in ("ss", "seat"):
            want = row.bias[key]
            assert (p[key] == "NA") if want == NA else float(p[key]) == pytest.approx(want, abs=1e-6)
        for key in ("lms", "glue", "superglue"):
            want = row.quality[key]
            assert p[key] == ("NA" if want == NA else "" if want is None else p[key])
            if isinstance(want, float):
                assert float(p[key]) == pytest.approx(want, abs=1e-6)
        assert (p["weight"], p["post"]) == (str(int(row.weight)), str(int(row.post)))
    a = next(p for p in parsed if p["variant"] == "a")
    assert float(a["lms_delta"]) == pytest.approx(-1.0) and a["glue_delta"] == "2.000000"
    assert next(p for p in parsed if p["variant"] == "base")["lms_delta"] == "NA"
    assert next(p for p in parsed if p["variant"] == "b")["models"] == "2"


def _braces_balanced(text: str) -> bool:
    depth = 0
    for ch in re.sub(r"\\[{}]", "", text):
        depth += ch == "{"
        depth -= ch == "}"
        if depth < 0:
            return False
    return depth == 0


def test_latex_is_booktabs_shaped_with_bold_best(results):
    tex = render(results, "latex", order=ORDER, intervals=False)
    assert _braces_balanced(tex)
    assert [tex.count(rule) for rule in (r"\toprule", r"\midrule", r"\bottomrule")] == [1, 1, 1]
    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}") == 1
    body = tex.split(r"\midrule")[1].split(r"\bottomrule")[0].strip().splitlines()
    header = next(line for line in tex.splitlines() if line.startswith("Variant &"))
    assert all(line.count("&") == header.count("&") == 11 and line.endswith(r"\\") for line in body)
    spec = re.search(r"\\begin\{tabular\}\{([a-z]+)\}", tex).group(1)
    assert spec == "lcc" + "r" * 9
    first = body[0].split(" & ")  # b: best Mean, SEAT, LMS Δ and LMS; c has the best SS
    assert first[0] == "b" and first[3] == r"\textbf{0.92}" and first[4] == "0.83" and first[5] == r"\textbf{1.00}"
    assert first[6:8] == [r"\textbf{+1.00}", r"\textbf{81.00}"]  # LMS of b (m1 only) is the column's best
    assert body[1].split(" & ")[4] == r"\textbf{0.89}"
    a = next(line for line in body if line.startswith("a &")).split(" & ")
    assert a[6] == "$-$1.00" and a[8] == r"\textbf{+2.00}"  # signed Δ; best Δ in bold
    assert next(line for line in body if line.startswith("c &")).split(" & ")[5] == "--"
    assert r"\_" in export.latex_escape("a_b") and export.latex_escape("R&D 50%") == r"R\&D 50\%"


def test_markdown_dashes_deltas_and_per_model_table(results):
    md = render(results, "markdown", order=ORDER, intervals=False)
    lines = [line for line in md.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[:6] == ["Variant", "ΔW", "PP", "Mean ↑", "SS", "SEAT"] and header[6] == "LMS (Δ)"
    cells = {c[0]: c for c in ([x.strip() for x in line.strip("|").split("|")] for line in lines[1:5])}
    assert list(cells) == ["b", "c", "a", "Base Model"]
    assert cells["c"][5] == "–" and cells["Base Model"][6] == "–" and cells["a"][6] == "−1.00 ↓"
    assert cells["a"][8] == "+2.00 ↑" and cells["b"][9] == "–" and cells["c"][9] == ""
    assert cells["a"][1:3] == ["✗", "✓"]
    assert "### Scores per model" in md
    assert "| m1      | base      |" in md.split("### Scores per model")[1].splitlines()[4]


def test_identical_records_give_identical_bytes(results, tmp_path):
    out1, out2 = tmp_path / "t1", tmp_path / "t2"
    for out in (out1, out2):
        assert main(["leaderboard", "--no-intervals",
                 "--results", str(results), "--variants", ",".join(ORDER),
                     "--output-dir", str(out), "--plots", str(out / "fig")]) == 0
    names = sorted(p.relative_to(out1) for p in out1.rglob("*") if p.is_file())
    assert [str(n) for n in names] == ["fig/bars__glue.png", "fig/bars__lms.png", "fig/bars__seat.png",
                                       "fig/bars__ss.png", "fig/bias_vs_lms__m1.png", "fig/bias_vs_lms__m2.png",
                                       "fig/bias_vs_lms__m3.png", "leaderboard.csv", "leaderboard.html",
                                       "leaderboard.md", "leaderboard.tex"]
    for name in names:
        assert (out1 / name).read_bytes() == (out2 / name).read_bytes(), name
    assert (out1 / "fig/bars__ss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_filters_and_errors(results, capsys):
    assert main(["leaderboard", "--no-intervals",
                 "--results", str(results), "--models", "m1", "--format", "csv", "--bias", "ss"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("variant,name,weight,post,mean,ss,lms_delta")
    # only m1 ranks: c (0) is best, base (10 away from 50) worst
    assert [line.split(",")[0] for line in out.splitlines()[1:]] == ["c", "b", "a", "base"]
    assert main(["leaderboard", "--no-intervals",
                 "--results", str(results), "--bias-type", "race"]) == 2
    assert "no records for bias type 'race'" in capsys.readouterr().err
    assert main(["leaderboard", "--no-intervals",
                 "--results", str(results / "nothing")]) == 2
    assert main(["leaderboard", "--no-intervals",
                 "--results", str(results), "--format", "html", "-o", str(results / "x.html")]) == 0
    assert math.isfinite(len((results / "x.html").read_text()))


def test_readme_markers_are_replaced_and_nothing_else(results, tmp_path, capsys):
    from leaderboard.cli import README_END, README_START

    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{README_START}\nold table\n{README_END}\nafter\n")
    assert main(["leaderboard", "--no-intervals",
                 "--results", str(results), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith(f"# x\n\nbefore\n{README_START}\n| Variant") and text.endswith(f"{README_END}\nafter\n")
    assert "old table" not in text and "### Scores per model" not in text  # the README gets the board only
    assert "Scores per model: `results/tables/leaderboard.md`." in text
    assert main(["leaderboard", "--no-intervals",
                 "--results", str(results), "--readme", str(readme)]) == 0
    assert readme.read_text() == text
    readme.write_text("no markers\n")
    assert main(["leaderboard", "--no-intervals",
                 "--results", str(results), "--readme", str(readme)]) == 2
    assert "lacks one pair of leaderboard markers" in capsys.readouterr().err


def test_protocol_filter_picks_records_before_the_one_config_per_cell_check(tmp_path, capsys):
    from leaderboard_records import make_record, write

    old = make_record("m", "base", "stereoset", {"ss": 60.0, "lms": 80.0})
    new = make_record("m", "base", "stereoset", {"ss": 52.0, "lms": 90.0}, seed=0)
    new.protocol, new.config_hash, new.started_at = "full", "f" * 64, "2026-02-01T00:00:00+00:00"
    write(tmp_path, old), write(tmp_path, new)
    # two configs' records of one cell: the newest is not silently taken
    assert main(["leaderboard", "--no-intervals",
                 "--results", str(tmp_path), "--format", "csv"]) == 2
    err = capsys.readouterr().err
    assert "2 different configs for m / base / stereoset / seed 0" in err and "--config CONFIG" in err
    assert main(["leaderboard", "--no-intervals", "--protocol", "full",
                 "--results", str(tmp_path), "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[1].endswith(",90.000000,NA,,NA,,1,")
    assert main(["leaderboard", "--no-intervals",
                 "--results", str(tmp_path), "--format", "csv", "--protocol", "cpu"]) == 0
    assert capsys.readouterr().out.splitlines()[1].endswith(",80.000000,NA,,NA,,1,")
    assert main(["leaderboard", "--no-intervals",
                 "--results", str(tmp_path), "--protocol", "cpu"]) == 0
    assert "Protocol: cpu." in capsys.readouterr().out


def test_latex_compiles_when_pdflatex_is_here(results, tmp_path):
    import shutil
    import subprocess

    if not shutil.which("pdflatex"):
        pytest.skip("pdflatex absent (Debian: apt-get install texlive-latex-recommended); the shape test still runs")
    (tmp_path / "table.tex").write_text(render(results, "latex", order=ORDER, intervals=False))
    (tmp_path / "doc.tex").write_text("\\documentclass{article}\n\\usepackage{booktabs,amssymb,graphicx}\n"
                                      "\\begin{document}\n\\resizebox{\\textwidth}{!}{\\input{table.tex}}\n"
                                      "\\end{document}\n")
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and (tmp_path / "doc.pdf").stat().st_size > 1000, proc.stdout[-2000:]


def test_notes_name_the_cells_with_fewer_seeds():
    """Seeds 0–2 everywhere on m1 except variant a's GLUE (seed 0 only) → the notes say exactly that; m2 ran one
    seed and says so; one seed everywhere reads as before."""
    from leaderboard_records import make_record

    def records(glue_seeds):
        out = []
        for seed in (0, 1, 2):
            for variant in ("base", "a"):
                if variant == "base" and seed:
                    continue
                out.append(make_record("m1", variant, "stereoset", {"ss": 55.0 + seed, "lms": 80.0}, seed=seed))
                if seed in glue_seeds or variant == "base":
                    out.append(make_record("m1", variant, "glue", {"score": 70.0}, seed=seed))
        out += [make_record("m2", v, "stereoset", {"ss": 52.0, "lms": 90.0}) for v in ("base", "a")]
        return out

    text = export.notes(build(records((0,)), order=["base", "a"]))
    assert ("seeds each cell has before ranking: up to 3 on `m1`, 1 on `m2`. GLUE of a on `m1`: 1 seed only."
            in text)
    assert "seed only" not in export.notes(build(records((0, 1, 2)), order=["base", "a"]))
    single = [r for r in records((0,)) if r.seed == 0]
    assert "One seed per model." in export.notes(build(single, order=["base", "a"]))
