"""The report as CSV: one row per indicator x role, UTF-8 with a BOM so Excel reads it."""

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
    "mean",
    "na",
    "self",
    "gap",
    "flag",
)
SUPPRESSED = "suppressed"


def _cell(value: Any) -> Any:
    return "" if value is None else value


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
                    ind["key"],
                    ind["id"],
                    ind["dimension"],
                    ind["criterion"],
                    ind["theme"],
                    role,
                    g["n"],
                    SUPPRESSED if hidden else _cell(g["mean"]),
                    SUPPRESSED if hidden else _cell(g["na"]),
                    _cell(ind["self"]),
                    SUPPRESSED if hidden else _cell(ind["gap"].get(role)),
                    SUPPRESSED if hidden else _cell(ind["flag"].get(role)),
                ]
            )
    return ("\ufeff" + buf.getvalue()).encode("utf-8")
