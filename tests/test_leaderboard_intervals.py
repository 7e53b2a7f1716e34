"""Bootstrap intervals in every export and figure, and scatter labels that never overlap.

The boards are built from the hand-made records of ``leaderboard_records`` (or the committed zoo records under
``results/runs``) and then given known intervals, so every expected cell text is exact.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from pathlib import Path

import pytest

from harness.records import load_records
from leaderboard import export, html, plots
from leaderboard.labels import Box, place_labels, text_size
from leaderboard.ranking import DISPLAY_NAMES, build, display_name
from leaderboard_records import GRID, ORDER, write_grid

RESULTS = Path(__file__).resolve().parent.parent / "results" / "runs"
ZOO = ["zoo:smollm2-135m", "zoo:bert-tiny-mlm"]

# column id → interval per variant; a's GLUE interval stands for a record CI (no Δ interval), c's SEAT one must
# stay hidden behind the dash (not applicable)
KNOWN = {
    "b": {"mean": (0.75, 1.0), "ss": (0.5, 1.0), "seat": (1.0, 1.0), "lms": (79.0, 83.0), "lms_delta": (-1.1, 1.2)},
    "c": {"mean": (0.556, 1.0), "ss": (0.556, 1.0), "seat": (0.0, 1.0), "lms": (68.0, 72.0),
          "lms_delta": (-12.346, -7.5)},
    "a": {"mean": (0.1, 0.6), "ss": (0.0, 0.333), "seat": (0.25, 0.75), "lms_delta": (-3.0, 0.004),
          "glue": (70.5, 73.5)},
    "base": {"mean": (0.0, 0.5), "lms": (75.0, 78.0)},
}
P_BETTER = {"b": 0.99, "c": 0.98, "a": 0.6, "base": None}
# raw-score intervals of m1 (SS unscaled): b's contains the ideal 50, a's lies above it, base's below it
SCORE_INTERVALS = {("m1", "b", "ss"): (40.0, 52.0), ("m1", "a", "ss"): (52.5, 58.0), ("m1", "base", "ss"): (44.0, 49.0),
                   ("m1", "b", "lms"): (79.0, 84.5), ("m1", "c", "ss"): (45.0, 55.0)}


def attach_known_intervals(board, replicates: int = 200, rank_input: str = "point"):
    for row in board.rows:
        row.intervals = dict(KNOWN[row.variant])
        row.p_better = P_BETTER[row.variant]
    board.score_intervals = dict(SCORE_INTERVALS)
    board.replicates, board.rank_input = replicates, rank_input
    return board


def known_board(root: Path, **options):
    write_grid(root, GRID)
    return attach_known_intervals(build(load_records(root), order=ORDER), **options)


def zoo_board_with_record_cis():
    """The committed zoo records; their own score CIs stand in for the bootstrap's score intervals."""
    if not RESULTS.is_dir():
        pytest.skip(f"no committed records under {RESULTS}")
    from leaderboard.table import select_records

    board = build(select_records(RESULTS, models=ZOO), models=ZOO)
    board.score_intervals = {k: (c.low, c.high) for k, c in board.scores.items() if c.low is not None}
    board.replicates = 1000
    return board


@pytest.fixture
def board(tmp_path):
    return known_board(tmp_path / "runs")


def _cells(markdown: str) -> dict[str, list[str]]:
    lines = [line for line in markdown.splitlines() if line.startswith("| ")]
    return {c[0]: c for c in ([x.strip() for x in line.strip("|").split("|")] for line in lines)}


def test_markdown_cells_show_intervals_p_better_and_the_indistinct_mark(board):
    cells = _cells(export.to_markdown(board))
    assert cells["Variant"][-1] == "P(>base)" and cells["Variant"][3] == "Mean ↑"
    assert cells["b"][3:8] == ["0.92 [0.75, 1.00]", "0.83 [0.50, 1.00]", "1.00 [1.00, 1.00]",
                               "+1.00 [−1.10, +1.20] ↑", "81.00 [79.00, 83.00]"]
    assert cells["b"][-1] == "0.990" and cells["c"][-1] == "0.980" and cells["a ≈"][-1] == "0.600"  # 3 decimals
    assert cells["c"][5] == "–" and cells["c"][6] == "−10.00 [−12.35, −7.50] ↓"  # NA hides its interval
    # a: Δ interval whose upper end rounds to zero; GLUE with a raw interval but none for its Δ
    assert cells["a ≈"][6] == "−1.00 [−3.00, +0.00] ↓" and cells["a ≈"][8:10] == ["+2.00 ↑", "72.00 [70.50, 73.50]"]
    assert cells["Base Model"][6:8] == ["–", "76.67 [75.00, 78.00]"] and cells["Base Model"][-1] == ""
    assert cells["Base Model"][10] == "–"  # not applicable stays a dash


def test_notes_say_what_intervals_and_p_better_mean(tmp_path):
    board = known_board(tmp_path / "runs")
    text = export.notes(board)
    assert "95% percentile interval over 200 paired-bootstrap replicates" in text
    assert "shared by all variants" in text and "seeds are resampled within it" in text
    assert "P(>base) = share of replicates in which the variant's Mean is above the base model's" in text
    assert ("≈ after a name = not distinguishable from the base model (P(>base) between 0.025 and 0.975; no "
            "Monte-Carlo guard band)") in text  # a board built by hand: no adaptive stage, no band
    # the Monte-Carlo error of P(>base): largest sqrt(p(1 − p)/B) shown (a, 0.6) and at a threshold
    assert ("over the same 200 replicates; its Monte-Carlo standard error sqrt(P(1 − P)/B) is at most 0.035 here "
            "(0.011 at a threshold).") in text
    assert "GLUE: the records' own CIs" in text and "point estimate" not in text
    assert "point estimate" in export.notes(known_board(tmp_path / "again", rank_input="bootstrap-mean"))
    assert "≈: not distinguishable" in export.to_text(board) and "[0.75, 1.00]" in export.to_text(board)


def test_no_intervals_means_no_trace_of_them(tmp_path):
    write_grid(tmp_path, GRID)
    plain = build(load_records(tmp_path), order=ORDER)
    page = html.to_html(plain)
    table = page.split('<table id="board">')[1].split("</table>")[0]
    for text in (export.to_markdown(plain), export.to_text(plain), export.to_latex(plain, intervals=True), table):
        assert "[" not in text and "P(>base)" not in text and "P(&gt;base)" not in text
        assert "≈" not in text and "approx" not in text
    assert "whisker" not in page and "≈" not in page
    assert export.to_csv(plain).splitlines()[0] == (
        "variant,name,weight,post,mean,ss,seat,lms_delta,lms,glue_delta,glue,superglue_delta,superglue,"
        "models,unconverged")


def test_csv_has_bounds_after_every_numeric_column_and_p_better_at_the_end(board):
    text = export.to_csv(board)
    header = text.splitlines()[0].split(",")
    assert header[:11] == ["variant", "name", "weight", "post", "mean", "mean_lo", "mean_hi", "ss", "ss_lo",
                           "ss_hi", "seat"]
    assert header[-7:] == ["models", "unconverged", "p_better_than_base", "distinguishable_from_base",
                           "p_better_mc_se", "p_better_replicates", "verdict"]
    assert len(header) == 2 + 2 + 3 * 9 + 7 and "weight_lo" not in header
    rows = {r["variant"]: r for r in csv.DictReader(io.StringIO(text))}
    assert (rows["b"]["mean"], rows["b"]["mean_lo"], rows["b"]["mean_hi"]) == ("0.916667", "0.750000", "1.000000")
    assert (rows["b"]["lms_delta_lo"], rows["b"]["lms_delta_hi"]) == ("-1.100000", "1.200000")
    assert (rows["c"]["seat"], rows["c"]["seat_lo"], rows["c"]["seat_hi"]) == ("NA", "", "")
    assert (rows["a"]["glue_lo"], rows["a"]["glue_hi"], rows["a"]["glue_delta_lo"]) == ("70.500000", "73.500000", "")
    assert (rows["a"]["lms_delta_hi"], rows["c"]["lms_delta_lo"]) == ("0.004000", "-12.346000")
    assert [(rows[v]["p_better_than_base"], rows[v]["distinguishable_from_base"]) for v in ("b", "c", "a", "base")] \
        == [("0.990000", "1"), ("0.980000", "1"), ("0.600000", "0"), ("", "")]
    assert [(rows[v]["p_better_mc_se"], rows[v]["p_better_replicates"], rows[v]["verdict"]) for v in ("a", "base")] \
        == [("0.034641", "200", "indistinguishable"), ("", "", "")]


def test_latex_intervals_only_on_request(board):
    assert export.to_latex(board) == export.to_latex(board, intervals=False)
    plain = export.to_latex(board)
    assert r"\," not in plain and "approx" not in plain and "P($>$base)" not in plain
    tex = export.to_latex(board, intervals=True)
    assert re.search(r"\\begin\{tabular\}\{([a-z]+)\}", tex).group(1) == "lcc" + "r" * 10
    header = next(line for line in tex.splitlines() if line.startswith("Variant &"))
    assert header.endswith(r"& P($>$base) \\") and header.count("&") == 12
    group = next(line for line in tex.splitlines() if "Prop. Rank Bias" in line)
    assert group.count("&") == 5  # 3 leading, before Language Modeling, before P(>base)
    body = tex.split(r"\midrule")[1].split(r"\bottomrule")[0].strip().splitlines()
    assert all(line.count("&") == 12 for line in body)
    b = body[0].split(" & ")
    assert b[3] == r"\textbf{0.92}\,[0.75, 1.00]" and b[6] == r"\textbf{+1.00}\,[$-$1.10, +1.20]"
    assert b[-1] == r"0.990 \\"
    a = next(line for line in body if line.startswith("a ")).split(" & ")
    assert a[0] == r"a $\approx$" and a[8] == r"\textbf{+2.00}" and a[6] == "$-$1.00\\,[$-$3.00, +0.00]"
    assert body[-1].split(" & ")[-1] == r" \\" and body[-1].startswith("Base Model &")
    notes = tex.split(r"\bottomrule")[1]
    assert notes.count(r"\multicolumn{13}{l}{\footnotesize") == 4
    assert r"95\% percentile intervals over 200 paired-bootstrap replicates" in notes
    assert r"$\approx$: not distinguishable" in notes and r"\end{tabular}" in notes
    assert r"over 200 replicates; Monte-Carlo SE $\sqrt{P(1-P)/B}$ $\leq$ 0.035 (0.011 at a threshold)." in notes


def test_html_cells_show_intervals_but_sort_by_the_point_value(board):
    page = html.to_html(board)
    assert '<th id="col-p_better" data-type="num" scope="col">P(&gt;base)</th>' in page
    row_b = page.split('<tr data-variant="b">')[1].split("</tr>")[0]
    assert '<td data-v="0.916667" class="best">0.92 [0.75, 1.00]</td>' in row_b
    assert '<td data-v="0.990000">0.990</td>' in row_b
    row_a = page.split('<tr data-variant="a">')[1].split("</tr>")[0]
    assert row_a.startswith('<td data-v="a">a ≈</td>')  # the name sorts without the mark
    assert '<td data-v=""></td></tr>' in page.split('<tr data-variant="base">')[1]
    per_model = page.split('<table id="per-model">')[1]
    assert "<tr><td>m1</td><td>b</td><td>45.00 [40.00, 52.00]</td><td>0.67</td>" in per_model


def test_distance_interval_of_a_raw_score_interval():
    assert plots.distance_interval(40.0, 52.0, 50.0) == (0.0, 10.0)  # contains the ideal
    assert plots.distance_interval(52.5, 58.0, 50.0) == (2.5, 8.0)
    assert plots.distance_interval(44.0, 49.0, 50.0) == (1.0, 6.0)  # below the ideal: the ends swap
    assert plots.distance_interval(0.1, 0.4, 0.0) == pytest.approx((0.1, 0.4))


def test_svg_draws_whiskers_of_the_distance_and_keeps_them_inside_the_axes(board):
    svg = html.scatter_svg(board, "m1", width=460, height=320)
    attributes = [dict(re.findall(r'([\w-]+)="([^"]*)"', line)) for line in svg.splitlines()
                  if 'class="whisker"' in line]
    whiskers = {(w["data-variant"], w["data-axis"]): w for w in attributes}
    assert {k: (float(w["data-lo"]), float(w["data-hi"])) for k, w in whiskers.items()} == {
        ("b", "x"): (0.0, 10.0), ("a", "x"): (2.5, 8.0), ("base", "x"): (1.0, 6.0), ("c", "x"): (0.0, 5.0),
        ("b", "y"): (79.0, 84.5)}
    left, right, top, bottom = 52, 460 - 84, 28, 320 - 40
    for w in whiskers.values():
        assert left <= float(w["x1"]) <= float(w["x2"]) <= right and top <= float(w["y2"]) <= float(w["y1"]) <= bottom
    assert float(whiskers[("b", "x")]["x1"]) == left  # the x axis starts at 0, where b's interval does
    assert float(whiskers[("b", "y")]["y2"]) < 0.1 * (bottom - top) + top  # 84.5 widened the y axis above b (81)
    assert "<title>b: bias 5.00 [0.00, 10.00], LMS 81.00 [79.00, 84.50]</title>" in svg


def test_bars_prefer_the_bootstrap_interval(board):
    assert plots.bar_interval(board, "m1", "b", "ss", 1.0) == (40.0, 52.0)  # record CI (40, 50) overridden
    assert plots.bar_interval(board, "m1", "a", "lms", 1.0) == (76.0, 80.0)  # record CI
    assert plots.bar_interval(board, "m2", "a", "lms", 1.0) is None


# -- label placement ---------------------------------------------------------------------------------------------


def _pairwise_disjoint(boxes: list[Box]) -> bool:
    return not any(a.overlaps(b) for a, b in itertools.combinations(boxes, 2))


def test_crowded_labels_never_overlap():
    points = [(100.0, 100.0), (101.0, 102.0), (102.5, 100.5), (100.5, 101.5), (103.0, 103.0), (101.5, 100.0)]
    sizes = [(160.0, 15.0)] * 6
    placed = place_labels(points, sizes, radius=5, gap=2)
    boxes = [p.box for p in placed]
    assert _pairwise_disjoint(boxes) and [(b.w, b.h) for b in boxes] == sizes
    assert not any(b.covers_disc(x, y, 5) for b in boxes for x, y in points)  # room enough: markers stay clear
    assert placed[0].leader is False and any(p.leader for p in placed)  # the first sits next to its point
    assert place_labels(points, sizes, radius=5, gap=2) == placed  # deterministic


def test_crowded_labels_stay_inside_bounds_while_there_is_room_and_never_overlap():
    points = [(50.0 + i % 3, 110.0 + i // 3) for i in range(12)]
    roomy = Box(0, 0, 200, 220)  # right of the points: 13 slots of 16 px above each other
    placed = place_labels(points, [(120.0, 14.0)] * 12, bounds=roomy)
    assert _pairwise_disjoint([p.box for p in placed]) and all(p.box.inside(roomy) for p in placed)
    tight = Box(0, 60, 200, 100)  # room for 6: the other labels leave it, still overlapping none
    placed = place_labels(points, [(120.0, 14.0)] * 12, bounds=tight)
    assert _pairwise_disjoint([p.box for p in placed]) and sum(p.box.inside(tight) for p in placed) >= 5


def test_a_lone_label_sits_right_of_its_point_and_moves_left_at_the_edge():
    (right,) = place_labels([(10.0, 50.0)], [(40.0, 14.0)], radius=5, gap=2)
    assert right == type(right)(Box(17.0, 43.0, 40.0, 14.0), False)
    (left,) = place_labels([(190.0, 50.0)], [(40.0, 14.0)], radius=5, gap=2, bounds=Box(0, 0, 200, 100))
    assert left.box == Box(143.0, 43.0, 40.0, 14.0) and left.box.inside(Box(0, 0, 200, 100))
    with pytest.raises(ValueError, match="2 points but 1 label sizes"):
        place_labels([(0.0, 0.0), (1.0, 1.0)], [(1.0, 1.0)])


def test_labels_keep_off_other_markers():
    # the right-hand slot of the first label would cover the second point, 20 px to its right
    first, second = place_labels([(100.0, 100.0), (120.0, 100.0)], [(60.0, 14.0), (60.0, 14.0)])
    assert not first.box.covers_disc(120.0, 100.0, 5.0) and not second.box.covers_disc(100.0, 100.0, 5.0)
    assert not first.box.overlaps(second.box)


def test_estimated_label_sizes_hold_the_rendered_text():
    """The SVG's estimate is never smaller than DejaVu Sans (Chromium's and matplotlib's default font here)
    as matplotlib's renderer measures it, for every method name and combination."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [display_name(v) for v in DISPLAY_NAMES] + [display_name(f"{a}+{b}") for a in ("gradiend", "dropout", "cda")
                                                        for b in ("inlp", "sentdebias", "selfdebias")]
    fig = plt.figure(dpi=72)  # 1 pt = 1 px
    renderer = fig.canvas.get_renderer()
    try:
        for name in names:
            extent = fig.text(0, 0, name, fontsize=11, family="DejaVu Sans").get_window_extent(renderer)
            width, height = text_size(name, 11)
            assert extent.width <= width - 2 and extent.height <= height - 2, name
            assert width - 2 < 1.15 * extent.width + 4, name  # and not wastefully large
    finally:
        plt.close(fig)


def test_svg_labels_of_the_crowded_zoo_scatters_do_not_overlap():
    board = zoo_board_with_record_cis()
    for model in ZOO:
        svg = html.scatter_svg(board, model)
        labels = re.findall(r'<text class="label" data-variant="[^"]+" x="([\d.-]+)" y="([\d.-]+)">([^<]+)</text>', svg)
        assert len(labels) == 15 and svg.count('class="whisker"') == 30
        boxes = []
        for x, y, name in labels:
            w, h = text_size(name.replace("&amp;", "&"), html.LABEL_PX)
            boxes.append(Box(float(x) - 1, float(y) - 1 - 0.93 * html.LABEL_PX, w, h))
        assert _pairwise_disjoint(boxes), model


def test_png_labels_of_the_crowded_zoo_scatters_do_not_overlap(tmp_path):
    from matplotlib.text import Text

    board = zoo_board_with_record_cis()
    for model in ZOO:
        plt, fig = plots.scatter_figure(board, model)
        try:
            ax = fig.axes[0]
            renderer = fig.canvas.get_renderer()
            texts = [t for t in ax.texts if t.get_text() in {r.name for r in board.rows}]
            assert len(texts) == 15
            for t in texts:
                t.update_positions(renderer)
            extents = [Text.get_window_extent(t, renderer) for t in texts]  # the text, without its leader line
            assert not any(a.overlaps(b) for a, b in itertools.combinations(extents, 2)), model
            lows = [lo for (m, v, k), (lo, hi) in board.score_intervals.items() if m == model and k == "lms"]
            highs = [hi for (m, v, k), (lo, hi) in board.score_intervals.items() if m == model and k == "lms"]
            assert ax.get_ylim()[0] <= min(lows) and ax.get_ylim()[1] >= max(highs)  # the whiskers fit
        finally:
            plt.close(fig)
    assert plots.scatter(board, ZOO[0], tmp_path / "s.png")
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_exports_show_what_a_real_bootstrap_computed():
    """:func:`leaderboard.bootstrap.build_board` on CrowS records with per-example scores (b unbiased, a and the
    base model prefer the stereotypical sentence on 68 % and 70 % of the pairs): every export agrees with it."""
    import numpy as np

    from harness.examples import Examples, digest
    from leaderboard.bootstrap import build_board
    from leaderboard_records import make_record

    n = 400

    def crows(variant: str, stereotypical: int, shift: int):
        prefs = -np.ones(n, np.int8)
        prefs[np.linspace(0, n, stereotypical, endpoint=False).astype(int)] = 1
        rec = make_record("m", variant, "crows", {"score": 100 * stereotypical / n})
        rec.per_example = Examples("pair", {"preference": np.roll(prefs, shift), "stereo": np.ones(n, np.uint8)},
                                   digest(map(str, range(n)))).to_json()
        return rec

    board = build_board([crows("base", 280, 0), crows("a", 272, 5), crows("b", 200, 0)], bias=("crows",),
                        quality=(), order=["base", "a", "b"], replicates=300)
    rows = {r.variant: r for r in board.rows}
    assert board.replicates == 300 and rows["b"].distinguishable() is True and rows["base"].p_better is None
    assert board.p_replicates >= 300 and board.guard_z == 6
    cells = _cells(export.to_markdown(board))
    parsed = {r["variant"]: r for r in csv.DictReader(io.StringIO(export.to_csv(board)))}
    for variant, row in rows.items():
        lo, hi = row.intervals["mean"]
        name = row.name + {"indistinguishable": " ≈", "borderline": " ?"}.get(row.verdict, "")
        assert cells[name][3] == f"{row.mean:.2f} [{lo:.2f}, {hi:.2f}]".replace("-", "−")
        assert (parsed[variant]["mean_lo"], parsed[variant]["crows_hi"]) == (f"{lo:.6f}",
                                                                             f"{row.intervals['crows'][1]:.6f}")
        assert cells[name][-1] == ("" if row.p_better is None else f"{row.p_better:.3f}")
        if row.p_better is not None:
            se = (row.p_better * (1 - row.p_better) / board.p_replicates) ** 0.5
            assert (parsed[variant]["p_better_mc_se"], parsed[variant]["p_better_replicates"],
                    parsed[variant]["verdict"]) == (f"{se:.6f}", str(board.p_replicates), row.verdict)
    assert "over 300 paired-bootstrap replicates" in export.notes(board)
    assert r"\,[" in export.to_latex(board, intervals=True)


def test_notes_state_the_monte_carlo_error_and_explain_the_borderline_mark():
    """A real bootstrap with a variant at the threshold (a: P(>base) ≈ 0.975): every export marks it borderline
    and the notes say how many replicates P(>base) rests on, its largest Monte-Carlo error and the band."""
    import numpy as np

    from harness.examples import Examples, digest
    from leaderboard.bootstrap import build_board
    from leaderboard_records import make_record

    n = 400

    def crows(variant: str, stereotypical: int, shift: int):
        prefs = -np.ones(n, np.int8)
        prefs[np.linspace(0, n, stereotypical, endpoint=False).astype(int)] = 1
        rec = make_record("m", variant, "crows", {"score": 100 * stereotypical / n})
        rec.per_example = Examples("pair", {"preference": np.roll(prefs, shift), "stereo": np.ones(n, np.uint8)},
                                   digest(map(str, range(n)))).to_json()
        return rec

    board = build_board([crows("base", 280, 0), crows("a", 254, 1), crows("b", 200, 0)], bias=("crows",),
                        quality=(), order=["base", "a", "b"])
    rows = {r.variant: r for r in board.rows}
    assert (rows["a"].verdict, rows["b"].verdict, board.p_replicates) == ("borderline", "distinguishable", 128000)
    se = max(r.p_se for r in board.rows if r.p_se is not None)
    assert f"{se:.5f}" == f"{(rows['a'].p_better * (1 - rows['a'].p_better) / 128000) ** 0.5:.5f}"
    text = export.notes(board)
    assert ("over 128000 replicates (the first 1000, doubled while some variant's P(>base) lay within 6 "
            "Monte-Carlo standard errors of 0.025 or 0.975, at most 128000); its Monte-Carlo standard error "
            f"sqrt(P(1 − P)/B) is at most {export._se(se)} here (0.00044 at a threshold).") in text
    assert "guard band of 6 × 0.00044 = 0.0026: no mark = distinguishable (P(>base) ≥ 0.9776 or ≤ 0.0224)" in text
    assert "≈ after a name = not distinguishable (P(>base) between 0.0276 and 0.9724)" in text
    assert "? = borderline: P(>base) within the guard band of 0.025 or 0.975" in text
    cells = _cells(export.to_markdown(board))
    assert cells["a ?"][-1] == f"{rows['a'].p_better:.3f}" and cells["b"][-1] == "1.000"
    tex = export.to_latex(board, intervals=True)
    assert "\na ? &" in tex and "at most 128000" in tex and "?: borderline" in tex
    assert "(Monte-Carlo SE ≤" in export.to_text(board) and "?: borderline" in export.to_text(board)
    assert '<td data-v="a">a ?</td>' in html.to_html(board)
    parsed = {r["variant"]: r for r in csv.DictReader(io.StringIO(export.to_csv(board)))}
    assert (parsed["a"]["distinguishable_from_base"], parsed["a"]["verdict"]) == ("", "borderline")
    assert parsed["a"]["p_better_replicates"] == "128000" and float(parsed["a"]["p_better_mc_se"]) == \
        pytest.approx(rows["a"].p_se, abs=1e-6)
