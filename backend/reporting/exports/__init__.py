"""Exports of the triangulation report: CSV, XLSX, JSON and PDF.

Every export is a pure function of the report dict that
`backend.reporting.build_report` made through the anonymity gate; none reads
the database or raw answers, so none can show a figure the report withholds.
"""

from backend.reporting.exports.csv_export import report_csv
from backend.reporting.exports.json_export import report_json
from backend.reporting.exports.pdf_export import report_pdf
from backend.reporting.exports.table_export import table_csv, table_xlsx
from backend.reporting.exports.xlsx_export import report_xlsx

__all__ = ["report_csv", "report_json", "report_pdf", "report_xlsx", "table_csv", "table_xlsx"]
