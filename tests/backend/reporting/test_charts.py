"""Charts of the triangulation report: SVG/PNG output, titles, alt text, empty reports, anonymity."""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from backend.reporting import charts
from tests.backend.reporting.sample import (  # the same realistic report, built on SQLite
    build_sample_reports,
    suppressed_graduate_keys,
)
from tests.backend.reporting.support import pdf_text

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SVG_NS = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, dict[str, Any]]:
    return build_sample_reports(tmp_path_factory.mktemp("chart_reports"))


def svg_text(data: bytes) -> str:
    """Parse the SVG (it must be well-formed) and return all its text."""
    root = ET.fromstring(data)  # noqa: S314 - our own output, not untrusted input
    assert root.tag == f"{SVG_NS}svg"
    return " ".join(t for el in root.iter() for t in (el.text, el.tail) if t)


def all_charts(now: dict[str, Any], before: dict[str, Any], fmt: str = "svg"):
    key = next(
        i["key"]
        for i in now["indicators"]
        if sum(1 for g in i["roles"].values() if g["distribution"]) >= 2
    )
    yield charts.heatmap_chart(now, fmt=fmt, dpi=60)
    yield charts.heatmap_chart(now, dimension_id="2", fmt=fmt, dpi=60)
    for dim in ("1", "2", "3"):
        yield charts.dimension_chart(now, dim, fmt=fmt, dpi=60)
    yield charts.gaps_chart(now, fmt=fmt, dpi=60)
    yield charts.distribution_chart(now, key, fmt=fmt, dpi=60)
    yield charts.cycle_comparison_chart(now, before, fmt=fmt, dpi=60)


@pytest.fixture(scope="module")
def svgs(reports) -> list[charts.ChartResult]:
    return list(all_charts(reports["now"], reports["before"]))


def test_svgs_parse_and_carry_title_and_alt(svgs):
    for result in svgs:
        assert result.mime == "image/svg+xml"
        text = svg_text(result.data)
        assert result.title in text
        assert "Երևանի պետական քոլեջ" in text  # subtitle: school and cycle
        assert charts.NO_DATA not in text
        assert result.alt.startswith(result.title) and len(result.alt) > len(result.title) + 40


def test_svg_shortcuts_match_the_chart_functions(reports):
    now, before = reports["now"], reports["before"]
    # the same report gives the same bytes
    assert charts.dimension_chart_svg(now, "3") == charts.dimension_chart(now, "3").data
    assert charts.gaps_chart_svg(now, 5) == charts.gaps_chart(now, 5).data
    assert charts.cycle_comparison_svg(now, before) == (
        charts.cycle_comparison_chart(now, before).data
    )
    key = now["indicators"][0]["key"]
    assert charts.distribution_svg(now, key) == charts.distribution_chart(now, key).data


def test_pngs_for_the_pdf(reports):
    for result in all_charts(reports["now"], reports["before"], fmt="png"):
        assert result.mime == "image/png"
        assert result.data.startswith(PNG_SIGNATURE)


def test_empty_report_gives_no_data_figures(reports):
    empty = reports["empty"]
    results = [
        charts.heatmap_chart(empty),
        charts.heatmap_chart(empty, dimension_id="1"),
        charts.dimension_chart(empty, "1"),
        charts.gaps_chart(empty),
        charts.distribution_chart(empty, empty["indicators"][0]["key"]),
        charts.cycle_comparison_chart(empty, empty),
        charts.heatmap_chart({}),  # not even indicators
        charts.gaps_chart({}),
    ]
    for result in results:
        assert charts.NO_DATA in svg_text(result.data)
        assert charts.NO_DATA in result.alt
    png = charts.heatmap_chart(empty, fmt="png")
    assert png.data.startswith(PNG_SIGNATURE)


def test_heatmap_columns_are_shown_groups_and_self(reports, svgs):
    now = reports["now"]
    assert svgs[0].data == charts.heatmap_svg(now)
    text = svg_text(svgs[0].data)
    for label in ("Self", "Learners", "Parents", "Teachers", "Employers"):
        assert label in text
    assert "<5" in text  # suppressed cells are marked
    # Graduates (6 respondents, 4 scored answers released) have no shown figure: no column,
    # only the note, which counts people; the board (2, never released) has no figure at all.
    assert "Graduates (at most 6)" in text and "Board" not in text
    assert charts.shown_roles(now) == ["teacher", "learner", "parent", "employer"]


def test_distribution_shows_only_shown_groups(reports):
    now = reports["now"]
    key = suppressed_graduate_keys(now)[0]
    result = charts.distribution_chart(now, key)
    text = svg_text(result.data)
    assert "Graduates" not in text
    assert "Graduates" in result.alt and "Not shown" in result.alt
    with pytest.raises(KeyError):
        charts.distribution_chart(now, "XX-99")


def test_gaps_chart_labels_flags(reports):
    now = reports["now"]
    text = svg_text(charts.gaps_chart_svg(now))
    assert "BLIND SPOT" in text
    result = charts.gaps_chart(now, limit=3)
    assert result.title.startswith("The 3 biggest gaps")


def test_no_suppressed_mean_in_any_chart(svgs):
    for result in svgs:
        assert "1.25" not in svg_text(result.data)
        assert "1.25" not in result.alt


# -- user text is plain text, never mathtext --------------------------------------------

MATH_CYCLE = r"a $\frac$ b $x$"  # invalid mathtext: it broke every chart and the PDF
MATH_BEFORE = r"$\sqrt{2}$ old $"
MATH_SCHOOL = r"School $x^2$ \$5"


def _math_named(reports) -> tuple[dict[str, Any], dict[str, Any]]:
    now, before = copy.deepcopy(reports["now"]), copy.deepcopy(reports["before"])
    now["cycle"]["name"], before["cycle"]["name"] = MATH_CYCLE, MATH_BEFORE
    now["school"]["name"] = before["school"]["name"] = MATH_SCHOOL
    return now, before


def test_dollar_signs_in_names_are_drawn_as_they_are(reports):
    now, before = _math_named(reports)
    results = list(all_charts(now, before))
    for result in results:
        text = svg_text(result.data)
        assert MATH_CYCLE in text and MATH_SCHOOL in text, result.title
    # The comparison chart names the earlier cycle in its legend and panel titles.
    assert MATH_BEFORE in svg_text(results[-1].data)
    for result in all_charts(now, before, fmt="png"):
        assert result.data.startswith(PNG_SIGNATURE)
    empty = copy.deepcopy(reports["empty"])
    empty["cycle"]["name"] = MATH_CYCLE
    assert MATH_CYCLE in svg_text(charts.heatmap_chart(empty).data)


def test_the_pdf_of_a_cycle_named_in_mathtext(reports, tmp_path):
    from backend.reporting.exports import report_pdf

    now, before = _math_named(reports)
    data = report_pdf(now, previous=before)
    assert data.startswith(b"%PDF")
    text = pdf_text(data, tmp_path)
    assert r"\frac" in text and "$x$" in text


def test_control_characters_in_names_leave_the_svg_well_formed(reports):
    """XML 1.0 cannot hold most control characters: a cycle named with one made every SVG
    chart of it malformed (the browser shows no image)."""
    now, before = copy.deepcopy(reports["now"]), copy.deepcopy(reports["before"])
    now["cycle"]["name"] = "Cycle\x01 one\x1b[31m\x0b"
    before["cycle"]["name"] = "Earlier\x08 cycle\ufffe"
    results = list(all_charts(now, before))
    for result in results:
        assert "Cycle one[31m" in svg_text(result.data), result.title  # parses, text kept
    assert "Earlier cycle" in svg_text(results[-1].data)
