"""A Report as Markdown (report.md): pipe tables, images linked from figures/.

Every text from the report is escaped, so metric keys and globs keep their ``_`` and ``*``
(``coe.*.bs8.tok20.latency_s`` is not read as emphasis)."""

from __future__ import annotations

import re

from rdusim.report.document import Figure, Report, Section, Table, fmt

_SPECIAL = re.compile(r"([\\`*_\[\]<>|#~])")


def esc(text: str) -> str:
    """Markdown text that renders as ``text`` itself (one line)."""
    return _SPECIAL.sub(r"\\\1", str(text)).replace("\n", " ")


def _cell(v) -> str:
    return esc(fmt(v))


def _link(path: str) -> str:
    return f"[{esc(path)}]({path})"


def _table(t: Table) -> list[str]:
    shown = t.rows[: t.max_shown]
    out = [f"### {esc(t.title)}", ""]
    if t.note:
        out += [f"*{esc(t.note)}*", ""]
    out.append("| " + " | ".join(_cell(c) for c in t.columns) + " |")
    out.append("|" + "|".join("---" for _ in t.columns) + "|")
    out += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in shown]
    csv = _link(f"tables/{t.name}.csv")
    if len(shown) < len(t.rows):
        out += ["", f"The first {len(shown)} of {len(t.rows)} rows are shown; {csv} has all {len(t.rows)}.", ""]
    else:
        out += ["", f"CSV: {csv}", ""]
    return out


def _figure(f: Figure) -> list[str]:
    text = f"**{esc(f.title)}.** {esc(f.caption)}".rstrip()
    if f.data_csv:
        text += f" Data: {_link(f'tables/{f.name}.csv')}."
    return [f"![{esc(f.title)}](figures/{f.name}.png)", "", text, ""]


def _section(s: Section) -> list[str]:
    out = [f"## {esc(s.title)}", ""]
    if s.intro:
        out += [esc(s.intro), ""]
    for f in s.figures:
        out += _figure(f)
    for t in s.tables:
        out += _table(t)
    for n in s.notes:
        out += [f"> {esc(n)}", ""]
    if s.preformatted:
        out += ["```yaml", s.preformatted.rstrip("\n"), "```", ""]
    return out


def render_markdown(report: Report) -> str:
    out = [f"# {esc(report.title)}", ""]
    out += ["| | |", "|---|---|"] + [f"| {esc(k)} | {_cell(v)} |" for k, v in report.stamp] + [""]
    for s in report.sections:
        out += _section(s)
    return "\n".join(out).rstrip("\n") + "\n"
