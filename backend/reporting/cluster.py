"""The cluster view: each school of a cluster beside the cluster median, indicator by indicator.

Pure functions over reports made by `build_report` (one per school, so the anonymity
gate applied to each): only figures a report shows take part. A median is computed
only where at least `MIN_SCHOOLS` schools have a shown figure for that indicator and
series (the school's own rating, or one group's mean); otherwise it is None and the
view says "fewer than 3 schools".
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

MIN_SCHOOLS = 3
SELF = "self"


def median_of(values: Iterable[float | None], min_count: int = MIN_SCHOOLS) -> float | None:
    """The median of the shown values, or None when fewer than `min_count` are shown."""
    shown = [float(v) for v in values if v is not None]
    if len(shown) < min_count:
        return None
    return statistics.median(shown)


def shown_figure(ind: Mapping[str, Any], series: str) -> float | None:
    """One shown figure of one indicator row: SELF (scale ratings only) or a group's mean."""
    if series == SELF:
        if ind.get("kind") == "NUMBER" or ind.get("self") is None:
            return None
        return float(ind["self"])
    g = (ind.get("roles") or {}).get(series)
    if not g or g.get("mean") is None:  # suppressed (below the threshold) or nobody answered
        return None
    return float(g["mean"])


def series_of(reports: Iterable[Mapping[str, Any]]) -> list[str]:
    """SELF, then every group with a shown mean in some report (in report order)."""
    seen: dict[str, None] = {}
    for rep in reports:
        for ind in rep.get("indicators", []):
            for role, g in (ind.get("roles") or {}).items():
                if g.get("mean") is not None:
                    seen[role] = None
    return [SELF, *seen]


def cluster_view(
    reports: Mapping[int, Mapping[str, Any]],
    *,
    min_schools: int = MIN_SCHOOLS,
    series: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Per indicator and series: each school's shown figure, the cluster median, the count.

    `reports`: school id -> that school's report (from `build_report`). Returns
    {"schools": [ids], "series": [...], "min_schools": k, "indicators": [{key, id,
    dimension, series: {name: {values: {school: v|None}, schools: n, median: m|None,
    position: {school: v - m | None}}}}]}.
    """
    schools = list(reports)
    series = list(series) if series is not None else series_of(reports.values())
    rows_by_key: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    per_school = {
        sid: {ind["key"]: ind for ind in rep.get("indicators", [])} for sid, rep in reports.items()
    }
    for rep in reports.values():
        for ind in rep.get("indicators", []):
            if ind["key"] not in rows_by_key:
                order.append(ind["key"])
                rows_by_key[ind["key"]] = {
                    "key": ind["key"],
                    "id": ind["id"],
                    "dimension": ind.get("dimension"),
                }
    indicators = []
    for key in order:
        row = dict(rows_by_key[key])
        row["series"] = {}
        for name in series:
            values = {
                sid: (shown_figure(per_school[sid][key], name) if key in per_school[sid] else None)
                for sid in schools
            }
            med = median_of(values.values(), min_schools)
            row["series"][name] = {
                "values": values,
                "schools": sum(v is not None for v in values.values()),
                "median": med,
                "position": {
                    sid: (None if v is None or med is None else round(v - med, 2))
                    for sid, v in values.items()
                },
            }
        indicators.append(row)
    return {
        "schools": schools,
        "series": series,
        "min_schools": min_schools,
        "indicators": indicators,
    }


def school_labels(
    school_names: Mapping[int, str],
    readable: Iterable[int],
    viewer_school: int | None,
    *,
    yours: Callable[[str], str] = "{} (yours)".format,
    anonymous: Callable[[str], str] = "School {}".format,
) -> dict[int, str]:
    """Names for the schools the viewer may read (its own marked by `yours`), `anonymous`
    ("School A/B/…") for the others; the dashboard passes its reader's wording.

    The letters follow the order of `school_names`, skipping the named schools.
    """
    readable = set(readable)
    labels: dict[int, str] = {}
    n = 0
    for sid, name in school_names.items():
        if sid in readable:
            labels[sid] = yours(name) if sid == viewer_school else name
        else:
            labels[sid] = anonymous(_letters(n))
            n += 1
    return labels


def _letters(n: int) -> str:
    out = ""
    n += 1
    while n:
        n, r = divmod(n - 1, 26)
        out = chr(65 + r) + out
    return out
