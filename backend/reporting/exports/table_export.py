"""A plain table (a header row and rows) as CSV or XLSX: the certification round's
overview and the audit trail. Text never becomes a formula (the CSV and XLSX guards of the
report's exports)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from openpyxl import Workbook

from backend.reporting.exports.csv_export import _cell
from backend.reporting.exports.xlsx_export import _header, _put, _sheet_title, _widths


def table_csv(rows: Sequence[Sequence[Any]]) -> bytes:
    """UTF-8 with a BOM, so Excel reads it."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return ("\ufeff" + buf.getvalue()).encode()


def table_xlsx(title: str, rows: Sequence[Sequence[Any]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.title = _sheet_title(title)
    if rows:
        _header(ws, 1, [str(v) for v in rows[0]])
        for r, row in enumerate(rows[1:], 2):
            for c, value in enumerate(row, 1):
                _put(ws, r, c, value)
        _widths(ws, {c: 24 for c in range(1, len(rows[0]) + 1)})
        ws.freeze_panes = "A2"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
