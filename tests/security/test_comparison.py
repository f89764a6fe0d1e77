"""Anonymity against comparison: a curious coordinator with a notebook, through the real HTTP
surface (respondents in the web chat, the coordinator in the dashboard and the JSON API).

Each attack here worked before the release rule (README, Privacy):
1. before/after: read the report, watch one known person answer, read it again;
2. padding: answer many times through a shared code around one real respondent;
3. routes: a routed question answered by one person feeds one indicator beside a question
   everybody answers, while another indicator gets the common question alone;
4. the database: a response joined to the invite (code, label) it came through.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import inspect, select

from backend.dashboard import auth
from backend.web import keys
from storage import responses, schools
from storage.models import Base, Response
from tests.apptools import AppClient, db_url_of, make_settings, running_app
from tests.security.bench import CSRF_FIELD, PASSWORD, password_hash
from tests.webtools import T, WebUser, take_survey, web_user

K = 5


@dataclass
class Survey(AppClient):
    cycle_id: int
    email: str
    token: str

    async def report(self) -> dict[str, Any]:
        """What the coordinator's API client reads."""
        resp = await self.client.get(
            f"/api/cycles/{self.cycle_id}/report",
            headers={"Authorization": f"Bearer {self.token}"},
        )
        assert resp.status == 200
        return await resp.json()

    async def invites(self, role: str, count: int, max_uses: int | None = 1) -> list[str]:
        async with self.sm.begin() as s:
            made = await responses.create_invites(
                s, self.cycle_id, role, count=count, max_uses=max_uses, label="Class 3B"
            )
        return [i.code for i in made]


@pytest.fixture
async def survey(db_engine, tmp_path) -> AsyncIterator[Survey]:
    settings = make_settings(
        db_url_of(db_engine),
        data_dir=tmp_path / "data",
        release_refresh_seconds=0,  # releases happen when figures are read: deterministic
        cluster_refresh_seconds=0,
        shared_code_limit=K,
    )
    async with running_app(settings) as client:
        sm = client.app[keys.SESSIONMAKER]
        async with sm.begin() as s:
            school = await schools.create_school(s, "alpha", "Alpha School")
            user = await schools.create_user(s, school.id, "coord@alpha.example", password_hash())
            cycle = await schools.create_cycle(s, school.id, "2026/27", "1.0.0")
        yield Survey(
            client, cycle.id, user.email, auth.api_token(client.app[keys.SECRET_KEY], user)
        )


def parent(value: int) -> Callable[[str, list[str]], str]:
    """A parent of a current learner who answers `value` to the VL-1 statement (pa02)."""
    return lambda qid, choices: (
        "c:current" if qid == "child" else str(value) if qid == "pa02" else choices[0]
    )


def group(report: dict[str, Any], key: str, role: str) -> dict[str, Any]:
    return next(i for i in report["indicators"] if i["key"] == key)["roles"][role]


def figures(report: dict[str, Any]) -> dict[tuple[str, str], Any]:
    """Every figure of a report that says something about answers (not the live counts)."""
    out: dict[tuple[str, str], Any] = {}
    for ind in report["indicators"]:
        for role, g in ind["roles"].items():
            out[(ind["key"], role)] = (g["n"], g["mean"], g["distribution"], g["na"])
    out[("comments", "")] = report["comments"]
    return out


async def answer(survey: Survey, code: str, pick: Callable[[str, list[str]], str]) -> None:
    async with web_user(survey.client) as user:
        await take_survey(user, code, pick)


# -- 1. before and after -------------------------------------------------------------------


async def test_one_known_answer_between_two_reads_changes_no_figure(survey: Survey):
    codes = await survey.invites("parent", 11)
    for code, v in zip(codes[:5], (4, 4, 3, 3, 2), strict=True):
        await answer(survey, code, parent(v))
    before = await survey.report()
    assert group(before, "VL-1", "parent")["n"] == 5  # released: five parents

    # The coordinator sees which single-use code was just used (the invites page) and reads
    # the report again after that one parent answered: nothing about answers moved.
    await answer(survey, codes[5], parent(0))
    after = await survey.report()
    assert after["roles"]["parent"]["completed"] == 6  # the live count may move ...
    assert figures(after) == figures(before)  # ... the figures may not

    # Four more: five answers no release counted, a new release; it differs from the last
    # by five people, the one known among them.
    for code in codes[6:10]:
        await answer(survey, code, parent(1))
    later = await survey.report()
    vl1 = group(later, "VL-1", "parent")
    assert vl1["n"] == 10
    assert vl1["distribution"] == {"0": 1, "1": 4, "2": 1, "3": 2, "4": 2}


async def test_an_erasure_cannot_be_read_off_by_comparison(survey: Survey):
    codes = await survey.invites("parent", 6)
    async with web_user(survey.client) as erasing:
        await take_survey(erasing, codes[0], parent(0))
        for code, v in zip(codes[1:5], (4, 4, 4, 4), strict=True):
            await answer(survey, code, parent(v))
        before = await survey.report()
        assert group(before, "VL-1", "parent")["mean"] == 3.2
        await erasing.tap("delete", name="action")
        await erasing.tap("yes")
        assert T("delete.done") in erasing.text()
    async with survey.sm() as s:
        assert len(list(await s.scalars(select(Response)))) == 4  # the rows are gone now
    # The figures drop the erased answer with the next release, not now.
    assert figures(await survey.report()) == figures(before)


# -- 2. padding through a shared code ------------------------------------------------------


async def _login_in(user: WebUser, email: str) -> None:
    """The coordinator logs in to the dashboard in this (respondent's) browser."""
    html = await user.get("/login")
    m = CSRF_FIELD.search(html)
    assert m
    url = user.client.make_url("/login")
    data = {"csrf": m.group(1), "email": email, "password": PASSWORD}
    async with user.session.post(url, data=data, allow_redirects=False) as r:
        assert r.status == 303


def _forget_respondent(user: WebUser) -> None:
    """A fresh respondent cookie (a private window), the dashboard login kept."""
    jar = user.session.cookie_jar
    kept = [c for c in jar if c.key != "gs_respondent"]
    jar.clear()
    for c in kept:
        jar.update_cookies({c.key: c.value}, user.client.make_url("/"))


async def test_a_coordinator_answering_from_the_dashboard_browser_pads_nothing(
    survey: Survey, fake_ip
):
    (shared,) = await survey.invites("parent", 1, max_uses=None)
    async with web_user(survey.client) as me:
        await _login_in(me, survey.email)
        for _ in range(9):
            _forget_respondent(me)
            await take_survey(me, shared, parent(4))
    # Then one real parent answers, from home.
    async with web_user(survey.client) as real:
        real.headers["X-Test-Ip"] = "198.51.100.7"
        await take_survey(real, shared, parent(0))
    report = await survey.report()
    # The coordinator's nine are counted apart and in no figure: the parent stays alone
    # in the queue, unreleased, instead of being the only unknown among ten.
    assert report["roles"]["parent"]["dashboard"] == 9
    assert report["roles"]["parent"]["shared"] == 1
    assert group(report, "VL-1", "parent")["n"] == 0
    async with survey.sm() as s:
        origins = sorted(await s.scalars(select(Response.origin)))
    assert origins == ["dashboard"] * 9 + ["shared"]


async def test_many_new_respondents_from_one_network_wait(survey: Survey, fake_ip):
    (shared,) = await survey.invites("parent", 1, max_uses=None)
    for _ in range(K):
        async with web_user(survey.client) as pad:
            pad.headers["X-Test-Ip"] = "203.0.113.9"
            await take_survey(pad, shared, parent(4))
    async with web_user(survey.client) as pad:  # the next one from that network waits ...
        pad.headers["X-Test-Ip"] = "203.0.113.9"
        await pad.start(shared)
        assert T("invite.busy") in pad.text()
        assert pad.question_id() is None
    async with web_user(survey.client) as other:  # ... another network does not
        other.headers["X-Test-Ip"] = "192.0.2.44"
        await take_survey(other, shared, parent(1))
    report = await survey.report()
    assert report["roles"]["parent"]["started"] == K + 1  # nothing stored for the one waiting
    assert report["roles"]["parent"]["shared"] == K + 1  # and the report says how they came


# -- 3. routes -----------------------------------------------------------------------------


async def test_a_question_only_one_person_was_routed_to_is_in_no_figure(survey: Survey):
    """Graduates: g14 (only those looking for work) and g15 (everyone) both evidence CC-2;
    FL-9 has g15 alone. CC-2 minus FL-9 would be the one job seeker's answer to g14."""
    codes = await survey.invites("graduate", 5)
    for i, code in enumerate(codes):
        looking = i == 0
        await answer(
            survey,
            code,
            lambda qid, choices, looking=looking: (
                ("c:looking" if looking else "c:working")
                if qid == "now"
                else "0"
                if qid == "g14"
                else "3"
                if qid == "g15"
                else choices[0]
            ),
        )
    report = await survey.report()
    cc2, fl9 = group(report, "CC-2", "graduate"), group(report, "FL-9", "graduate")
    assert fl9["distribution"] == {"0": 0, "1": 0, "2": 0, "3": 5, "4": 0}
    assert cc2["distribution"] == fl9["distribution"]  # g14's one answer is in neither


# -- 4. the database -----------------------------------------------------------------------


async def test_nothing_stored_joins_an_answer_to_its_code(survey: Survey):
    codes = await survey.invites("parent", 5)
    for code, v in zip(codes, (4, 3, 2, 1, 0), strict=True):
        await answer(survey, code, parent(v))
    async with survey.sm() as s:
        used = [i for i in await responses.list_invites(s, survey.cycle_id) if i.uses]
        assert len(used) == 5
        tables = await s.run_sync(lambda sync: inspect(sync.connection()).get_table_names())
        links = []
        for table in tables:
            fks = await s.run_sync(
                lambda sync, t=table: inspect(sync.connection()).get_foreign_keys(t)
            )
            links += [
                (table, fk["constrained_columns"]) for fk in fks if fk["referred_table"] == "invite"
            ]
    assert links == []  # no row of any table points to an invite
    for table in Base.metadata.sorted_tables:  # nor does a column name one
        if "response_id" in table.c or table.name == "response":
            assert not [c.name for c in table.c if re.search(r"invite|code|label", c.name)]
