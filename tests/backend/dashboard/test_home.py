"""The school's home (/dashboard/home): after login a coordinator sees where the open cycle
stands (rates against targets per group, what is missing) and one next step."""

from __future__ import annotations

import re

from sqlalchemy import update

from backend.i18n import texts
from backend.web import keys
from conversations.model import load_model
from storage import schools
from storage.models import Cycle, Invite, utcnow
from tests.apptools import running_app, seed_school
from tests.backend.dashboard.support import add_user, login
from tests.backend.reporting.support import learners_answer, mapped_key

EN = texts("en")


def next_step(page: str) -> tuple[str, str]:
    """(the call to action's text, its link)."""
    m = re.search(
        r'<section class="card next-step".*?<a class="button primary big" href="([^"]+)">([^<]+)</a>',
        page,
        re.S,
    )
    assert m, "no next step"
    return m.group(2).strip(), m.group(1)


def group_states(page: str) -> dict[str, str]:
    return dict(
        (name.strip(), state)
        for state, name in re.findall(
            r'<li class="group-rate state-(\w+)">\s*<span class="g-name">([^<]+)</span>', page
        )
    )


async def home(client) -> str:
    resp = await client.get("/dashboard")  # after login: /dashboard -> /dashboard/home
    assert resp.status == 200 and resp.url.path == "/dashboard/home"
    return await resp.text()


async def test_a_school_without_a_cycle_is_asked_to_start_one(settings):
    async with running_app(settings) as client:
        async with client.app[keys.SESSIONMAKER].begin() as s:
            school = await schools.create_school(s, "fresh", "Fresh College")
        await add_user(client, "coord@fresh.example", school.id)
        assert (await login(client, "coord@fresh.example")).status == 303
        page = await home(client)
        assert "Fresh College" in page
        assert next_step(page) == ("Start a cycle", "/dashboard/schools/fresh")
        school_page = await (await client.get("/dashboard/schools/fresh")).text()
        assert 'id="new-cycle"' in school_page
        # A draft cycle: open it.
        async with client.app[keys.SESSIONMAKER].begin() as s:
            draft = await schools.create_cycle(s, school.id, "2031/32", "1.0.0", status="draft")
        assert next_step(await home(client)) == (
            "Open the cycle 2031/32",
            f"/dashboard/cycles/{draft.id}",
        )


async def test_the_home_shows_rates_against_targets_what_is_missing_and_the_next_step(settings):
    async with running_app(settings) as client:
        sm = client.app[keys.SESSIONMAKER]
        seeded = await seed_school(sm, roles=["learner", "parent"])
        async with sm.begin() as s:
            await s.execute(
                update(Cycle)
                .where(Cycle.id == seeded.cycle_id)
                .values(targets={"learner": 10, "parent": 8})
            )
        await add_user(client, "coord@example.org", seeded.school_id)
        assert (await login(client, "coord@example.org")).status == 303
        c = f"/dashboard/cycles/{seeded.cycle_id}"
        learners, parents = EN.role_name("learner"), EN.role_name("parent")
        qid, _key = await mapped_key(sm)

        # 3 learners: fewer than the threshold (5), their results hidden; no parent yet.
        await learners_answer(sm, seeded.cycle_id, qid, [3, 2, 4])
        page = await home(client)
        assert group_states(page) == {learners: "hidden", parents: "none"}
        assert "3 of 10" in page and "0 of 8" in page
        assert f"Results not shown yet for 2 groups: {learners}, {parents}." in page
        assert next_step(page) == (f"Get answers from {learners}, {parents}", c + "/invites")
        total = len(load_model().placed())
        assert f"0 of {total} indicators submitted (drafts: 0)" in page
        assert f"{total} of {total} indicators have no evidence." in page

        # 6 learners: released and shown (the anonymity gate decides, through the report).
        await learners_answer(sm, seeded.cycle_id, qid, [1, 3, 4])
        page = await home(client)
        assert group_states(page)[learners] == "shown"
        assert next_step(page) == (f"Get answers from {parents}", c + "/invites")

        # Without parents' target and with every indicator rated and submitted: evidence next.
        placed = [p.indicator for p in load_model().placed()]
        async with sm.begin() as s:
            await s.execute(
                update(Cycle).where(Cycle.id == seeded.cycle_id).values(targets={"learner": 10})
            )
            for ind in placed:
                given = {"number": 1} if ind.number is not None else {"value": 2}
                await schools.upsert_self_rating(
                    s, seeded.cycle_id, ind.key, status="submitted", **given
                )
        page = await home(client)
        assert parents not in group_states(page)
        assert "Self-assessment submitted." in page
        assert next_step(page) == ("Add evidence", c + "/self-assessment")
        async with sm.begin() as s:
            for ind in placed:
                await schools.add_evidence(s, seeded.cycle_id, ind.key, "link", url="https://e.org")
        page = await home(client)
        assert "Every indicator has evidence." in page
        assert next_step(page) == ("Read the results", c)

        # No working invite: make invites first.
        async with sm.begin() as s:
            await s.execute(
                update(Invite).where(Invite.cycle_id == seeded.cycle_id).values(revoked_at=utcnow())
            )
        assert next_step(await home(client)) == ("Make invites", c + "/invites")


async def test_the_top_bar_leads_home_and_to_the_cycles_and_admins_go_to_their_page(settings):
    async with running_app(settings) as client:
        seeded = await seed_school(client.app[keys.SESSIONMAKER], roles=["learner"])
        await add_user(client, "coord@example.org", seeded.school_id)
        await add_user(client, "admin@example.org", None, role="admin")
        assert (await login(client, "coord@example.org")).status == 303
        page = await home(client)
        nav = re.search(r'<nav aria-label="Main">(.*?)</nav>', page, re.S).group(1)
        assert re.findall(r'href="([^"]+)"', nav) == [
            "/dashboard/home",
            "/dashboard/cycles",
            "/dashboard/certification/mine",
            "/dashboard/clusters",
        ]
        resp = await client.get("/dashboard/cycles", allow_redirects=False)
        assert resp.headers["Location"] == f"/dashboard/schools/{seeded.school_slug}"
        client.session.cookie_jar.clear()
        assert (await login(client, "admin@example.org")).status == 303
        resp = await client.get("/dashboard/home", allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"] == "/dashboard/admin"
