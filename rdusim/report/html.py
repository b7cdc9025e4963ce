"""A Report as one self-contained HTML page: inline CSS, PNGs as base64 data URIs."""

from __future__ import annotations

import base64
import re
from html import escape

from rdusim.report.document import Figure, Report, Section, Table, fmt

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;
color:#222;padding:0 1em;line-height:1.4}
h1{border-bottom:2px solid #e8710a;padding-bottom:.2em}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.85em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.FAIL td{background:#fde8e8}tr.PASS td.status{color:#2a7a2a;font-weight:bold}
figure{margin:1em 0 2em}figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.85em;color:#444}figcaption b{color:#222}
.note{color:#8a5a00;font-size:.9em}pre{background:#f7f7f7;padding:.8em;overflow:auto;font-size:.8em}
.stamp td:first-child{font-weight:bold}nav ul{columns:2}
.wide{overflow-x:auto;max-width:100%;margin:.5em 0 1.5em}.wide table{margin:0}
summary{cursor:pointer;color:#1f5fa8}
"""


def anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def rows_note(t: Table) -> str:
    """What the page shows of a table, against what its CSV holds."""
    shown = min(len(t.rows), t.max_shown)
    if shown < len(t.rows):
        return f"The page shows the first {shown} of {len(t.rows)} rows; the CSV has all {len(t.rows)}:"
    return "CSV:"


def _table(t: Table) -> str:
    shown = t.rows[: t.max_shown]
    status_col = t.columns.index("result") if "result" in t.columns else None
    out = [f'<h3 id="{anchor(t.name)}">{escape(t.title)}</h3>']
    body = ['<div class="wide"><table>',
            "<thead><tr>" + "".join(f"<th>{escape(c)}</th>" for c in t.columns) + "</tr></thead><tbody>"]
    for row in shown:
        cls = f' class="{escape(str(row[status_col]))}"' if status_col is not None else ""
        cells = []
        for i, v in enumerate(row):
            kind = "num" if isinstance(v, (int, float)) and not isinstance(v, bool) else ""
            kind = "status" if i == status_col else kind
            cells.append(f'<td class="{kind}">{escape(fmt(v))}</td>' if kind else f"<td>{escape(fmt(v))}</td>")
        body.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    body.append("</tbody></table></div>")
    link = (f'<p class="note">{escape(rows_note(t))} '
            f'<a href="tables/{escape(t.name)}.csv">tables/{escape(t.name)}.csv</a></p>')
    if t.note:
        out.append(f'<p class="note">{escape(t.note)}</p>')
    if t.collapsed:
        what = (f"all {len(t.rows)} rows" if len(shown) == len(t.rows)
                else f"the first {len(shown)} of {len(t.rows)} rows")
        out.append(f"<details><summary>Show {what}</summary>{''.join(body)}</details>")
    else:
        out.extend(body)
    out.append(link)
    return "\n".join(out)


def alt_text(f: Figure) -> str:
    """The image's title and what its axes show, for a reader who cannot see the plot."""
    return f.title + (". Axes: " + "; ".join(dict.fromkeys(f.axis_labels)) if f.axis_labels else "")


def _data_link(f: Figure) -> str:
    if not f.data_csv:
        return ""
    return f' Data: <a href="tables/{escape(f.name)}.csv">tables/{escape(f.name)}.csv</a>.'


def _section(s: Section) -> str:
    out = [f'<section><h2 id="{anchor(s.title)}">{escape(s.title)}</h2>']
    if s.intro:
        out.append(f"<p>{escape(s.intro)}</p>")
    for f in s.figures:
        data = base64.b64encode(f.png).decode("ascii")
        out.append(f'<figure id="fig-{anchor(f.name)}"><img alt="{escape(alt_text(f))}" '
                   f'src="data:image/png;base64,{data}"><figcaption><b>{escape(f.title)}</b>'
                   f"{'. ' + escape(f.caption) if f.caption else ''}"
                   f"{_data_link(f)}</figcaption></figure>")
    for t in s.tables:
        out.append(_table(t))
    for n in s.notes:
        out.append(f'<p class="note">{escape(n)}</p>')
    if s.preformatted:
        out.append(f"<pre>{escape(s.preformatted)}</pre>")
    out.append("</section>")
    return "\n".join(out)


def render_html(report: Report) -> str:
    stamp = "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in report.stamp)
    toc = "".join(f'<li><a href="#{anchor(s.title)}">{escape(s.title)}</a></li>' for s in report.sections)
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{escape(report.title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{escape(report.title)}</h1>", f'<table class="stamp">{stamp}</table>',
             f"<nav><ul>{toc}</ul></nav>"]
    parts += [_section(s) for s in report.sections]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
