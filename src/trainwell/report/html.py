"""Self-contained HTML: one page of sections, tables and inline figures.

Everything a page needs is inline: the CSS in a ``<style>`` element, every figure as a
``data:image/png;base64,...`` URI and the one script there is (the column filters of a
comparison's table, :data:`FILTER_JS`), so a report opens from ``file://`` with no network
access. The layout is a single column on a phone and a grid of figures on a wide screen; a
table wider than the screen scrolls inside its own box.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import math
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

CSS = """
:root { --fg:#1d2330; --muted:#5b6474; --line:#d9dee7; --bg:#ffffff; --panel:#f5f7fa;
  --pass:#1b7f3b; --warn:#9a6700; --fail:#b42318; --accent:#2456a6; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
body { margin:0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans",
  sans-serif; color:var(--fg); background:var(--bg); }
header { padding: 1rem clamp(0.75rem, 3vw, 2rem); border-bottom:1px solid var(--line);
  background:var(--panel); }
header h1 { margin:0 0 .25rem; font-size:clamp(1.25rem, 4vw, 1.75rem); overflow-wrap:anywhere; }
header p { margin:0; color:var(--muted); }
nav { display:flex; flex-wrap:wrap; gap:.25rem .9rem; margin-top:.6rem; font-size:.95rem; }
nav a { color:var(--accent); text-decoration:none; }
main { max-width: 1500px; margin: 0 auto; padding: 0 clamp(0.75rem, 3vw, 2rem) 2rem; }
section { margin-top: 1.75rem; }
h2 { font-size:1.3rem; border-bottom:2px solid var(--line); padding-bottom:.2rem; }
h3 { font-size:1.05rem; margin:1rem 0 .4rem; }
.note { color:var(--muted); font-style:italic; }
.cards { display:grid; grid-template-columns: repeat(auto-fill, minmax(17rem, 1fr)); gap:.75rem; }
.card { background:var(--panel); border:1px solid var(--line); border-radius:6px;
  padding:.6rem .8rem; }
.card h3 { margin:0 0 .3rem; font-size:1rem; }
.figs { display:grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 26rem), 1fr));
  gap:1rem; align-items:start; }
figure { margin:0; background:#fff; border:1px solid var(--line); border-radius:6px;
  padding:.5rem; }
figure img { display:block; max-width:100%; height:auto; margin:0 auto; }
.figs > figure.wide, .figs > figure:only-child { grid-column: 1 / -1; }
figcaption { color:var(--muted); font-size:.9rem; margin-top:.3rem; }
.scroll { overflow-x:auto; -webkit-overflow-scrolling:touch; }
table { border-collapse:collapse; font-size:.92rem; margin:.25rem 0; }
th, td { border:1px solid var(--line); padding:.25rem .5rem; text-align:left; vertical-align:top; }
.card table { width:100%; }
.card td { overflow-wrap:break-word; }
th { background:var(--panel); }
td.num { text-align:right; font-variant-numeric: tabular-nums; }
table.kv th { width:40%; }
pre { background:var(--panel); border:1px solid var(--line); padding:.6rem; overflow-x:auto;
  font-size:.85rem; }
details summary { cursor:pointer; color:var(--accent); }
.badge { display:inline-block; padding:0 .45rem; border-radius:999px; color:#fff;
  font-size:.8rem; font-weight:600; text-transform:uppercase; }
.badge.pass { background:var(--pass); } .badge.warn { background:var(--warn); }
.badge.fail { background:var(--fail); } .badge.info { background:var(--muted); }
.finding { border-left:4px solid var(--line); padding:.3rem .8rem; margin:.6rem 0;
  background:var(--panel); }
.finding.pass { border-color:var(--pass); } .finding.warn { border-color:var(--warn); }
.finding.fail { border-color:var(--fail); }
.finding ul { margin:.3rem 0; padding-left:1.2rem; }
footer { color:var(--muted); font-size:.85rem; border-top:1px solid var(--line);
  padding: .8rem clamp(0.75rem, 3vw, 2rem); }
.live { margin:.5rem 0 0; padding:.3rem .6rem; border-radius:6px; background:#e8f0fd;
  border:1px solid #b7cdf3; color:var(--fg); display:inline-block; }
.panels { display:flex; flex-wrap:wrap; gap:.5rem; justify-content:center; }
.panels img { flex:0 1 auto; }
.scroll { max-width:100%; }
tr.hidden { display:none; }
input.filter { width:100%; min-width:5rem; font:inherit; font-size:.85rem; padding:.1rem .25rem;
  border:1px solid var(--line); border-radius:4px; }
@media (max-width: 640px) {
  .figs { grid-template-columns: minmax(0, 1fr); }
  .cards { grid-template-columns: 1fr; }
  .panels { flex-direction:column; align-items:center; }
  table { font-size:.85rem; }
  th, td { padding:.2rem .35rem; }
}
"""


def esc(value: Any) -> str:
    """HTML-escape ``str(value)``."""
    return html.escape(str(value), quote=True)


def fmt(value: Any) -> str:
    """A number or value as a short, stable string (4 significant digits for floats)."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3e}"
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    return str(value)


def fmt_duration(seconds: Any) -> str:
    """``3725.0`` -> ``"1 h 2 min 5 s"``; sub-minute times keep one decimal."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return (f"{h} h " if h else "") + f"{m} min {s} s"


def cell(value: Any) -> str:
    """A table cell, right-aligned when the value is a number."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f'<td class="num">{esc(fmt(value))}</td>'
    return f"<td>{esc(fmt(value))}</td>"


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], cls: str = "") -> str:
    """A scrollable table; cells are escaped, numbers formatted with :func:`fmt`."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    attr = f' class="{cls}"' if cls else ""
    return (f'<div class="scroll"><table{attr}><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def filter_table(header: Sequence[str], rows: Iterable[Sequence[Any]], table_id: str) -> str:
    """A table with a text box above each column that filters its rows (:data:`FILTER_JS`).

    A box keeps the rows whose cell contains its text (case-insensitive); ``>0.9``, ``<=10``
    and the like compare numbers instead. The boxes of all columns apply together.
    """
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    boxes = "".join(f'<th><input class="filter" type="search" data-col="{i}" '
                    f'aria-label="filter {esc(h)}" placeholder="filter"></th>'
                    for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    return (f'<div class="scroll"><table class="filterable" id="{esc(table_id)}"><thead>'
            f'<tr>{head}</tr><tr class="filters">{boxes}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


# The column filters of filter_table: plain DOM, no library.
FILTER_JS = r"""
(function () {
  function keep(text, want) {
    var m = /^(<=|>=|<|>|=)\s*(-?[0-9.]+(?:e-?[0-9]+)?)$/i.exec(want);
    if (m) {
      var v = parseFloat(text), w = parseFloat(m[2]);
      if (isNaN(v)) return false;
      return m[1] === '<' ? v < w : m[1] === '>' ? v > w : m[1] === '<=' ? v <= w
        : m[1] === '>=' ? v >= w : v === w;
    }
    return text.toLowerCase().indexOf(want.toLowerCase()) >= 0;
  }
  document.querySelectorAll('table.filterable').forEach(function (t) {
    var boxes = t.querySelectorAll('input.filter');
    function apply() {
      t.querySelectorAll('tbody tr').forEach(function (tr) {
        var ok = true;
        boxes.forEach(function (b) {
          var want = b.value.trim(), c = tr.cells[+b.dataset.col];
          if (want && !(c && keep(c.textContent.trim(), want))) ok = false;
        });
        tr.classList.toggle('hidden', !ok);
      });
    }
    boxes.forEach(function (b) { b.addEventListener('input', apply); });
    apply();
  });
})();
"""


def kv_table(pairs: Iterable[tuple[str, Any]]) -> str:
    """A two-column key/value table."""
    rows = "".join(f"<tr><th>{esc(k)}</th>{cell(v)}</tr>" for k, v in pairs)
    return f'<div class="scroll"><table class="kv"><tbody>{rows}</tbody></table></div>'


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


BADGES = ("pass", "warn", "fail")


def badge_class(status: Any) -> str:
    """The CSS class of a status badge: pass, warn, fail, and info for anything else."""
    return str(status) if str(status) in BADGES else "info"


def badge(status: Any) -> str:
    """A colored status badge (pass, warn, fail; any other status is shown as info)."""
    return f'<span class="badge {badge_class(status)}">{esc(status)}</span>'


def verdict(status: Any, title: str, text: str) -> str:
    """A verdict box: a status badge and a title, with the verdict's text below."""
    return (f'<div class="finding {badge_class(status)}"><h3>{badge(status)} {esc(title)}</h3>'
            f"<p>{esc(text)}</p></div>")


def png_size(data_uri: str) -> tuple[int, int]:
    """(width, height) in pixels of a PNG data URI, read from its IHDR chunk."""
    head = base64.b64decode(data_uri.split(",", 1)[1][:32])
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


WIDE_MIN_PX = 640  # a wide figure (panels side by side) is never shown narrower: it scrolls


def figure(fig_id: str, data_uri: str, caption: str, wide: bool = False) -> str:
    """An inline figure shown at most at its natural size; ``data_uri`` is a PNG data URI.

    ``wide``: the figure spans the grid's row; on a screen narrower than ``WIDE_MIN_PX`` it
    keeps that width and scrolls sideways inside its frame, so its panels stay readable.
    """
    w, hgt = png_size(data_uri)
    cls = ' class="wide"' if wide else ""
    img = f'<img src="{data_uri}" width="{w}" height="{hgt}" alt="{esc(caption)}"'
    if wide:
        img = f'<div class="scroll">{img} style="min-width:{min(w, WIDE_MIN_PX)}px"></div>'
    else:
        img += ">"
    return f'<figure id="{esc(fig_id)}"{cls}>{img}<figcaption>{esc(caption)}</figcaption></figure>'


def panel_figure(fig_id: str, data_uris: Sequence[str], caption: str) -> str:
    """A figure of several panels (:func:`~trainwell.report.figures.render_panels`): side by
    side on a wide screen, stacked on a phone; it spans the grid's row."""
    imgs = []
    for k, uri in enumerate(data_uris):
        w, hgt = png_size(uri)
        alt = caption if k == 0 else f"{caption} (panel {k + 1})"
        imgs.append(f'<img src="{uri}" width="{w}" height="{hgt}" alt="{esc(alt)}">')
    return (f'<figure id="{esc(fig_id)}" class="wide"><div class="panels">{"".join(imgs)}</div>'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def figures(items: Iterable[str]) -> str:
    """Figures laid out in a responsive grid (one column on a phone)."""
    return '<div class="figs">' + "".join(items) + "</div>"


def write_page(path: str | os.PathLike[str], render_page: Callable[[], str]) -> Path:
    """Render a page and write it atomically (a reader never sees half a page)."""
    from trainwell.runs import write_text_atomic

    return write_text_atomic(path, render_page())


def section(sec_id: str, title: str, body: str) -> str:
    return f'<section id="{esc(sec_id)}"><h2>{esc(title)}</h2>{body}</section>'


def timestamp() -> str:
    """The generation time in UTC; honours ``SOURCE_DATE_EPOCH`` for reproducible builds."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.isdigit():
        when = _dt.datetime.fromtimestamp(int(epoch), tz=_dt.UTC)
    else:
        when = _dt.datetime.now(tz=_dt.UTC)
    return when.replace(microsecond=0).isoformat()


def page(title: str, subtitle: str, sections: Sequence[tuple[str, str, str]],
         banner: str = "", refresh_s: int | None = None, script: str = "") -> str:
    """A whole page: ``sections`` are ``(id, title, body_html)``; the nav links to each.

    The generation time is the only part of the page that changes when the same inputs are
    rendered again; it sits in the footer's ``<time id="generated">`` element.

    ``banner``: a line under the subtitle (a live report's "training, epoch k of n");
    ``refresh_s``: the browser reloads the page every that many seconds (``<meta
    http-equiv="refresh">``, no script); ``script``: inline JavaScript run at the page's end.
    """
    from trainwell import __version__

    nav = "".join(f'<a href="#{esc(i)}">{esc(t)}</a>' for i, t, _ in sections)
    body = "".join(section(i, t, b) for i, t, b in sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        + (f'<meta http-equiv="refresh" content="{int(refresh_s)}">' if refresh_s else "")
        + f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p>"
        + (f'<p class="live" id="live">{esc(banner)}</p>' if banner else "")
        + f"<nav>{nav}</nav></header>"
        f"<main>{body}</main>"
        f'<footer>trainwell {esc(__version__)} report, generated '
        f'<time id="generated">{timestamp()}</time></footer>'
        + (f"<script>{script}</script>" if script else "")
        + "</body></html>\n"
    )
