"""A Report as Markdown (report.md): pipe tables, images linked from figures/."""

from __future__ import annotations

from rdusim.report.document import Report, Section, Table, fmt


def _cell(v) -> str:
    return fmt(v).replace("|", "\\|").replace("\n", " ")


def _table(t: Table) -> list[str]:
    shown = t.rows[: t.max_shown]
    out = [f"### {t.title}", ""]
    if t.note:
        out += [f"*{t.note}*", ""]
    out.append("| " + " | ".join(_cell(c) for c in t.columns) + " |")
    out.append("|" + "|".join("---" for _ in t.columns) + "|")
    out += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in shown]
    more = f"{len(t.rows) - len(shown)} more rows in " if len(t.rows) > len(shown) else "CSV: "
    out += ["", f"{more}[tables/{t.name}.csv](tables/{t.name}.csv)", ""]
    return out


def _section(s: Section) -> list[str]:
    out = [f"## {s.title}", ""]
    if s.intro:
        out += [s.intro, ""]
    for f in s.figures:
        out += [f"![{f.title}](figures/{f.name}.png)", "", f"**{f.title}.** {f.caption}".rstrip(), ""]
    for t in s.tables:
        out += _table(t)
    for n in s.notes:
        out += [f"> {n}", ""]
    if s.preformatted:
        out += ["```yaml", s.preformatted.rstrip("\n"), "```", ""]
    return out


def render_markdown(report: Report) -> str:
    out = [f"# {report.title}", ""]
    out += ["| | |", "|---|---|"] + [f"| {k} | {_cell(v)} |" for k, v in report.stamp] + [""]
    for s in report.sections:
        out += _section(s)
    return "\n".join(out).rstrip("\n") + "\n"
