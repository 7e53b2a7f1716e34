"""The HTML leaderboard in a real headless Chromium: the page's own click handler sorts the table, and the
scatters' point labels, as the browser lays them out, overlap nowhere.

``page.html#sort=KEY`` makes the page click that column header on load (``-asc``: twice); Chromium's
``--dump-dom`` then prints the DOM after the scripts ran, whose row order we check. For the labels the test
appends a script of its own that writes every label's ``getBBox()`` into the DOM.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
from html import unescape

import pytest

from harness.records import load_records
from leaderboard.html import LABEL_PX, to_html
from leaderboard.labels import Box, text_size
from leaderboard.ranking import build
from leaderboard_records import GRID, ORDER, write_grid
from test_leaderboard_intervals import attach_known_intervals, zoo_board_with_record_cis

BROWSERS = ("chromium", "chromium-browser", "chromium-headless-shell", "headless_shell", "google-chrome")


@pytest.fixture(scope="module")
def chromium():
    for name in BROWSERS:
        if path := shutil.which(name):
            return path
    pytest.skip("no Chromium here: install Debian's `chromium` (apt-get install -y chromium) to run the browser test")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    root = tmp_path_factory.mktemp("html")
    write_grid(root / "runs", GRID)
    path = root / "board.html"
    board = attach_known_intervals(build(load_records(root / "runs"), order=ORDER))  # cells read "0.92 [0.75, 1.00]"
    path.write_text(to_html(board), encoding="utf-8")
    return path


def rendered(chromium, page, fragment: str) -> str:
    proc = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-extensions", "--disable-dev-shm-usage", "--dump-dom",
                           f"{page.as_uri()}#{fragment}"],
                          capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0 and "<tbody>" in proc.stdout, proc.stderr[-2000:]
    return proc.stdout


def row_order(dom: str) -> list[str]:
    body = dom.split("<tbody>")[1].split("</tbody>")[0]
    return re.findall(r'<tr data-variant="([^"]+)"', body)


def test_sorting_in_a_real_browser(chromium, page):
    assert row_order(page.read_text()) == ["b", "c", "a", "base"]  # as written: Mean descending
    dom = rendered(chromium, page, "sort=ss")  # SS ranks: c .89, b .83, base .28, a .11
    assert row_order(dom) == ["c", "b", "base", "a"]
    assert 'id="col-ss" data-type="num" scope="col" aria-sort="descending"' in dom
    assert row_order(rendered(chromium, page, "sort=ss-asc")) == ["a", "base", "b", "c"]
    # SEAT: c is not applicable and stays last in both directions
    assert row_order(rendered(chromium, page, "sort=seat")) == ["b", "a", "base", "c"]
    assert row_order(rendered(chromium, page, "sort=seat-asc")) == ["base", "a", "b", "c"]
    assert row_order(rendered(chromium, page, "sort=lms_delta")) == ["b", "a", "c", "base"]
    assert row_order(rendered(chromium, page, "sort=variant")) == ["a", "b", "base", "c"]  # by name, not "a ≈"
    assert row_order(rendered(chromium, page, "sort=p_better")) == ["b", "c", "a", "base"]  # base: empty, last
    assert row_order(rendered(chromium, page, "sort=p_better-asc")) == ["a", "c", "b", "base"]


def test_page_is_self_contained_with_pareto_scatters(page):
    html = page.read_text()
    assert not re.search(r"<link|<script[^>]+src=|https?://(?!www\.w3\.org/2000/svg)", html)
    assert html.count("<svg") == 3 and html.count('class="whisker"') == 5  # one scatter per model; m1 whiskers
    m1 = html.split("<svg")[1]
    # m1: |SS − 50| vs LMS — c (0, 70) and b (5, 81) are on the front; a (5, 78) and base (10, 80) are not
    front = re.findall(r'class="front" data-variant="(\w+)"', m1)
    dominated = re.findall(r'class="dominated" data-variant="(\w+)"', m1)
    assert sorted(front) == ["b", "c"] and sorted(dominated) == ["a", "base"]
    per_model = html.split('<table id="per-model">')[1].split("</table>")[0]
    assert per_model.count("<tr>") == 1 + 4 + 4 + 3  # header; m1 and m2: a, b, c, base; m3: a, c, base
    assert "<tr><td>m3</td><td>Base Model</td><td>45.00</td><td>0.50</td><td>0.70</td><td>0.50</td>" in per_model


LABEL_BOXES = """<script>
(function(){
  var out=[];
  document.querySelectorAll('svg').forEach(function(svg){
    out.push([].map.call(svg.querySelectorAll('text.label'), function(t){
      var b=t.getBBox(); return [t.textContent, b.x, b.y, b.width, b.height];}));
  });
  var pre=document.createElement('pre'); pre.id='label-boxes'; pre.textContent=JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>"""


def test_no_two_scatter_labels_overlap_in_the_browser(chromium, tmp_path):
    """The committed zoo records (15 variants per model, today's crowded case) and the hand-made grid."""
    write_grid(tmp_path / "runs", GRID)
    boards = [zoo_board_with_record_cis(), build(load_records(tmp_path / "runs"), order=ORDER)]
    for i, board in enumerate(boards):
        page = tmp_path / f"labels{i}.html"
        page.write_text(to_html(board).replace("</body>", LABEL_BOXES + "</body>"), encoding="utf-8")
        dom = rendered(chromium, page, "")
        scatters = json.loads(unescape(dom.split('<pre id="label-boxes">')[1].split("</pre>")[0]))
        assert len(scatters) == len(board.models) and all(scatters)
        for labels in scatters:
            boxes = [Box(x, y, w, h) for _, x, y, w, h in labels]
            clashes = [(a[0], b[0]) for (a, p), (b, q) in itertools.combinations(zip(labels, boxes), 2)
                       if p.overlaps(q)]
            assert not clashes, clashes
            for name, _, _, width, height in labels:  # the estimate the placement used holds the real text
                estimate = text_size(name, LABEL_PX)
                assert width <= estimate[0] and height <= estimate[1], (name, width, height, estimate)
        if i == 0:
            assert sum(len(labels) for labels in scatters) == 30
