"""Triangulation analytics: released figures, the anonymity gate, pure comparisons, the report.

Every reader (dashboard, API, exports, the `report` command) goes through
`build_report`, which reads only released figures (`releases`, under the release rule of
`anonymity`) and passes them through `anonymity.enforce`.
"""

from backend.reporting.anonymity import Thresholds, enforce, may_release
from backend.reporting.report import biggest_gaps, build_report

__all__ = [
    "Thresholds",
    "biggest_gaps",
    "build_report",
    "enforce",
    "may_release",
]
