"""Point labels of a scatter that never overlap each other: a greedy placement in pixel coordinates.

Both figures use it — the PNG (:mod:`leaderboard.plots`, label sizes measured by matplotlib's renderer) and the
inline SVG (:mod:`leaderboard.html`, sizes estimated by :func:`text_size`). Coordinates are pixels with y
growing *downwards* (SVG's convention; the PNG flips its display coordinates).

Each label, in the given order, tries candidate boxes around its point — right, left, above, below and the four
diagonals right next to it; then rings farther out (drawn with a thin leader line to the point): slots stacked
one label height apart beside the point and moved outwards by :data:`LEAD`, on the right, then on the left, and
above and below — and keeps the first box that overlaps no label placed before it, no point marker, and stays
inside ``bounds``. When no ring up to :data:`RINGS` has such a box, the
rule is relaxed in two steps: first markers may be covered, then ``bounds`` may be left; labels never overlap
each other (the rings grow until one is free). This is the usual greedy "candidate positions" labelling
(Christensen, Marks & Shieber, "An empirical study of algorithms for point-feature label placement", ACM
Trans. Graph. 14(3), 1995), without the search that would also minimise leader lengths.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import count
from typing import Iterator, Sequence

RINGS = 12  # rings tried under the strict and the first relaxed rule
LEAD = 10.0  # px: how much farther out each ring lies horizontally


@dataclass(frozen=True)
class Box:
    """An axis-aligned box: top-left corner (x, y) with y down, width w, height h."""

    x: float
    y: float
    w: float
    h: float

    def overlaps(self, other: "Box") -> bool:
        """Interiors intersect (boxes that only touch do not overlap)."""
        return (self.x < other.x + other.w and other.x < self.x + self.w
                and self.y < other.y + other.h and other.y < self.y + self.h)

    def inside(self, other: "Box") -> bool:
        return (self.x >= other.x and self.y >= other.y and self.x + self.w <= other.x + other.w
                and self.y + self.h <= other.y + other.h)

    def covers_disc(self, cx: float, cy: float, radius: float) -> bool:
        """Whether the box intersects the open disc of ``radius`` around (cx, cy)."""
        dx = cx - min(max(cx, self.x), self.x + self.w)
        dy = cy - min(max(cy, self.y), self.y + self.h)
        return dx * dx + dy * dy < radius * radius

    def nearest(self, cx: float, cy: float) -> tuple[float, float]:
        """The point of the box nearest to (cx, cy): where a leader line from (cx, cy) ends."""
        return min(max(cx, self.x), self.x + self.w), min(max(cy, self.y), self.y + self.h)


@dataclass(frozen=True)
class Placement:
    box: Box
    leader: bool  # the label sits a ring or more out: join it to its point with a thin line


def _ring(k: int) -> list[tuple[int, int]]:
    """(lead, stack) steps of ring k ≥ 1: every pair with max(lead, |stack|) = k, nearest first (a stack step,
    one label height, counts as far as a lead step), the upper slot before the lower."""
    pairs = [(lead, j) for lead in range(k + 1) for j in range(-k, k + 1) if max(lead, abs(j)) == k]
    return sorted(pairs, key=lambda p: (p[0] + abs(p[1]), p[1] > 0, p[0]))


def _candidates(px: float, py: float, w: float, h: float, radius: float, gap: float, k: int) -> Iterator[Box]:
    d = radius + gap
    if k == 0:
        diag = d * 0.75  # a box corner at 0.75·d·(√2) ≈ 1.06·d from the point clears the marker
        yield Box(px + d, py - h / 2, w, h)  # right
        yield Box(px - d - w, py - h / 2, w, h)  # left
        yield Box(px - w / 2, py - d - h, w, h)  # above
        yield Box(px - w / 2, py + d, w, h)  # below
        yield Box(px + diag, py - diag - h, w, h)  # above right
        yield Box(px + diag, py + diag, w, h)  # below right
        yield Box(px - diag - w, py - diag - h, w, h)  # above left
        yield Box(px - diag - w, py + diag, w, h)  # below left
        return
    step = h + gap
    for lead, j in _ring(k):  # stacked beside the point, on the right, then on the left
        yield Box(px + d + lead * LEAD, py - h / 2 + j * step, w, h)
        yield Box(px - d - lead * LEAD - w, py - h / 2 + j * step, w, h)
    yield Box(px - w / 2, py - d - h - k * step, w, h)
    yield Box(px - w / 2, py + d + k * step, w, h)


def place_labels(points: Sequence[tuple[float, float]], sizes: Sequence[tuple[float, float]], *,
                 radius: float = 5.0, gap: float = 2.0, bounds: Box | None = None) -> list[Placement]:
    """One placement per point (same order): label boxes of ``sizes`` (w, h) that pairwise do not overlap.

    ``radius``: the markers' radius (labels keep off every marker when they can); ``gap``: px between a label
    and its point or its stacked neighbour; ``bounds``: where labels should stay (e.g. the plot area)."""
    if len(points) != len(sizes):
        raise ValueError(f"{len(points)} points but {len(sizes)} label sizes")
    placed: list[Box] = []
    out: list[Placement] = []
    for (px, py), (w, h) in zip(points, sizes):
        out.append(_place_one(px, py, w, h, placed, points, radius, gap, bounds))
        placed.append(out[-1].box)
    return out


def _place_one(px: float, py: float, w: float, h: float, placed: list[Box], points: Sequence[tuple[float, float]],
               radius: float, gap: float, bounds: Box | None) -> Placement:
    def free(box: Box, markers: bool, bounded: bool) -> bool:
        return (not any(box.overlaps(other) for other in placed)
                and not (markers and any(box.covers_disc(qx, qy, radius) for qx, qy in points))
                and not (bounded and bounds is not None and not box.inside(bounds)))

    for markers, bounded in ((True, True), (False, True)):
        for k in range(RINGS):
            for box in _candidates(px, py, w, h, radius, gap, k):
                if free(box, markers, bounded):
                    return Placement(box, k > 0)
    for k in count():  # terminates: far enough out, the right-hand slot clears every placed box
        for box in _candidates(px, py, w, h, radius, gap, k):
            if free(box, False, False):
                return Placement(box, k > 0)
    raise AssertionError("unreachable")  # count() never ends


# Advance widths in em of DejaVu Sans (the widest common sans-serif; Chromium's and matplotlib's default on
# Debian), rounded up per character class, so estimated boxes are not smaller than the rendered text; the
# height covers DejaVu's ascent + descent (1.16 em) and Noto Sans' (1.36 em).
_EM = {"M": 0.87, "W": 1.0, "m": 0.98, "w": 0.82, "+": 0.84, "=": 0.84, "−": 0.84, "%": 0.95, "@": 1.0,
       " ": 0.32, "i": 0.28, "l": 0.28, "j": 0.28, "I": 0.3, "f": 0.36, "t": 0.4, "r": 0.42, ".": 0.32,
       ",": 0.32, ":": 0.34, "(": 0.4, ")": 0.4, "-": 0.37, "|": 0.34}


def text_size(text: str, font_px: float) -> tuple[float, float]:
    """(width, height) in px that ``text`` rendered at ``font_px`` fits in, with 1 px to spare on each side."""
    em = sum(_EM.get(ch, 0.8 if ch.isupper() else 0.64) for ch in text)
    return em * font_px + 2, 1.4 * font_px + 2
