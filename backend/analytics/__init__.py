"""Triangulation analytics: SQL aggregation, the anonymity gate, pure comparisons, the report.

Every reader (dashboard, API, exports, the `report` command) goes through
`build_report`, which passes all figures through `anonymity.enforce`.
"""

from backend.analytics.anonymity import SuppressedFilter, Thresholds, check_filter, enforce
from backend.analytics.report import biggest_gaps, build_report

__all__ = [
    "SuppressedFilter",
    "Thresholds",
    "biggest_gaps",
    "build_report",
    "check_filter",
    "enforce",
]
