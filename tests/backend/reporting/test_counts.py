"""Figures that add up: every figure says what it counts, people apart from answers.

VL-1 is evidenced by two learner statements (l01, l02): a learner who answers both gives two
answers. The report, the indicator page, the charts and the exports say "8 respondents,
14 answers to 2 questions" and never print one count for the other; the heatmap's Self
column holds 0-4 ratings only (a count indicator's number is not a rating).
"""

from __future__ import annotations

import re

from backend.reporting import charts
from backend.reporting.aggregate import GroupStats, RawAggregates
from backend.reporting.anonymity import Thresholds, enforce
from backend.reporting.exports.csv_export import report_csv
from backend.reporting.releases import release_cycle
from backend.reporting.report import biggest_gaps, build_report
from backend.web import keys
from conversations.banks import load_banks
from conversations.model import load_model
from storage import responses, schools
from tests.apptools import add_responses, running_app, seed_school
from tests.backend.dashboard.support import add_user, login


async def seeded(sm) -> int:
    """6 learners answer both VL-1 statements (3 and 4), 2 more only the first (1); the
    school rates VL-1 3 and the count FL-3.1 44. -> cycle id"""
    seed = await seed_school(sm, roles=["learner"])
    async with sm.begin() as s:
        await responses.sync_question_map(s, load_banks().values())
        await schools.upsert_self_rating(s, seed.cycle_id, "VL-1", value=3, status="submitted")
        await schools.upsert_self_rating(s, seed.cycle_id, "FL-3.1", number=44, status="submitted")
    tag = load_banks()["learner"].tag
    await add_responses(sm, seed.cycle_id, "learner", tag, 6, {"l01": 3, "l02": 4})
    await add_responses(sm, seed.cycle_id, "learner", tag, 2, {"l01": 1})
    async with sm.begin() as s:
        await release_cycle(s, seed.cycle_id)
    return seed.cycle_id


async def test_the_report_counts_people_and_answers_apart(sessionmaker):
    cycle_id = await seeded(sessionmaker)
    async with sessionmaker() as s:
        report = await build_report(s, cycle_id, load_model())
    vl1 = next(i for i in report["indicators"] if i["key"] == "VL-1")
    g = vl1["roles"]["learner"]
    assert (g["n"], g["respondents"], g["questions"]) == (14, 8, 2)
    assert sum(g["distribution"].values()) == g["n"]  # the bars count answers, as n does
    assert g["mean"] == round((6 * 3 + 6 * 4 + 2 * 1) / 14, 2)
    assert charts.group_counts(g) == "8 respondents, 14 answers to 2 questions"
    # One statement: people and answers are the same kind of count.
    one = {"n": 6, "respondents": 6, "questions": 1}
    assert charts.group_counts(one) == "6 respondents, 6 answers"
    alt = charts.distribution_alt(report, "VL-1")
    assert "8 respondents, 14 answers to 2 questions" in alt and "n=" not in alt
    # The gaps say how many people, and the CSV has both counts.
    gap = next(x for x in biggest_gaps(report, 50) if x["key"] == "VL-1")
    assert gap["respondents"] == 8
    head, *rows = report_csv(report).decode("utf-8-sig").splitlines()
    cols = head.split(",")
    row = next(r.split(",") for r in rows if r.startswith("VL-1,") and ",learner," in r)
    assert (row[cols.index("n")], row[cols.index("respondents")]) == ("14", "8")
    assert row[cols.index("questions")] == "2"


def test_the_gate_counts_people_too():
    """Six answers from three people (two statements each) are three people: hidden."""
    raw = RawAggregates(
        cycle_id=1,
        cycle_thresholds=Thresholds(5, 10),
        groups={
            ("VL-1", "learner"): GroupStats(
                n=6, total=18.0, respondents=3, questions={"l01", "l02"}
            ),
            ("VL-2", "learner"): GroupStats(n=6, total=18.0, respondents=6, questions={"l03"}),
        },
        roles={},
        comments={},
    )
    safe = enforce(raw, Thresholds(5, 10))
    few = safe.group("VL-1", "learner")
    assert few.suppressed and few.mean is None and few.respondents == 3 and few.questions == 2
    assert safe.group("VL-2", "learner").mean == 3.0


async def test_pages_say_what_they_count(settings):
    async with running_app(settings) as client:
        sm = client.app[keys.SESSIONMAKER]
        cycle_id = await seeded(sm)
        async with sm() as s:
            cycle = await schools.get_cycle(s, cycle_id)
        await add_user(client, "coord@example.org", cycle.school_id)
        assert (await login(client, "coord@example.org")).status == 303

        page = await (await client.get(f"/dashboard/cycles/{cycle_id}/indicators/VL-1")).text()
        row = re.search(r"<tr>\s*<td>Learners</td>(.*?)</tr>", page, re.S)
        assert row, "no learners' row"
        cells = [
            " ".join(re.sub(r"<[^>]+>", " ", c).split())
            for c in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
        ]
        assert cells[0] == "8"  # respondents
        assert cells[1] == "14 to 2 questions"  # answers
        assert ">Respondents<" in page and ">Answers<" in page
        assert "8 respondents, 14 answers to 2 questions" in page  # the chart's alt text

        overview = await (await client.get(f"/dashboard/cycles/{cycle_id}")).text()
        selfs = dict(
            re.findall(
                r'key=[^>]*>([\w.@() -]+)</a>(?:<span class="statement"[^>]*>[^<]*</span>)?</th>'
                r'\s*<td class="self[^"]*"[^>]*>([^<]*)',
                overview.replace(f"/dashboard/cycles/{cycle_id}/indicators/", "key="),
            )
        )
        assert selfs["VL-1"] == "3"
        assert selfs["FL-3.1"] == "·"  # 44 is a count, not a rating on 0-4
        assert all(v == "·" or v in "01234" for v in selfs.values()), selfs
        assert (
            "Learners: mean 3.14 of 4 (8 respondents, 14 answers to 2 questions), gap +0.14"
        ) in overview
