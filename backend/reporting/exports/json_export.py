"""The report as pretty JSON: UTF-8, keys sorted, so the same report gives the same bytes."""

from __future__ import annotations

import json
from typing import Any


def report_json(report: dict[str, Any]) -> bytes:
    text = json.dumps(report, ensure_ascii=False, indent=2, sort_keys=True, allow_nan=False)
    return (text + "\n").encode("utf-8")
