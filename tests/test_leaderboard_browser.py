"""The HTML leaderboard in a real headless Chromium: the page's own click handler sorts the table.

``page.html#sort=KEY`` makes the page click that column header on load (``-asc``: twice); Chromium's
``--dump-dom`` then prints the DOM after the scripts ran, whose row order we check.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from harness.records import load_records
from leaderboard.html import to_html
from leaderboard.ranking import build
from leaderboard_records import GRID, ORDER, write_grid

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
    path.write_text(to_html(build(load_records(root / "runs"), order=ORDER)), encoding="utf-8")
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
    assert row_order(rendered(chromium, page, "sort=variant")) == ["a", "b", "base", "c"]  # by shown name


def test_page_is_self_contained_with_pareto_scatters(page):
    html = page.read_text()
    assert not re.search(r"<link|<script[^>]+src=|https?://(?!www\.w3\.org/2000/svg)", html)
    assert html.count("<svg") == 3  # one scatter per model
    m1 = html.split("<svg")[1]
    # m1: |SS − 50| vs LMS — c (0, 70) and b (5, 81) are on the front; a (5, 78) and base (10, 80) are not
    front = re.findall(r'class="front" data-variant="(\w+)"', m1)
    dominated = re.findall(r'class="dominated" data-variant="(\w+)"', m1)
    assert sorted(front) == ["b", "c"] and sorted(dominated) == ["a", "base"]
    per_model = html.split('<table id="per-model">')[1].split("</table>")[0]
    assert per_model.count("<tr>") == 1 + 4 + 4 + 3  # header; m1 and m2: a, b, c, base; m3: a, c, base
    assert "<tr><td>m3</td><td>Base Model</td><td>45.00</td><td>0.50</td><td>0.70</td><td>0.50</td>" in per_model
