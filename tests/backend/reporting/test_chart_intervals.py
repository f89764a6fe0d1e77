"""The charts show the report's 95% intervals (issue 14, "charts show the intervals"): the
gaps chart draws each gap's interval as an error bar where it is known and marks a gap whose
interval includes 0 (lighter, hatched, "may be noise" in the legend and beside the bar); its
alt text says for each gap whether the interval excludes 0. The distribution chart draws
each group's mean with its interval. Checked in the SVG: the error bars' ends sit at the
interval's ends on the axis (read from the axis' own tick marks)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from backend.i18n import texts
from backend.reporting import charts
from backend.reporting.report import biggest_gaps

SVG = "{http://www.w3.org/2000/svg}"


def _group(mean, ci, n=8, dist=None):
    return {
        "n": n,
        "respondents": n,
        "questions": 1,
        "mean": mean,
        "ci95": ci,
        "ci_note": None,
        "distribution": dist,
        "na": 0,
        "skipped": 0,
        "suppressed": False,
    }


def interval_report() -> dict[str, Any]:
    """Three gaps with known intervals: a clear blind spot, a hidden strength whose interval
    includes 0, and a small gap without an interval; and an indicator whose two groups'
    means have known intervals (one without)."""
    a = {
        "key": "AA-1",
        "id": "AA-1",
        "dimension": "1",
        "criterion": "1.1",
        "theme": "1.1.1",
        "kind": "SCALE",
        "self": 4,
        "self_status": "submitted",
        "roles": {
            "learner": _group(2.0, [1.0, 3.0], 12, {"0": 1, "1": 3, "2": 4, "3": 3, "4": 1}),
            "parent": _group(2.5, None, 6, {"2": 3, "3": 3}),
        },
        "gap": {"learner": -2.0, "parent": -1.5},
        "flag": {"learner": "blind_spot", "parent": "blind_spot"},
        "gap_ci95": {"learner": [-3.0, -1.0], "parent": None},
        "gap_clear": {"learner": True, "parent": None},
    }
    b = {
        **a,
        "key": "BB-2",
        "id": "BB-2",
        "self": 1,
        "roles": {"teacher": _group(2.5, [0.7, 4.0], 5, {"1": 2, "3": 1, "4": 2})},
        "gap": {"teacher": 1.5},
        "flag": {"teacher": "hidden_strength"},
        "gap_ci95": {"teacher": [-0.3, 3.0]},
        "gap_clear": {"teacher": False},
    }
    return {
        "school": {"slug": "s", "name": "Interval College"},
        "cycle": {"id": 1, "name": "2026", "status": "open", "model_version": "none"},
        "model_version": "none",  # no model: ids without statements
        "thresholds": {"anonymity": 5, "free_text": 10},
        "roles": {r: {} for r in ("learner", "parent", "teacher")},
        "indicators": [a, b],
    }


def _root(svg: bytes) -> ET.Element:
    return ET.fromstring(svg)  # noqa: S314 - our own output, not untrusted input


def _by_id(root: ET.Element, gid: str) -> ET.Element | None:
    return next((el for el in root.iter() if el.get("id") == gid), None)


def _x_of_ticks(root: ET.Element, labels: list[float], axes: str = "axes_1") -> dict[float, float]:
    """Data value -> SVG x of the axis' tick marks (its xtick_N groups, in label order)."""
    ax = _by_id(root, axes)
    ticks = [el for el in ax.iter() if (el.get("id") or "").startswith("xtick_")]
    assert len(ticks) == len(labels)
    return {
        value: float(next(el for el in tick.iter(SVG + "use")).get("x"))
        for value, tick in zip(labels, ticks, strict=True)
    }


def _segments(el: ET.Element) -> list[tuple[float, float, float, float]]:
    out = []
    for path in el.iter(SVG + "path"):
        nums = [float(v) for v in re.findall(r"-?[\d.]+", path.get("d"))]
        out.append(tuple(nums[:4]))
    return out


def _data_x(xs: dict[float, float], svg_x: float) -> float:
    (v0, x0), (v1, x1) = sorted(xs.items())[:2]
    return v0 + (svg_x - x0) * (v1 - v0) / (x1 - x0)


def test_gaps_chart_draws_each_known_interval_as_an_error_bar():
    report = interval_report()
    gaps = biggest_gaps(report)
    assert [(g["id"], g["role"]) for g in gaps] == [
        ("AA-1", "learner"),
        ("AA-1", "parent"),
        ("BB-2", "teacher"),
    ]
    root = _root(charts.gaps_chart_svg(report))
    xs = _x_of_ticks(root, [float(v) for v in range(-4, 5)])
    for row, (low, high) in ((0, (-3.0, -1.0)), (2, (-0.3, 3.0))):
        bar = _by_id(root, f"gap-ci-{row}")
        assert bar is not None, row
        (x1, y1, x2, y2) = _segments(bar)[0]
        assert y1 == pytest.approx(y2)  # horizontal
        ends = sorted([_data_x(xs, x1), _data_x(xs, x2)])
        assert ends == pytest.approx([low, high], abs=0.02)
    assert _by_id(root, "gap-ci-1") is None  # the parents' gap has no interval: none drawn


def test_a_gap_whose_interval_includes_zero_is_marked():
    report = interval_report()
    svg = charts.gaps_chart_svg(report)
    root = _root(svg)
    assert _by_id(root, "gap-0-clear") is not None
    assert _by_id(root, "gap-1-unknown") is not None
    noisy = _by_id(root, "gap-2-noise")
    assert noisy is not None
    style = " ".join(p.get("style", "") for p in noisy.iter(SVG + "path"))
    assert "url(#h" in style  # hatched
    assert "fill-opacity: 0.35" in style  # lighter
    clear_style = " ".join(p.get("style", "") for p in _by_id(root, "gap-0-clear").iter())
    assert "url(#h" not in clear_style and "fill-opacity" not in clear_style
    words = " ".join("".join(t.itertext()) for t in root.iter(SVG + "text"))
    words = " ".join(words.split())
    assert "HIDDEN STRENGTH MAY BE NOISE" in words  # beside the bar
    assert "95% interval: -0.3 to +3.0" in words
    assert "light, hatched: the interval includes 0, may be noise" in words  # the legend
    assert "black line: the gap's interval (95%)" in words
    # Without a gap whose interval includes 0 the legend does not offer the mark.
    clear = interval_report()
    clear["indicators"] = clear["indicators"][:1]
    words = " ".join(
        "".join(t.itertext()) for t in _root(charts.gaps_chart_svg(clear)).iter(SVG + "text")
    )
    assert "may be noise" not in " ".join(words.split())


def test_the_gaps_alt_text_says_whether_each_interval_excludes_zero():
    report = interval_report()
    alt = charts.gaps_alt(report)
    assert alt == charts.gaps_chart(report).alt
    assert (
        "AA-1 Learners -2.00 (blind spot; 95% interval: -3.0 to -1.0, clear: the interval"
        " excludes 0)"
    ) in alt
    assert "AA-1 Parents -1.50 (blind spot; no interval (too few answers))" in alt
    assert (
        "BB-2 Teachers +1.50 (hidden strength; 95% interval: -0.3 to +3.0, may be noise: the"
        " interval includes 0)"
    ) in alt
    uk = charts.gaps_alt(report, tx=texts("uk"))
    assert "95% інтервал: від -0,3 до +3,0, може бути випадковим: інтервал містить 0" in uk
    hy = charts.gaps_alt(report, tx=texts("hy"))
    assert "95% միջակայք" in hy and "կարող է պատահական լինել" in hy


@pytest.mark.parametrize("lang", ["en", "hy", "uk"])
def test_the_gaps_chart_in_every_language_draws_the_marks(lang):
    report = interval_report()
    result = charts.gaps_chart(report, fmt="png", dpi=50, tx=texts(lang))
    assert result.data.startswith(b"\x89PNG")
    root = _root(charts.gaps_chart_svg(report, tx=texts(lang)))
    assert _by_id(root, "gap-2-noise") is not None and _by_id(root, "gap-ci-2") is not None


def test_the_distribution_chart_draws_each_mean_with_its_interval():
    report = interval_report()
    result = charts.distribution_chart(report, "AA-1")
    root = _root(result.data)
    xs = _x_of_ticks(root, [float(v) for v in range(5)], axes="axes_2")  # the means' panel
    bar = _by_id(root, "mean-ci-learner")
    assert bar is not None
    (x1, _y1, x2, _y2) = _segments(bar)[0]
    assert sorted([_data_x(xs, x1), _data_x(xs, x2)]) == pytest.approx([1.0, 3.0], abs=0.02)
    assert _by_id(root, "mean-learner") is not None and _by_id(root, "mean-parent") is not None
    assert _by_id(root, "mean-ci-parent") is None  # no interval known: the point alone
    words = " ".join(" ".join("".join(t.itertext()) for t in root.iter(SVG + "text")).split())
    assert "1.0–3.0" in words and "Mean (0–4) and its interval (95%)" in words
    assert "the group's mean and its interval (95%)" in words
    assert "dashed: the school's own rating" in words
    assert "mean 2.00, 95% interval: 1.0 to 3.0" in result.alt
    assert "mean 2.50, no interval (too few answers)" in result.alt
