"""Triangulation analytics against real SQLite and PostgreSQL: aggregation, gate, report."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from backend.reporting import Thresholds, biggest_gaps, enforce
from backend.reporting import build_report as build_released_report
from backend.reporting.aggregate import aggregate_cycle as aggregate_released
from backend.reporting.anonymity import ThresholdTooLow
from backend.reporting.releases import release_cycle
from conversations.model import ExcellenceModel
from storage import schools
from storage.models import (
    Answer,
    Comment,
    Cycle,
    QuestionMap,
    Respondent,
    Response,
)
from tests.backend.reporting.support import small_model

BANK = "learner@1"
_seq = itertools.count(1)
NOW = datetime(2026, 3, 1, tzinfo=UTC)


async def make_cycle(s: AsyncSession, *, threshold: int = 5, free_text: int = 10) -> Cycle:
    n = next(_seq)
    school = await schools.create_school(s, f"school-{n}", f"School {n}")
    # The ORM row itself: a threshold below the floor is a case to test, not to refuse.
    cycle = Cycle(
        school_id=school.id,
        name="2026/27",
        model_version="t1",
        anonymity_threshold=threshold,
        free_text_threshold=free_text,
    )
    s.add(cycle)
    await s.flush()
    return cycle


async def map_question(
    s: AsyncSession, question_id: str, *keys: str, bank: str = BANK, scale: str = "AGM"
) -> None:
    for key in keys:
        s.add(QuestionMap(bank_tag=bank, question_id=question_id, indicator_key=key, scale=scale))
    await s.flush()


async def respond(
    s: AsyncSession,
    cycle: Cycle,
    role: str,
    answers: dict[str, int | str],
    *,
    status: str = "completed",
    language: str = "en",
    bank: str = BANK,
    comment: dict[str, str] | None = None,
) -> Response:
    """One respondent's response; an answer is 0..4, "na" or "skip"."""
    person = Respondent(subject_hash=f"h{next(_seq):062d}")
    s.add(person)
    await s.flush()
    resp = Response(
        respondent_id=person.id,
        cycle_id=cycle.id,
        role=role,
        bank_tag=bank,
        model_version="t1",
        language=language,
        status=status,
        consent_at=NOW,
    )
    s.add(resp)
    await s.flush()
    for qid, v in answers.items():
        if v == "na":
            s.add(Answer(response_id=resp.id, question_id=qid, na=True))
        elif v == "skip":
            s.add(Answer(response_id=resp.id, question_id=qid, skipped=True))
        else:
            s.add(Answer(response_id=resp.id, question_id=qid, value=int(v)))
    for qid, text in (comment or {}).items():
        s.add(Comment(response_id=resp.id, question_id=qid, text=text))
    await s.flush()
    return resp


async def rate(
    s: AsyncSession, cycle: Cycle, key: str, value: int | None = None, **kw: Any
) -> None:
    """The school's own rating (`kw`: number, status; submitted unless said)."""
    await schools.upsert_self_rating(s, cycle.id, key, value, **{"status": "submitted", **kw})


async def q1_cycle(s: AsyncSession, role: str, values: Iterable[int | str], **kw: int) -> Cycle:
    """A new cycle (`make_cycle`'s `kw`) whose question q1 measures FL-1, answered by one
    respondent of `role` for each of `values`."""
    cycle = await make_cycle(s, **kw)
    await map_question(s, "q1", "FL-1")
    for v in values:
        await respond(s, cycle, role, {"q1": v})
    return cycle


async def build_report(s: AsyncSession, cycle_id: int, model: ExcellenceModel, **kw):
    """Release what the rule allows (in the test's transaction), then build the report."""
    await release_cycle(s, cycle_id)
    return await build_released_report(s, cycle_id, model, **kw)


async def aggregate_cycle(s: AsyncSession, cycle_id: int, **kw):
    await release_cycle(s, cycle_id)
    return await aggregate_released(s, cycle_id, **kw)


# -- tests ---------------------------------------------------------------


MODEL = small_model()


def ind(report: dict, key: str) -> dict:
    return next(i for i in report["indicators"] if i["key"] == key)


async def test_hand_computed_mean_distribution_gap(sessionmaker):
    async with sessionmaker.begin() as s:
        cycle = await q1_cycle(s, "learner", (4, 4, 3, 2, 1))
        await respond(s, cycle, "learner", {"q1": "na"})
        await respond(s, cycle, "learner", {"q1": "skip"})
        await rate(s, cycle, "FL-1", 4)
        report = await build_report(s, cycle.id, MODEL)

    fl1 = ind(report, "FL-1")
    learner = fl1["roles"]["learner"]
    assert learner["n"] == 5
    assert learner["mean"] == 2.8
    assert learner["distribution"] == {"0": 0, "1": 1, "2": 1, "3": 1, "4": 2}
    assert learner["na"] == 1  # counted apart, not in the mean
    assert learner["skipped"] == 1
    assert fl1["self"] == 4
    assert fl1["self_status"] == "submitted"
    assert fl1["gap"]["learner"] == -1.2
    assert fl1["flag"]["learner"] is None
    roles = report["roles"]["learner"]
    assert (roles["started"], roles["completed"], roles["shared"], roles["dashboard"]) == (
        7,
        7,
        0,
        0,
    )
    assert roles["released_at"] is not None
    json.dumps(report)  # the report is plain JSON


@pytest.mark.parametrize(
    ("values", "self_value", "gap", "flag"),
    [
        ((4, 3, 3, 2, 1), 4, -1.4, "blind_spot"),
        ((4, 3, 3, 2, 1), 1, 1.6, "hidden_strength"),
        ((4, 3, 3, 2, 1), 2, 0.6, None),
    ],
)
async def test_flags_in_report(sessionmaker, values, self_value, gap, flag):
    async with sessionmaker.begin() as s:
        cycle = await q1_cycle(s, "parent", values)
        await rate(s, cycle, "FL-1", self_value)
        report = await build_report(s, cycle.id, MODEL)
    fl1 = ind(report, "FL-1")
    assert fl1["roles"]["parent"]["mean"] == 2.6
    assert fl1["gap"]["parent"] == gap
    assert fl1["flag"]["parent"] == flag


@pytest.mark.parametrize(("count", "shown"), [(4, False), (5, True)])
async def test_suppression_at_threshold_five(sessionmaker, count, shown):
    async with sessionmaker.begin() as s:
        cycle = await q1_cycle(s, "employer", [3] * count, threshold=5)
        await respond(s, cycle, "employer", {"q1": "na"})
        await rate(s, cycle, "FL-1", 1)
        report = await build_report(s, cycle.id, MODEL)
    group = ind(report, "FL-1")["roles"]["employer"]
    assert group["n"] == count  # n is shown either way
    if shown:
        assert group["mean"] == 3.0
        assert group["distribution"]["3"] == 5
        assert group["na"] == 1
        assert ind(report, "FL-1")["flag"]["employer"] == "hidden_strength"
    else:
        assert group["mean"] is None
        assert group["distribution"] is None
        assert group["na"] is None
        assert group["suppressed"] is True
        assert ind(report, "FL-1")["gap"]["employer"] is None
        assert ind(report, "FL-1")["flag"]["employer"] is None
    assert report["roles"]["employer"]["started"] == count + 1  # counts are always shown


async def test_threshold_three_allowed_two_refused(sessionmaker):
    assert Thresholds(3, 3).anonymity == 3
    with pytest.raises(ThresholdTooLow):
        Thresholds(2, 10)
    with pytest.raises(ThresholdTooLow):
        Thresholds(5, 2)
    async with sessionmaker.begin() as s:
        low = await q1_cycle(s, "learner", (1, 2, 3), threshold=3, free_text=3)
        report = await build_report(s, low.id, MODEL)
        assert ind(report, "FL-1")["roles"]["learner"]["mean"] == 2.0

        bad = await make_cycle(s, threshold=2)
        with pytest.raises(ThresholdTooLow):
            await build_report(s, bad.id, MODEL)

        # No reader may loosen a cycle's own thresholds; stricter ones are fine.
        default = await make_cycle(s)
        with pytest.raises(ThresholdTooLow):
            enforce(await aggregate_cycle(s, default.id), Thresholds(3, 3))
        raw = await aggregate_cycle(s, low.id)
        assert enforce(raw, Thresholds(3, 3)).group("FL-1", "learner").mean == 2.0
        assert enforce(raw, Thresholds(4, 10)).group("FL-1", "learner").mean is None


@pytest.mark.parametrize(("writers", "shown"), [(9, False), (10, True)])
async def test_free_text_threshold(sessionmaker, writers, shown):
    async with sessionmaker.begin() as s:
        cycle = await make_cycle(s, free_text=10)
        for i in range(writers):
            await respond(s, cycle, "graduate", {}, comment={"closing": f"text {i}"})
        await respond(s, cycle, "graduate", {}, comment={"closing": "   "})  # blank: no answer
        await respond(s, cycle, "graduate", {})
        report = await build_report(s, cycle.id, MODEL)
    if shown:
        closing = report["comments"]["graduate"]["closing"]
        assert closing["answered"] == writers
        assert closing["texts"] == sorted(f"text {i}" for i in range(writers))
    else:  # never released: not even how many wrote
        assert "graduate" not in report["comments"]


async def test_a_role_filter_shows_only_those_roles(sessionmaker):
    async with sessionmaker.begin() as s:
        cycle = await make_cycle(s)
        await map_question(s, "q1", "FL-1")
        for _ in range(5):
            await respond(s, cycle, "learner", {"q1": 3})
            await respond(s, cycle, "parent", {"q1": 1})
        report = await build_report(s, cycle.id, MODEL, roles=["learner"])
    assert list(ind(report, "FL-1")["roles"]) == ["learner"]
    assert ind(report, "FL-1")["roles"]["learner"]["mean"] == 3.0
    assert list(report["roles"]) == ["learner"]


async def test_only_finished_responses_are_released_until_the_cycle_closes(sessionmaker):
    async with sessionmaker.begin() as s:
        cycle = await make_cycle(s)
        other = await make_cycle(s)
        await map_question(s, "q1", "FL-1")
        for v in (2, 2, 2, 2, 2):
            await respond(s, cycle, "learner", {"q1": v}, status="in_progress")
        await respond(s, cycle, "learner", {"q1": 4}, status="stopped")
        for _ in range(5):
            await respond(s, other, "learner", {"q1": 0})
        raw = await aggregate_cycle(s, cycle.id)
        assert ("FL-1", "learner") not in raw.groups  # nobody finished yet
        assert raw.roles["learner"].started == 6  # everyone who began, stopped ones too
        assert raw.roles["learner"].completed == 0

        cycle.status = "closed"  # then every response counts, as it stands
        await s.flush()
        raw = await aggregate_cycle(s, cycle.id)
    g = raw.groups[("FL-1", "learner")]
    assert (g.n, g.mean) == (6, 2 * 5 / 6 + 4 / 6)


async def test_statement_on_two_indicators_counts_for_both(sessionmaker):
    async with sessionmaker.begin() as s:
        cycle = await make_cycle(s)
        await map_question(s, "q2", "FL-1", "VL-1")
        for v in (0, 1, 2, 3, 4):
            await respond(s, cycle, "learner", {"q2": v})
        raw = await aggregate_cycle(s, cycle.id)
    for key in ("FL-1", "VL-1"):
        g = raw.groups[(key, "learner")]
        assert (g.n, g.mean) == (5, 2.0)
        assert g.distribution == {0: 1, 1: 1, 2: 1, 3: 1, 4: 1}


async def test_a_statement_answered_by_fewer_than_k_is_in_no_figure(sessionmaker):
    """Attack 3 (routes): q3 (answered by one person) and q1 feed FL-1, VL-1 has q1 only:
    FL-1 minus VL-1 would be that person's answer. q3 stays out of every figure."""
    async with sessionmaker.begin() as s:
        cycle = await make_cycle(s)
        await map_question(s, "q1", "FL-1", "VL-1")
        await map_question(s, "q3", "FL-1")
        await respond(s, cycle, "learner", {"q1": 4, "q3": 0})
        for v in (4, 4, 0, 1):
            await respond(s, cycle, "learner", {"q1": v})
        raw = await aggregate_cycle(s, cycle.id)
    fl1, vl1 = raw.groups[("FL-1", "learner")], raw.groups[("VL-1", "learner")]
    assert fl1.distribution == vl1.distribution == {0: 1, 1: 1, 2: 0, 3: 0, 4: 3}
    assert fl1.n == vl1.n == 5


async def test_two_released_statements_on_one_indicator_count_answers(sessionmaker):
    async with sessionmaker.begin() as s:
        cycle = await make_cycle(s)
        await map_question(s, "q1", "FL-1")
        await map_question(s, "q3", "FL-1")
        for v in (4, 4, 0, 1, 2):
            await respond(s, cycle, "learner", {"q1": v, "q3": 4 - v})
        raw = await aggregate_cycle(s, cycle.id)
    g = raw.groups[("FL-1", "learner")]
    assert g.n == 10  # answers: the distribution, n and the mean count the same thing
    assert g.distribution == {0: 3, 1: 1, 2: 2, 3: 1, 4: 3}
    assert g.mean == pytest.approx(sum(k * v for k, v in g.distribution.items()) / 10)


async def test_answers_of_another_bank_version_use_its_own_map(sessionmaker):
    async with sessionmaker.begin() as s:
        cycle = await make_cycle(s)
        await map_question(s, "q1", "FL-1", bank="learner@1")
        await map_question(s, "q1", "FL-2", bank="learner@2")
        for v in (1, 1, 1, 1, 1):
            await respond(s, cycle, "learner", {"q1": v}, bank="learner@2")
        raw = await aggregate_cycle(s, cycle.id)
    assert ("FL-1", "learner") not in raw.groups
    assert raw.groups[("FL-2", "learner")].n == 5


async def test_report_lists_every_indicator_with_nulls(sessionmaker):
    async with sessionmaker.begin() as s:
        cycle = await q1_cycle(s, "learner", (3, 3, 3, 3, 3))
        await rate(s, cycle, "FL-3.1", number=12.0, status="draft")
        await rate(s, cycle, "FL-2", 2, status="draft")
        report = await build_report(s, cycle.id, MODEL)

    assert [i["key"] for i in report["indicators"]] == [p.indicator.key for p in MODEL.placed()]
    assert report["model_version"] == "t1"
    assert report["thresholds"] == {"anonymity": 5, "free_text": 10}
    assert len(report["roles"]) == 15

    cc = ind(report, "CC-1@2.1.1")
    assert (cc["id"], cc["dimension"], cc["criterion"], cc["theme"]) == (
        "CC-1",
        "2",
        "2.1",
        "2.1.1",
    )
    assert cc["self"] is None and cc["self_status"] is None
    assert cc["roles"]["learner"] == {
        "n": 0,
        "respondents": 0,
        "questions": 0,
        "mean": None,
        "distribution": None,
        "na": None,
        "skipped": None,
        "suppressed": False,
        "ci95": None,
        "ci_note": None,
    }
    assert set(cc["gap"].values()) == {None}
    assert set(cc["gap_ci95"].values()) == {None} and set(cc["gap_clear"].values()) == {None}
    assert cc["agreement"] == {"groups": 0, "range": None, "sd": None, "label": None}

    visits = ind(report, "FL-3.1")
    assert visits["kind"] == "NUMBER"
    assert visits["self"] == 12.0
    assert visits["self_status"] == "draft"
    assert set(visits["gap"].values()) == {None}

    fl2 = ind(report, "FL-2")
    assert (fl2["self"], fl2["self_status"]) == (2, "draft")


async def test_report_rollups_and_agreement(sessionmaker):
    async with sessionmaker.begin() as s:
        cycle = await make_cycle(s)
        await map_question(s, "q1", "FL-1")
        await map_question(s, "q4", "VL-1")
        await map_question(s, "q1", "FL-1", bank="parent@1")
        for _ in range(5):
            await respond(s, cycle, "learner", {"q1": 2, "q4": 3})
            await respond(s, cycle, "parent", {"q1": 4}, bank="parent@1")
        for _ in range(2):  # too few: takes no part anywhere
            await respond(s, cycle, "employer", {"q1": 0}, bank="parent@1")
        for key, v in {"FL-1": 4, "FL-2": 2, "FL-3": 3, "VL-1": 1}.items():
            await rate(s, cycle, key, v)
        await rate(s, cycle, "FL-3.1", number=7)
        report = await build_report(s, cycle.id, MODEL)

    fl1 = ind(report, "FL-1")
    assert fl1["agreement"] == {"groups": 2, "range": 2.0, "sd": 1.0, "label": "disagree"}

    r = report["rollups"]
    assert r["themes"]["1.1.1"]["self"] == {"mean": 3.0, "count": 2}
    assert r["themes"]["1.1.1"]["roles"]["learner"] == {"mean": 2.0, "count": 1}
    # 1.2.1 holds VL-1 and includes FL-1
    assert r["themes"]["1.2.1"]["indicators"] == 2
    assert r["themes"]["1.2.1"]["self"] == {"mean": 2.5, "count": 2}
    assert r["themes"]["1.2.1"]["roles"]["learner"] == {"mean": 2.5, "count": 2}
    assert r["themes"]["1.2.1"]["roles"]["parent"] == {"mean": 4.0, "count": 1}
    assert r["themes"]["1.2.1"]["roles"]["employer"] == {"mean": None, "count": 0}
    assert r["criteria"]["1.1"]["self"] == {"mean": 3.0, "count": 3}  # NUMBER FL-3.1 left out
    assert r["criteria"]["1.1"]["indicators"] == 4
    # dimension 1 counts FL-1 once
    assert r["dimensions"]["1"]["indicators"] == 5
    assert r["dimensions"]["1"]["self"] == {"mean": 2.5, "count": 4}
    assert r["dimensions"]["1"]["roles"]["learner"] == {"mean": 2.5, "count": 2}
    assert r["dimensions"]["2"]["self"] == {"mean": None, "count": 0}

    gaps = biggest_gaps(report, limit=3)
    assert [(g["key"], g["role"], g["gap"]) for g in gaps] == [
        ("FL-1", "learner", -2.0),  # ties keep the model's order
        ("VL-1", "learner", 2.0),
        ("FL-1", "parent", 0.0),
    ]
    assert gaps[0]["flag"] == "blind_spot"
    assert gaps[1]["flag"] == "hidden_strength"


def _real_model_present() -> bool:
    ref = resources.files("conversations") / "data" / "model" / "etf-career-guidance-vet.yaml"
    return ref.is_file()


async def test_report_on_the_real_model(sessionmaker):
    from conversations.model import load_model

    assert _real_model_present()
    model = load_model()
    async with sessionmaker.begin() as s:
        cycle = await make_cycle(s)
        await map_question(s, "q1", "FL-1", "VL-14@1.2.3")
        for v in (4, 3, 3, 2, 2):
            await respond(s, cycle, "learner", {"q1": v})
        await rate(s, cycle, "FL-1", 4)
        report = await build_report(s, cycle.id, model)
    keys = [i["key"] for i in report["indicators"]]
    assert len(keys) == len(model.placed()) == 71
    assert len(set(keys)) == 71
    assert ind(report, "FL-1")["roles"]["learner"]["mean"] == 2.8
    assert ind(report, "VL-14@1.2.3")["roles"]["learner"]["n"] == 5
    for i in report["indicators"]:
        if i["kind"] == "NUMBER":
            assert set(i["gap"].values()) == {None}
    assert set(report["rollups"]) == {"themes", "criteria", "dimensions"}
    json.dumps(report)


# -- how sure a figure is (backend/reporting/intervals.py) ----------------------------


async def test_the_report_says_how_sure_each_gap_is(sessionmaker):
    """Two groups both flagged as a blind spot (gap <= -4/3): ten learners who agree give
    a clear gap; five parents who disagree among themselves give one that may be noise."""
    async with sessionmaker.begin() as s:
        cycle = await make_cycle(s)
        cycle.targets = {"learner": 20, "parent": 5}
        await map_question(s, "q1", "FL-1")
        await map_question(s, "q1", "FL-1", bank="parent@1")
        for v in (2, 2, 2, 2, 2, 3, 2, 2, 2, 3):
            await respond(s, cycle, "learner", {"q1": v})
        for v in (0, 4, 4, 0, 4):
            await respond(s, cycle, "parent", {"q1": v}, bank="parent@1")
        await rate(s, cycle, "FL-1", 4)
        report = await build_report(s, cycle.id, MODEL)

    fl1 = ind(report, "FL-1")
    assert fl1["flag"] == dict(fl1["flag"], learner="blind_spot", parent="blind_spot")
    lo, hi = fl1["roles"]["learner"]["ci95"]
    assert lo < 2.2 < hi < 2.6  # mean 2.2
    assert fl1["gap_clear"]["learner"] is True and fl1["gap_ci95"]["learner"][1] < 0
    lo, hi = fl1["roles"]["parent"]["ci95"]
    assert (lo, hi) == (0.0, 4.0)  # mean 2.4, sd 2.19, t(4): wider than the scale
    assert fl1["gap_clear"]["parent"] is False
    assert fl1["gap_ci95"]["parent"] == [-4.0, 0.0]
    assert fl1["gap_clear"]["employer"] is None  # no answers, no interval
    roles = report["roles"]
    assert (roles["learner"]["target"], roles["learner"]["response_rate"]) == (20, 0.5)
    assert (roles["parent"]["target"], roles["parent"]["response_rate"]) == (5, 1.0)
    assert (roles["employer"]["target"], roles["employer"]["response_rate"]) == (None, None)


async def test_a_suppressed_group_has_no_interval(sessionmaker):
    async with sessionmaker.begin() as s:
        cycle = await q1_cycle(s, "learner", (0, 4, 2))
        await rate(s, cycle, "FL-1", 4)
        report = await build_report(s, cycle.id, MODEL)
    learner = ind(report, "FL-1")["roles"]["learner"]
    assert learner["mean"] is None and learner["ci95"] is None
    assert ind(report, "FL-1")["gap_clear"]["learner"] is None
