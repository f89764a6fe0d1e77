"""The report as an Excel workbook (openpyxl): summary, one sheet per dimension, gaps,
what respondents wrote.

Numbers are written as numbers. A suppressed group's cells read "suppressed"
(grey, italic): the report holds no figure for them, so none can be written.
The labels (sheet names, headings, flags, notes) are in the reader's language (`tx`);
the ids, keys and numbers stay as they are.
"""

from __future__ import annotations

import io
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, Cell
from openpyxl.formatting.rule import ColorScaleRule
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from backend.i18n import ENGLISH, N_, Texts
from backend.reporting.charts.reading import (
    DRAFT,
    answered_roles,
    dimensions_of,
    gap_heads,
    indicator_text,
    role_label,
    unit_titles,
)
from backend.reporting.comments import comment_rows
from backend.reporting.report import biggest_gaps

SUPPRESSED = N_("suppressed")
BOLD = Font(bold=True)
HEADER_FILL = PatternFill("solid", fgColor="DDE3EA")
GREY_FILL = PatternFill("solid", fgColor="D9D9D9")
GREY_FONT = Font(italic=True, color="595959")
FLAG_FILLS = {
    "blind_spot": PatternFill("solid", fgColor="F4A582"),  # orange: school above the group
    "hidden_strength": PatternFill("solid", fgColor="92C5DE"),  # blue: group above the school
}
# 0..4: light orange - near white - light blue (colour-blind safe, black text stays legible)
MEAN_SCALE = ColorScaleRule(
    start_type="num",
    start_value=0,
    start_color="FDDBC7",
    mid_type="num",
    mid_value=2,
    mid_color="F7F7F7",
    end_type="num",
    end_value=4,
    end_color="B5D4E9",
)


def _put(ws: Worksheet, row: int, column: int, value: Any = None) -> Cell:
    """Write one cell. Text is always a text cell, never a formula, whatever it starts with
    (a school or cycle named "=HYPERLINK(...)" stays those characters: OWASP's CSV/formula
    injection), and without the control characters XML 1.0 cannot hold (openpyxl raises)."""
    cell = ws.cell(row=row, column=column)
    if isinstance(value, str):
        cell.value = ILLEGAL_CHARACTERS_RE.sub("", value)
        cell.data_type = "s"
    elif value is not None:
        cell.value = value
    return cell


def _header(ws: Worksheet, row: int, values: list[str]) -> None:
    for col, value in enumerate(values, 1):
        cell = _put(ws, row, col, value)
        cell.font = BOLD
        cell.fill = HEADER_FILL
        cell.alignment = Alignment(wrap_text=True, vertical="top")


def _widths(ws: Worksheet, widths: dict[int, float]) -> None:
    for col, width in widths.items():
        ws.column_dimensions[get_column_letter(col)].width = width


def _sheet_title(title: str) -> str:
    """A valid sheet name: at most 31 characters, none of []:*?/\\."""
    return "".join(" " if c in "[]:*?/\\" else c for c in title)[:31]


def _summary(ws: Worksheet, report: dict[str, Any], tx: Texts) -> None:
    ws.title = _sheet_title(tx.gettext("Summary"))
    school = report.get("school") or {}
    cycle = report.get("cycle") or {}
    thresholds = report.get("thresholds") or {}
    filt = report.get("filter") or {}
    title = _put(ws, 1, 1, tx.gettext("Career guidance: self-assessment and stakeholder views"))
    title.font = Font(bold=True, size=14)
    every = tx.gettext("all")
    rows: list[tuple[str, Any]] = [
        (tx.gettext("School"), school.get("name")),
        (tx.gettext("School slug"), school.get("slug")),
        (tx.gettext("Cycle"), cycle.get("name")),
        (tx.gettext("Cycle status"), tx.label("cycle status", cycle.get("status")) or "–"),
        (tx.gettext("Model version"), report.get("model_version")),
        (tx.gettext("Cycle model version"), cycle.get("model_version")),
        (tx.gettext("Generated at"), report.get("generated_at")),
        (tx.gettext("Anonymity threshold (people)"), thresholds.get("anonymity")),
        (tx.gettext("Free-text threshold (people)"), thresholds.get("free_text")),
        (tx.gettext("Roles filter"), ", ".join(filt.get("roles") or []) or every),
    ]
    for i, (label, value) in enumerate(rows, 3):
        _put(ws, i, 1, label).font = BOLD
        _put(ws, i, 2, value)
    k = thresholds.get("anonymity", 5)
    rule_row = 3 + len(rows) + 1
    _put(
        ws,
        rule_row,
        1,
        tx.gettext(
            "Anonymity: figures are released question by question, each new release only with"
            " at least %(k)s new respondents; a group's figures are shown only when they hold"
            " at least %(k)s answers; smaller groups show their count and the word"
            " '%(suppressed)s'.",
            k=tx.number(k),
            suppressed=tx.gettext(SUPPRESSED),
        ),
    ).font = Font(italic=True)
    start = rule_row + 2
    heads = [
        tx.gettext("Role"),
        tx.gettext("Group"),
        tx.gettext("Started"),
        tx.gettext("Completed"),
    ]
    _header(ws, start, heads)
    for i, (role, counts) in enumerate((report.get("roles") or {}).items(), start + 1):
        _put(ws, i, 1, role)
        _put(ws, i, 2, role_label(role, short=False, tx=tx))
        _put(ws, i, 3, counts.get("started", 0))
        _put(ws, i, 4, counts.get("completed", 0))
    _widths(ws, {1: 30, 2: 48, 3: 12, 4: 12})


def _dimension_sheet(
    wb: Workbook, report: dict[str, Any], dim: str, roles: list[str], tx: Texts
) -> None:
    titles = unit_titles(report, tx)
    ws = wb.create_sheet(_sheet_title(tx.gettext("Dimension %(dim)s", dim=dim)))
    fixed = [
        tx.gettext("Key"),
        tx.gettext("ID"),
        tx.gettext("Criterion"),
        tx.gettext("Theme"),
        tx.gettext("Indicator"),
        tx.gettext("Kind"),
        tx.gettext("Self"),
    ]
    head = list(fixed)
    for r in roles:
        name = role_label(r, tx=tx)
        head += [
            tx.gettext("%(group)s mean", group=name),
            tx.gettext("%(group)s respondents", group=name),
            tx.gettext("%(group)s gap", group=name),
        ]
    head.append(tx.gettext("Flags"))
    suppressed = tx.gettext(SUPPRESSED)
    _header(ws, 1, head)
    ws.freeze_panes = "C2"
    self_col = len(fixed)
    scale_self_cells: list[str] = []
    mean_cols = [self_col + 1 + 3 * i for i in range(len(roles))]
    row = 1
    for ind in report.get("indicators", []):
        if ind["dimension"] != dim:
            continue
        row += 1
        text = indicator_text(report, ind["key"], tx) or ""
        kind = tx.label("scale", ind.get("kind"))
        values = [ind["key"], ind["id"], ind["criterion"], ind["theme"], text, kind]
        for col, value in enumerate(values, 1):
            _put(ws, row, col, value)
        ws.cell(row=row, column=5).alignment = Alignment(wrap_text=True, vertical="top")
        self_cell = _put(ws, row, self_col, ind["self"])
        if ind.get("kind") != "NUMBER" and ind.get("self_status") == "draft":
            # Still a number (2), shown as "2 (draft)": the school has not submitted it.
            word = tx.gettext(DRAFT).replace('"', "")
            self_cell.number_format = f'0" ({word})"'
        if ind.get("kind") != "NUMBER":
            scale_self_cells.append(f"{get_column_letter(self_col)}{row}")
        flags = []
        for i, r in enumerate(roles):
            g = ind["roles"][r]
            mcol = mean_cols[i]
            _put(ws, row, mcol + 1, g.get("respondents") or g["n"])
            if g["suppressed"]:
                for col in (mcol, mcol + 2):
                    cell = _put(ws, row, col, suppressed)
                    cell.fill = GREY_FILL
                    cell.font = GREY_FONT
                continue
            _put(ws, row, mcol, g["mean"])
            gap_cell = _put(ws, row, mcol + 2, ind["gap"].get(r))
            flag = ind["flag"].get(r)
            if flag:
                gap_cell.fill = FLAG_FILLS[flag]
                gap_cell.font = BOLD
                flags.append(f"{role_label(r, tx=tx)}: {tx.label('flag', flag)}")
        _put(ws, row, len(head), "; ".join(flags) or None)
    if row > 1:
        for col in mean_cols:
            letter = get_column_letter(col)
            ws.conditional_formatting.add(f"{letter}2:{letter}{row}", MEAN_SCALE)
        if scale_self_cells:
            ws.conditional_formatting.add(" ".join(scale_self_cells), MEAN_SCALE)
    widths = {1: 14, 2: 9, 3: 9, 4: 9, 5: 60, 6: 9, 7: 8}
    for col in mean_cols:
        widths.update({col: 12, col + 1: 7, col + 2: 11})
    widths[len(head)] = 40
    _widths(ws, widths)
    ws.row_dimensions[1].height = 32
    if dim in titles:
        ws.sheet_properties.tabColor = "4472C4"
        ws.oddHeader.center.text = tx.gettext(
            "Dimension %(dim)s: %(title)s", dim=dim, title=titles[dim]
        )


def _gaps_sheet(wb: Workbook, report: dict[str, Any], tx: Texts) -> None:
    ws = wb.create_sheet(_sheet_title(tx.gettext("Gaps")))
    _header(
        ws,
        1,
        [
            tx.gettext("Key"),
            tx.gettext("ID"),
            tx.gettext("Role"),
            *gap_heads(tx),
            tx.gettext("Flag"),
            tx.gettext("Gap, lower bound (95%)"),
            tx.gettext("Gap, upper bound (95%)"),
            tx.gettext("Clear (the interval excludes 0)"),
        ],
    )
    ws.freeze_panes = "A2"
    every = sum(len(i["gap"]) for i in report.get("indicators", []))
    for row, g in enumerate(biggest_gaps(report, limit=every) if every else [], 2):
        values = [
            g["key"],
            g["id"],
            g["role"],
            role_label(g["role"], tx=tx),
            g["self"],
            g["mean"],
            g["respondents"],
            g["gap"],
            tx.label("flag", g["flag"]) or None,
            *(g["gap_ci95"] or (None, None)),
            None
            if g["gap_clear"] is None
            else tx.gettext("yes")
            if g["gap_clear"]
            else tx.gettext("no: may be noise"),
        ]
        for col, value in enumerate(values, 1):
            cell = _put(ws, row, col, value)
            if g["flag"]:
                cell.fill = FLAG_FILLS[g["flag"]]
    _widths(ws, {1: 14, 2: 9, 3: 22, 4: 18, 5: 8, 6: 12, 7: 7, 8: 9, 9: 18, 10: 12, 11: 12, 12: 20})


def _comments_sheet(wb: Workbook, report: dict[str, Any], tx: Texts) -> None:
    """What respondents wrote: one row per released text (the report's, already past the
    free-text threshold), with its group, question and the indicators it evidences."""
    ws = wb.create_sheet(_sheet_title(tx.gettext("Comments")))
    _header(
        ws,
        1,
        [
            tx.gettext("Role"),
            tx.gettext("Group"),
            tx.gettext("Question"),
            tx.gettext("Evidence for"),
            tx.gettext("Comment"),
        ],
    )
    ws.freeze_panes = "A2"
    rows = comment_rows(report, tx)
    if not rows:
        t = (report.get("thresholds") or {}).get("free_text", 10)
        _put(
            ws,
            2,
            1,
            tx.gettext(
                "No free-text answer has been released yet. A group's texts are released once"
                " at least %(t)s of its respondents have written one.",
                t=tx.number(t),
            ),
        ).font = Font(italic=True)
    wrap = Alignment(wrap_text=True, vertical="top")
    for n, r in enumerate(rows, 2):
        for col, value in enumerate((r.role, r.group, r.question, r.evidence, r.text), 1):
            cell = _put(ws, n, col, value)
            cell.alignment = wrap
        if r.withheld:
            ws.cell(row=n, column=5).font = GREY_FONT
    _widths(ws, {1: 14, 2: 20, 3: 40, 4: 40, 5: 70})


def report_xlsx(report: dict[str, Any], *, tx: Texts = ENGLISH, comments: bool = True) -> bytes:
    """The workbook, its labels in `tx`'s language (numbers stay numbers); `comments`: a
    sheet of what respondents wrote (not for a reader who may not read it)."""
    wb = Workbook()
    _summary(wb.active, report, tx)
    roles = answered_roles(report)
    for dim in dimensions_of(report):
        _dimension_sheet(wb, report, dim, roles, tx)
    _gaps_sheet(wb, report, tx)
    if comments:
        _comments_sheet(wb, report, tx)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
