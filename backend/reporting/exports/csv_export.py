"""The report as CSV: one row per indicator x role, UTF-8 with a BOM so Excel reads it.

Every text cell goes through `_cell`: none can start a formula in a spreadsheet.
"""

from __future__ import annotations

import csv
import io
from typing import Any

COLUMNS = (
    "key",
    "id",
    "dimension",
    "criterion",
    "theme",
    "role",
    "n",
    "respondents",
    "questions",
    "mean",
    "na",
    "self",
    "self_status",
    "gap",
    "flag",
    # 95% t-interval of the mean, and whether the gap's interval excludes zero
    "ci95_low",
    "ci95_high",
    "gap_clear",
)
SUPPRESSED = "suppressed"


# A text cell starting with one of these runs as a formula in Excel, LibreOffice or Sheets
# (a tab or CR is trimmed first): OWASP's CSV injection.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """A value for the file: numbers as they are; text that could start a formula is
    prefixed with an apostrophe, which spreadsheets read as "this is text"."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def report_csv(report: dict[str, Any]) -> bytes:
    """Rows in report order; a suppressed group's mean, N/A count and gap read "suppressed"."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for ind in report.get("indicators", []):
        for role, g in ind["roles"].items():
            hidden = bool(g.get("suppressed"))
            writer.writerow(
                [
                    _cell(ind["key"]),
                    _cell(ind["id"]),
                    _cell(ind["dimension"]),
                    _cell(ind["criterion"]),
                    _cell(ind["theme"]),
                    _cell(role),
                    _cell(g["n"]),
                    _cell(g.get("respondents")),
                    _cell(g.get("questions")),
                    SUPPRESSED if hidden else _cell(g["mean"]),
                    SUPPRESSED if hidden else _cell(g["na"]),
                    _cell(ind["self"]),
                    _cell(ind.get("self_status")),
                    SUPPRESSED if hidden else _cell(ind["gap"].get(role)),
                    SUPPRESSED if hidden else _cell(ind["flag"].get(role)),
                    *(
                        [SUPPRESSED] * 3
                        if hidden
                        else [
                            *(_cell(x) for x in g.get("ci95") or (None, None)),
                            _cell(ind["gap_clear"].get(role)),
                        ]
                    ),
                ]
            )
    return ("\ufeff" + buf.getvalue()).encode("utf-8")
