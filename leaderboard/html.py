"""A single self-contained HTML page: sortable leaderboard table and bias-vs-LMS scatters with Pareto fronts.

No external resources (inline CSS, JS and SVG). Clicking a header sorts by it (numbers: descending first,
names: ascending first, case-insensitive; a second click reverses; empty cells stay last). ``page.html#sort=KEY`` or
``#sort=KEY-asc`` clicks the header on load, which makes sorted views linkable (and lets a headless
browser test the sort). A cell built on a GRADIEND that did not converge gets a ``<sup>`` dagger whose title is
the footnote, which then follows the notes.
"""

from __future__ import annotations

from html import escape

from leaderboard import export
from leaderboard.export import any_marked, cell_text, column_id, columns, footnote, marked, notes, value
from leaderboard.flags import FOOTNOTE, MARK
from leaderboard.labels import Box, place_labels, text_size
from leaderboard.plots import axis_range, scatter_points
from leaderboard.ranking import NA, Leaderboard, pareto_front

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:1em 0}th,td{padding:.3em .6em;text-align:right;white-space:nowrap}
th{border-bottom:2px solid #444}#board th{cursor:pointer;user-select:none}#board th:hover{background:#eef}
td:first-child,th:first-child,#per-model td:nth-child(2),#per-model th:nth-child(2){text-align:left}\
tbody tr:nth-child(even){background:#f6f6f6}
td.best{font-weight:bold}th[aria-sort=descending]::after{content:" ▼"}th[aria-sort=ascending]::after{content:" ▲"}
.notes{color:#555;max-width:60em}sup.unconverged{color:#c0392b;cursor:help}.plots{display:flex;flex-wrap:wrap;gap:1.5em}
svg text{font:11px system-ui,sans-serif}.front{fill:#c0392b}.dominated{fill:#7f8c8d}
"""

JS = """
(function(){
  var table=document.getElementById('board'), body=table.tBodies[0];
  var heads=table.tHead.rows[0].cells;
  function key(td,numeric){var v=td.getAttribute('data-v');
    if(v===null||v===''){return null;} return numeric?parseFloat(v):v;}
  function sortBy(th){
    var idx=Array.prototype.indexOf.call(heads,th), numeric=th.getAttribute('data-type')==='num';
    var current=th.getAttribute('aria-sort');
    var dir=current?(current==='descending'?'ascending':'descending'):(numeric?'descending':'ascending');
    var rows=Array.prototype.slice.call(body.rows);
    rows.forEach(function(r,i){r._pos=i;});
    rows.sort(function(a,b){
      var x=key(a.cells[idx],numeric), y=key(b.cells[idx],numeric);
      if(x===null||y===null){return (x===null)-(y===null)||a._pos-b._pos;}
      var c=numeric?x-y:x.localeCompare(y,'en',{sensitivity:'base'}); if(dir==='descending'){c=-c;}
      return c||a._pos-b._pos;});
    rows.forEach(function(r){body.appendChild(r);});
    Array.prototype.forEach.call(heads,function(h){h.removeAttribute('aria-sort');});
    th.setAttribute('aria-sort',dir);
  }
  Array.prototype.forEach.call(heads,function(th){th.addEventListener('click',function(){sortBy(th);});});
  var m=/sort=([A-Za-z0-9_]+?)(-asc)?$/.exec(location.hash);
  if(m){var th=document.getElementById('col-'+m[1]);
    if(th){th.click(); if(m[2]&&th.getAttribute('aria-sort')!=='ascending'){th.click();}}}
})();
"""


def _num(x: float) -> str:
    return f"{x:.6f}"


SUP = f'<sup class="unconverged" title="{escape(FOOTNOTE)}">{MARK}</sup>'


def _interval_title(interval: tuple[float, float] | None) -> str:
    return "" if interval is None else f" [{interval[0]:.2f}, {interval[1]:.2f}]"


LABEL_PX = 11  # the font size of point labels (CSS below: svg text)


def scatter_svg(board: Leaderboard, model: str, width: int = 560, height: int = 380) -> str:
    """|bias − ideal| (first bias column) against LMS for one model; the Pareto front in red; 95 % interval
    whiskers where the board has them; point labels placed so that none overlaps another
    (:func:`leaderboard.labels.place_labels`, sizes estimated by :func:`leaderboard.labels.text_size`)."""
    points = scatter_points(board, model)
    if not points:
        return ""
    bias, lms = board.bias_columns[0], board.quality_columns[0]
    front = set(pareto_front([(p.variant, p.x, p.y) for p in points]))
    left, right, top, bottom = 52, 84, 28, 40  # right: room for point labels
    x0, x1 = axis_range([p.x for p in points], [p.x_interval for p in points], floor=0.0)
    y0, y1 = axis_range([p.y for p in points], [p.y_interval for p in points])

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def py(y: float) -> float:
        return height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)

    label = f"|{bias.label} − {bias.ideal:g}|" if bias.ideal else f"|{bias.label}|"
    parts = [f'<text x="{width / 2:.1f}" y="16" text-anchor="middle">{escape(model)}</text>',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="#444"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#444"/>']
    for i in range(5):
        tx, ty = x0 + (x1 - x0) * i / 4, y0 + (y1 - y0) * i / 4
        parts.append(f'<text x="{px(tx):.1f}" y="{height - bottom + 14}" text-anchor="middle">{tx:.2f}</text>')
        parts.append(f'<text x="{left - 4}" y="{py(ty) + 4:.1f}" text-anchor="end">{ty:.1f}</text>')
    parts.append(f'<text x="{(left + width - right) / 2:.1f}" y="{height - 6}" text-anchor="middle">'
                 f'bias {escape(label)} (lower is better)</text>')
    parts.append(f'<text transform="translate(12 {(top + height - bottom) / 2:.1f}) rotate(-90)" '
                 f'text-anchor="middle">{escape(lms.label)} (higher is better)</text>')
    for p in points:  # whiskers first, so that points and labels lie on top
        attrs = (f'class="whisker" data-variant="{escape(p.variant)}" '
                 f'stroke="{"#c0392b" if p.variant in front else "#7f8c8d"}" stroke-opacity="0.5"')
        if p.x_interval:
            lo, hi = p.x_interval
            parts.append(f'<line {attrs} data-axis="x" data-lo="{_num(lo)}" data-hi="{_num(hi)}" '
                         f'x1="{px(lo):.1f}" y1="{py(p.y):.1f}" x2="{px(hi):.1f}" y2="{py(p.y):.1f}"/>')
        if p.y_interval:
            lo, hi = p.y_interval
            parts.append(f'<line {attrs} data-axis="y" data-lo="{_num(lo)}" data-hi="{_num(hi)}" '
                         f'x1="{px(p.x):.1f}" y1="{py(lo):.1f}" x2="{px(p.x):.1f}" y2="{py(hi):.1f}"/>')
    on_front = sorted((p for p in points if p.variant in front), key=lambda p: p.x)
    if len(on_front) > 1:
        path = " ".join(f"{px(p.x):.1f},{py(p.y):.1f}" for p in on_front)
        parts.append(f'<polyline class="front-line" points="{path}" fill="none" stroke="#c0392b" '
                     'stroke-dasharray="4 3"/>')
    for p in points:
        cls = "front" if p.variant in front else "dominated"
        tip = (f"{escape(p.name)}: bias {p.x:.2f}{_interval_title(p.x_interval)}, "
               f"{escape(lms.label)} {p.y:.2f}{_interval_title(p.y_interval)}")
        parts.append(f'<circle class="{cls}" data-variant="{escape(p.variant)}" cx="{px(p.x):.1f}" '
                     f'cy="{py(p.y):.1f}" r="5"><title>{tip}</title></circle>')
    plot_area = Box(left, top - 6, width - left - 2, height - bottom - top + 6)  # the right margin included
    placements = place_labels([(px(p.x), py(p.y)) for p in points], [text_size(p.name, LABEL_PX) for p in points],
                              radius=5.0, gap=2.0, bounds=plot_area)
    for p, placed in zip(points, placements):
        box = placed.box
        if placed.leader:
            end_x, end_y = box.nearest(px(p.x), py(p.y))
            parts.append(f'<line class="leader" x1="{px(p.x):.1f}" y1="{py(p.y):.1f}" x2="{end_x:.1f}" '
                         f'y2="{end_y:.1f}" stroke="#555" stroke-width="0.6"/>')
        # baseline 1 px + DejaVu's ascent (0.93 em) below the box top; the box leaves 1 px on each side
        parts.append(f'<text class="label" data-variant="{escape(p.variant)}" x="{box.x + 1:.1f}" '
                     f'y="{box.y + 1 + 0.93 * LABEL_PX:.1f}">{escape(p.name)}</text>')
    # labels pushed out of the plot (only when it is too crowded) widen the picture instead of being cut off
    lo_x = min([0.0, *(q.box.x for q in placements)])
    lo_y = min([0.0, *(q.box.y for q in placements)])
    hi_x = max([float(width), *(q.box.x + q.box.w for q in placements)])
    hi_y = max([float(height), *(q.box.y + q.box.h for q in placements)])
    view = f"{lo_x:.1f} {lo_y:.1f} {hi_x - lo_x:.1f} {hi_y - lo_y:.1f}"
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{hi_x - lo_x:.0f}" height="{hi_y - lo_y:.0f}" '
            f'viewBox="{view}" role="img" aria-label="{escape(label)} vs {escape(lms.label)} for {escape(model)}">')
    return "\n".join([head, *parts, "</svg>"])


def _bounds(board: Leaderboard, model: str, variant: str, key: str) -> str:
    found = board.score_intervals.get((model, variant, key))
    return "" if found is None else " " + escape(export.interval_text(found))


def per_model_table(board: Leaderboard) -> str:
    """Every (model, variant): raw bias scores with their per-model proportional rank, and raw quality scores;
    the scores' bootstrap intervals where the board has them."""
    head = "".join(f"<th>{escape(c.label)}</th><th>rank</th>" for c in board.bias_columns)
    head += "".join(f"<th>{escape(c.label)}</th>" for c in board.quality_columns)
    lines = [f'<table id="per-model"><thead><tr><th>model</th><th>variant</th>{head}</tr></thead><tbody>']
    for model in board.models:
        for r in board.rows:
            cells = []
            for c in board.bias_columns:
                cell = board.scores.get((model, r.variant, c.key))
                rank = board.per_model_ranks.get((model, c.key), {}).get(r.variant)
                sup = SUP if (model, r.variant, c.key) in board.unconverged_scores else ""
                score = "" if cell is None else f"{cell.value:.2f}{_bounds(board, model, r.variant, c.key)}{sup}"
                cells.append(f"<td>{score}</td><td>{'' if rank is None else f'{rank:.2f}{sup}'}</td>")
            for c in board.quality_columns:
                cell = board.scores.get((model, r.variant, c.key))
                sup = SUP if (model, r.variant, c.key) in board.unconverged_scores else ""
                score = ("" if cell is None
                         else f"{cell.value * c.scale:.2f}{_bounds(board, model, r.variant, c.key)}{sup}")
                cells.append(f"<td>{score}</td>")
            if any((model, r.variant, c.key) in board.scores for c in [*board.bias_columns, *board.quality_columns]):
                lines.append(f"<tr><td>{escape(model)}</td><td>{escape(r.name)}</td>{''.join(cells)}</tr>")
    lines.append("</tbody></table>")
    return "\n".join(lines)


def to_html(board: Leaderboard, title: str = "gradiend-bench leaderboard") -> str:
    """The page; cells show their bootstrap intervals where the board has them, but sort by the point value."""
    cols = columns(board)
    best = {c: export.best_rows(board, c) for c in cols}
    head = ['<th id="col-variant" data-type="text" scope="col">Variant</th>']
    for c in cols:
        key = column_id(c)
        dtype = "text" if c.kind == "flag" else "num"
        head.append(f'<th id="col-{key}" data-type="{dtype}" scope="col">{escape(c.label)}</th>')
    body = []
    for r in board.rows:
        tds = [f'<td data-v="{escape(r.name)}">{escape(export.name_text(board, r))}</td>']
        for c in cols:
            v = value(r, c)
            sort_key = "" if v is None or v == NA else (("1" if v else "0") if c.kind == "flag" else _num(v))
            cls = ' class="best"' if r.variant in best[c] else ""
            sup = SUP if marked(r, c) else ""
            text = escape(cell_text(v, c, bounds=export.interval(board, r, c)) + export.floor_text(r, c))
            tds.append(f'<td data-v="{sort_key}"{cls}>{text}{sup}</td>')
        body.append(f'<tr data-variant="{escape(r.variant)}">' + "".join(tds) + "</tr>")
    plots = [svg for m in board.models if (svg := scatter_svg(board, m))]
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        '<table id="board"><thead><tr>' + "".join(head) + "</tr></thead><tbody>",
        *body, "</tbody></table>",
        f'<p class="notes">{escape(notes(board)).replace("`", "")} Click a column header to sort.</p>',
        *([f'<p class="notes" id="unconverged">{escape(footnote())}</p>']
          if any_marked(board) or board.unconverged_scores else []),
        "<h2>Bias against language modelling, per model</h2>",
        '<p class="notes">Red points lie on the Pareto front: no other variant is both less biased and better '
        "at language modelling.</p>",
        '<div class="plots">', *plots, "</div>",
        "<details><summary>Per-model scores and proportional ranks</summary>", per_model_table(board), "</details>",
        f"<script>{JS}</script>", "</body></html>", ""])
