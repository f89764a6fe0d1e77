"""The charts as a set: readable text, one colour scale, statements beside ids, every value
labelled, legends inside the figure, ids the model numbers twice told apart, and a profile
(radar) per group against the school's own rating. On the demo school's report, in English,
Armenian and Ukrainian."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from backend.demo import DEMO_SLUG, prepare_demo
from backend.i18n import texts
from backend.reporting import charts
from backend.reporting.report import biggest_gaps, build_report
from conversations.model import load_model
from storage import schools
from storage.db import create_engine, make_sessionmaker
from tests.apptools import make_settings

FONT = re.compile(r"font-size:\s*([\d.]+)px")
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory) -> dict[str, Any]:
    import asyncio

    async def build() -> dict[str, Any]:
        db = tmp_path_factory.mktemp("charts") / "demo.db"
        settings = make_settings(f"sqlite+aiosqlite:///{db}")
        await prepare_demo(settings)
        engine = create_engine(settings.database_url)
        try:
            async with make_sessionmaker(engine)() as s:
                school = await schools.get_school_by_slug(s, DEMO_SLUG)
                cycle = await schools.current_cycle(s, school.id)
                return await build_report(s, cycle.id, load_model())
        finally:
            await engine.dispose()

    return asyncio.run(build())


def every_chart(report: dict[str, Any], lang: str) -> dict[str, bytes]:
    tx = texts(lang)
    out = {
        "profile": charts.profile_svg(report, tx=tx),
        "gaps": charts.gaps_chart_svg(report, tx=tx),
        "distribution": charts.distribution_svg(report, "VL-1", tx=tx),
        "heatmap": charts.heatmap_svg(report, tx=tx),
    }
    for d in charts.dimensions_of(report):
        out[f"dimension-{d}"] = charts.dimension_chart_svg(report, d, tx=tx)
    return out


def texts_of(svg: bytes) -> list[str]:
    root = ET.fromstring(svg)  # noqa: S314 - our own output, not untrusted input
    return ["".join(t.itertext()) for t in root.iter(SVG + "text")]


@pytest.mark.parametrize("lang", ["en", "hy", "uk"])
def test_every_text_is_11_units_or_more_and_inside_the_figure(demo_report, lang):
    """At the pages' smallest display (720 px for 720 units) a text is 11 px or more; no
    text is anchored outside the figure (a cut legend or label)."""
    for name, svg in every_chart(demo_report, lang).items():
        body = svg.decode()
        sizes = [float(x) for x in FONT.findall(body)]
        assert sizes and min(sizes) >= 11, (name, min(sizes))
        width, height = (
            float(x) for x in re.search(r'viewBox="0 0 ([\d.]+) ([\d.]+)"', body).groups()
        )
        assert width <= 760 or name == "heatmap", (name, width)  # 10 in: 960 px at 1:1
        root = ET.fromstring(svg)  # noqa: S314 - our own output, not untrusted input
        for t in root.iter(SVG + "text"):
            x, y = float(t.get("x", 0)), float(t.get("y", 0))
            m = re.search(r"translate\(([-\d.]+) ([-\d.]+)\)", t.get("transform", ""))
            if m:
                x, y = x + float(m.group(1)), y + float(m.group(2))
            assert -1 <= x <= width + 1 and -1 <= y <= height + 1, (name, "".join(t.itertext()))


def test_one_colour_scale_for_ratings(demo_report):
    """The heatmap and the distribution use the pages' 0-4 scale (SCALE_STOPS)."""
    svgs = every_chart(demo_report, "en")
    dist = svgs["distribution"].decode().lower()
    for stop in charts.SCALE_STOPS:
        assert stop.lower() in dist, stop
    heat = svgs["heatmap"].decode().lower()
    assert charts.scale_colour(4).lower() in heat and charts.scale_colour(0).lower() in heat
    assert charts.scale_colour(2) == "#ECE8DF" and charts.scale_colour(0.5) == "#EAA868"


def test_statements_beside_ids_and_values_on_every_bar(demo_report):
    svgs = every_chart(demo_report, "en")
    gaps = " ".join(texts_of(svgs["gaps"]))
    for g in biggest_gaps(demo_report, 10):
        words = charts.indicator_text(demo_report, g["key"])
        assert words.split()[0] in gaps, g["key"]
    heat = texts_of(svgs["heatmap"])
    assert any(t.startswith("FL-6  Comprehensively") for t in heat)
    # Every shown mean of a dimension chart is written beside its bar, with whose it is.
    for d in charts.dimensions_of(demo_report):
        data = charts.dimension_data(demo_report, d)
        drawn = texts_of(svgs[f"dimension-{d}"])
        for name, _colour, values in data.series:
            for v in values:
                if v is not None:
                    label = f"{charts.fmt_fixed(v, 1)}  {name}"
                    assert any(t.startswith(label[:20]) for t in drawn), (d, label)


def test_ids_the_model_numbers_twice_are_told_apart(demo_report):
    labels = charts.indicator_labels(load_model())
    assert labels["VL-14"] == "VL-14 (1.2.2)" and labels["VL-14@1.2.3"] == "VL-14 (1.2.3)"
    assert labels["CC-5@2.1.2"] == "CC-5 (2.1.2)" and labels["FL-1"] == "FL-1"
    assert len(set(labels.values())) == len(labels)
    heat = " ".join(texts_of(every_chart(demo_report, "en")["heatmap"]))
    for label in ("VL-14 (1.2.2)", "VL-14 (1.2.3)", "CC-6 (2.1.1)", "CC-6 (2.1.2)"):
        assert label in heat


def test_a_profile_per_group_against_the_schools_own_rating(demo_report):
    data = charts.profile_data(demo_report)
    assert data.criteria == ["1.1", "1.2", "1.3", "1.4", "2.1", "2.2", "3.1"]
    names = [name for _r, name, _c, _v in data.groups]
    assert "Learners" in names and "Teachers" in names
    assert not any(r in ("union", "local_government") for r, *_ in data.groups)  # too few
    drawn = texts_of(charts.profile_svg(demo_report))
    for name in names:
        assert name in drawn
    learners = next(v for r, _n, _c, v in data.groups if r == "learner")
    for v in learners:
        if v is not None:
            assert charts.fmt_fixed(v, 1) in drawn  # each vertex is labelled
    assert "Learners:" in data.alt and "self" in data.alt
