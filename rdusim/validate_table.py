"""The printed ``rdusim validate`` tables: one per role, never added into one score.

Calibration rows show their fit group, the parameters fitted on it, its points and the
degrees of freedom left; a section below lists each group's parameters (file and key)
and the references they were fitted to. A range reference shows its published range
and IN RANGE / OUT OF RANGE, never a percentage error.
"""

from __future__ import annotations

import statistics
from typing import Optional, Sequence

from rdusim.validate_fits import FitGroup, compact_ids

CALIBRATION, VALIDATION = "calibration", "validation"

_ROLE_TITLES = {
    CALIBRATION: "Calibration: numbers a parameter was fitted to (passing shows the fit holds, not predictive power)",
    VALIDATION: "Validation: predictions, nothing was tuned on these",
}


def _num(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:.4g}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def role_summary(rows: Sequence) -> str:
    """``N references, M/N pass; P points: |error| median X%, max Y%; R ranges: K/R in range``."""
    points = [r for r in rows if not r.is_range]
    ranges = [r for r in rows if r.is_range]
    passed = sum(r.passed for r in rows)
    text = f"{_plural(len(rows), 'reference')}, {passed}/{len(rows)} pass"
    if points:
        ok = sum(r.passed for r in points)
        text += f"; {_plural(len(points), 'point')} {ok}/{len(points)} within tolerance"
        errors = sorted(abs(r.error) for r in points if r.error is not None)
        if errors:
            text += f", |error| median {100 * statistics.median(errors):.1f}%, max {100 * errors[-1]:.1f}%"
    if ranges:
        text += f"; {_plural(len(ranges), 'range')} {sum(r.passed for r in ranges)}/{len(ranges)} in range"
    missing = sum(r.simulated is None for r in rows)
    return text + (f"; {missing} without a simulated value" if missing else "")


def _cells(r, source_width: Optional[int], fits: bool) -> tuple:
    published = f"{_num(r.range[0])}-{_num(r.range[1])}" if r.is_range else _num(r.expected)
    err = "-" if r.error is None else f"{r.error * 100:+.1f}"
    ci = "-" if r.ci95_low is None else f"{r.ci95_low:.4g}-{r.ci95_high:.4g}"
    tol = "range" if r.is_range else f"±{r.tolerance * 100:.0f}%"
    cells = [r.id]
    if source_width is not None:
        cells.append(r.source if len(r.source) <= source_width else r.source[: source_width - 3] + "...")
    cells += [published, _num(r.simulated), ci, err, tol, r.status]
    if fits:
        cells += ([r.fit_group, str(r.fit_parameters), str(r.fit_points), str(r.dof)] if r.fit_group
                  else ["none", "0", "-", "-"])
    return tuple(cells)


def _role_table(rows: Sequence, source_width: Optional[int], fits: bool) -> list[str]:
    head = ["id"] + (["source"] if source_width is not None else []) + \
        ["published", "simulated", "95% CI", "error %", "tolerance", "result"]
    if fits:
        head += ["fit", "params", "points", "dof"]
    body = [_cells(r, source_width, fits) for r in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body)]
    left = {i for i, h in enumerate(head) if h in ("id", "source", "result", "fit")}

    def line(cells):
        return "  ".join(str(c).ljust(w) if i in left else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(head), line(["-" * w for w in widths])] + [line(b) for b in body]


def fits_summary(groups: Sequence[FitGroup]) -> str:
    """``fits: P parameters in G groups on N points, D degrees of freedom left; ...``"""
    params = sum(len(g.parameters) for g in groups)
    points = sum(g.points for g in groups)
    zero = [g for g in groups if g.dof <= 0]
    text = (f"fits: {_plural(params, 'fitted parameter')} in {_plural(len(groups), 'group')} on "
            f"{_plural(points, 'calibration point')}, {sum(g.dof for g in groups)} degrees of freedom left")
    if zero:
        text += (f"; {_plural(len(zero), 'group')} ({', '.join(g.label for g in zero)}: "
                 f"{_plural(sum(g.points for g in zero), 'point')}) with as many parameters as points, "
                 "reproduced by construction")
    return text


def groups_section(groups: Sequence[FitGroup]) -> list[str]:
    out = ["Fit groups: parameters fitted together and the references they were fitted to "
           "(dof = points - parameters)", ""]
    for g in groups:
        out.append(f"{g.label}  {_plural(len(g.parameters), 'parameter')} on {_plural(g.points, 'point')}, "
                   f"dof {g.dof}{' (reproduced by construction)' if g.dof <= 0 else ''}")
        out += [f"    {label}" for label in g.parameter_labels()]
        ids = compact_ids(g.references, width=96)
        out += [f"    fitted to: {ids[0]}"] + [f"               {line}" for line in ids[1:]]
    return out + ["", fits_summary(groups)]


def format_table(rows: Sequence, groups: Sequence[FitGroup] = (), source_width: int = 44) -> str:
    """One table per role, each with its count and median/max |error| over its point
    references and its ranges in range; the calibration table with its fit groups."""
    out: list[str] = []
    for role in (CALIBRATION, VALIDATION):
        mine = [r for r in rows if r.role == role]
        if not mine:
            continue
        if out:
            out.append("")
        fits = role == CALIBRATION
        out += [_ROLE_TITLES[role], ""] + _role_table(mine, None if fits else source_width, fits)
        out += ["", f"{role}: {role_summary(mine)}"]
        if fits and groups:
            out += [""] + groups_section(groups)
    failed = [r for r in rows if not r.passed]
    if failed:
        out.append("")
    for r in failed:
        out.append(f"FAIL {r.id}: {r.note}")
    return "\n".join(out)
