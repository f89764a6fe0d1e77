"""A certification round on the real app: an agency with a board and three assessors, two
clustered schools and one outside, a round, and the school's submission.

Shared by the certification tests (HTTP and browser)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from conversations.banks import load_banks
from storage import certification as store
from storage import schools
from storage.clusters import add_cluster_member, create_cluster
from tests.apptools import Seeded, add_response, seed_school
from tests.backend.dashboard.support import add_user, login, post_form
from tests.backend.reporting.support import learners_answer, mapped_key

SECRET_REMARK = "hidden learner remark"
SECRET_SELF = "SECRET self comment"


@dataclass
class Round:
    agency_id: int
    other_agency_id: int
    round_id: int
    other_round_id: int
    south: Seeded
    north: Seeded
    west: Seeded
    key: str  # an indicator with the school's rating and a shown learners' mean


async def learners_write(sm, cycle_id: int, n: int) -> None:
    """n learners who write free text (enough to pass the free-text threshold)."""
    bank = load_banks()["learner"]
    text_q = next(q.id for q in bank.questions if str(q.kind) == "text")
    async with sm.begin() as s:
        for i in range(n):
            await add_response(
                s, cycle_id, "learner", bank.tag, comment=(text_q, f"{SECRET_REMARK} {i}")
            )


def round_id_in(location: str) -> int:
    m = re.search(r"/dashboard/rounds/(\d+)", location)
    assert m, location
    return int(m.group(1))


async def logout(client) -> None:
    await post_form(client, "/logout", {})


async def set_up_round(client, sm, *, exclude_cluster: bool = True) -> Round:
    """Admin: agency 'National QA Agency' (board@, a1@, a2@, near@ who works at north) and
    'Other Agency' (other-board@, other-assessor@); south and north in one cluster, west
    outside. Board: a certification round (and one in the other agency)."""
    south = await seed_school(sm, slug="south", name="South College", roles=["learner"])
    north = await seed_school(sm, slug="north", name="North College", roles=["learner"])
    west = await seed_school(sm, slug="west", name="West College", roles=["learner"])
    async with sm.begin() as s:
        cluster = await create_cluster(s, "Riverside")
        await add_cluster_member(s, cluster.id, south.school_id)
        await add_cluster_member(s, cluster.id, north.school_id)
    qid, key = await mapped_key(sm)
    async with sm.begin() as s:
        await schools.upsert_self_rating(s, south.cycle_id, key, value=3, comment=SECRET_SELF)
        await schools.add_evidence(
            s, south.cycle_id, key, kind="link", url="https://example.org/plan", note="Plan"
        )
    await learners_answer(sm, south.cycle_id, qid, [1, 2, 2, 3, 3])
    await learners_write(sm, south.cycle_id, 10)
    await add_user(client, "admin@example.org", None, role="admin")
    await add_user(client, "coord@south.example", south.school_id)
    await add_user(client, "coord@west.example", west.school_id)

    assert (await login(client, "admin@example.org")).status == 303
    admin = "/dashboard/admin/agencies"
    ids = []
    for name in ("National QA Agency", "Other Agency"):
        resp = await post_form(client, admin, {"name": name}, admin)
        assert resp.status == 303
        ids.append(int(resp.headers["Location"].rsplit("/", 1)[1]))
    agency_id, other_id = ids
    members = [
        (agency_id, "board@agency.example", "board", ""),
        (agency_id, "a1@agency.example", "assessor", ""),
        (agency_id, "a2@agency.example", "assessor", "west"),
        (agency_id, "near@agency.example", "assessor", "north"),
        (other_id, "other-board@agency.example", "board", ""),
        (other_id, "other-assessor@agency.example", "assessor", ""),
    ]
    for aid, email, role, home in members:
        page = f"/dashboard/agencies/{aid}"
        resp = await post_form(
            client,
            page + "/members",
            {
                "email": email,
                "password": "correct horse battery",
                "role": role,
                "home_school": home,
            },
            page,
        )
        assert resp.status == 303, email
    await logout(client)

    deadline = (date.today() + timedelta(days=30)).isoformat()
    rounds = []
    for aid, board, name in (
        (agency_id, "board@agency.example", "Certification 2027"),
        (other_id, "other-board@agency.example", "Other certification"),
    ):
        assert (await login(client, board)).status == 303
        page = f"/dashboard/agencies/{aid}"
        data = {"name": name, "kind": "certification", "deadline": deadline}
        if exclude_cluster:
            data["exclude_cluster"] = "1"
        resp = await post_form(client, page + "/rounds", data, page)
        assert resp.status == 303, await resp.text()
        rounds.append(round_id_in(resp.headers["Location"]))
        await logout(client)
    return Round(agency_id, other_id, rounds[0], rounds[1], south, north, west, key)


async def submit(client, rnd: Round, round_id: int | None = None, slug: str = "south") -> int:
    """The school's coordinator (logged in) submits its cycle; the version's number."""
    page = f"/dashboard/schools/{slug}/certification"
    seeded = {"south": rnd.south, "west": rnd.west}[slug]
    resp = await post_form(
        client,
        page + "/submit",
        {"round_id": round_id or rnd.round_id, "cycle_id": seeded.cycle_id},
        page,
    )
    assert resp.status == 303
    return resp.status


async def latest(sm, round_id: int, school_id: int):
    async with sm.begin() as s:
        return await store.list_submissions(s, round_id, school_id)
