"""Charts of the triangulation report: `reading` turns the (already safe) report into each
chart's data and words, `draw` draws them with matplotlib (SVG or PNG).

Every figure comes from the report that `backend.reporting.build_report` made through the
anonymity gate: a suppressed group has no mean in the report, so no chart can draw one.

`reading` imports no matplotlib (the exports and the pages' alt texts use it); `draw` does,
so it is loaded with the first chart drawn: `charts.heatmap_svg(...)` finds the name in
`reading`, or loads `draw` and finds it there (a module `__getattr__`, PEP 562).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from backend.reporting.charts import reading


def __getattr__(name: str) -> Any:
    if hasattr(reading, name):
        return getattr(reading, name)
    draw = import_module("backend.reporting.charts.draw")  # matplotlib: the first chart drawn
    try:
        return getattr(draw, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


__all__ = [
    "BLIND_COLOUR",
    "CI_COLOUR",
    "FLAG_MARGIN",
    "HEAT_CMAP",
    "HIDDEN_COLOUR",
    "MAY_BE_NOISE",
    "NEUTRAL_COLOUR",
    "NO_DATA",
    "SCALE_MAX",
    "SCALE_STOPS",
    "SELF_COLOUR",
    "SELF_LABEL",
    "SERIES_COLOURS",
    "SUPPRESSED_COLOUR",
    "ChartResult",
    "DimensionData",
    "answered_roles",
    "ci_text",
    "comparison_rows",
    "cycle_comparison_chart",
    "cycle_comparison_svg",
    "dimension_chart",
    "dimension_chart_svg",
    "dimension_data",
    "dimensions_of",
    "distribution_alt",
    "distribution_chart",
    "distribution_svg",
    "fmt_fixed",
    "fmt_num",
    "fmt_signed",
    "fmt_value",
    "gap_certainty",
    "gaps_alt",
    "gaps_chart",
    "gaps_chart_svg",
    "group_counts",
    "has_data",
    "heatmap_chart",
    "heatmap_svg",
    "hidden_roles",
    "indicator_label",
    "indicator_labels",
    "indicator_text",
    "is_scale",
    "model_for",
    "profile_chart",
    "profile_data",
    "profile_svg",
    "role_colours",
    "role_label",
    "scale_colour",
    "self_score",
    "series_name",
    "shown_roles",
    "subtitle",
    "unit_titles",
]
