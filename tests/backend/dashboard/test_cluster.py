"""Peer review clusters: the migration, the cluster median (pure), and peer access on the app."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from alembic.script import ScriptDirectory

from backend.reporting.cluster import cluster_view, median_of, school_labels
from backend.web import keys
from conversations.banks import load_banks
from conversations.model import load_model
from storage import migrate, responses, schools
from storage.clusters import list_feedback
from tests.apptools import add_response, running_app
from tests.backend.dashboard.support import (
    api_headers,
    cluster_row,
    csrf_of,
    four_schools,
    login,
    other_than,
    post_form,
)
from tests.backend.reporting.support import learners_answer, mapped_key
from tests.storage.support import migration_up_and_down

NEW_TABLES = {"cluster", "cluster_member", "peer_feedback", "action_item"}


# --- the migration -------------------------------------------------------------------------


def test_migrations_have_a_single_head():
    heads = ScriptDirectory.from_config(migrate.alembic_config()).get_heads()
    assert len(heads) == 1, heads


async def test_cluster_migration_up_and_down(empty_db_url: str):
    await migration_up_and_down(empty_db_url, "clusters_actions", NEW_TABLES)


# --- the cluster median (pure) -----------------------------------------------------------


def _ind(key: str, self_: int | None, kind: str = "EXTENT", **means) -> dict:
    return {
        "key": key,
        "id": key,
        "kind": kind,
        "dimension": "1",
        "self": self_,
        "roles": {
            r: {"n": n, "mean": m, "suppressed": m is None and n > 0} for r, (n, m) in means.items()
        },
    }


def _rep(*inds: dict) -> dict:
    return {"indicators": list(inds)}


def test_median_needs_three_schools():
    assert median_of([1.0, 3.0, 2.0]) == 2.0
    assert median_of([1.0, 4.0, 2.0, 3.0]) == 2.5
    assert median_of([1.0, 3.0]) is None
    assert median_of([1.0, None, 3.0, None]) is None
    assert median_of([1.0, 3.0], min_count=2) == 2.0


def test_cluster_view_by_hand():
    reports = {
        1: _rep(
            _ind("A", 4, learner=(6, 3.2), parent=(5, 2.0)),
            _ind("B", 2, learner=(6, 1.5), parent=(0, None)),
            _ind("N", 120, kind="NUMBER", learner=(0, None), parent=(0, None)),
        ),
        2: _rep(
            _ind("A", 2, learner=(9, 2.4), parent=(3, None)),  # parents suppressed (n=3)
            _ind("B", None, learner=(5, 2.5), parent=(0, None)),
            _ind("N", 80, kind="NUMBER", learner=(0, None), parent=(0, None)),
        ),
        3: _rep(
            _ind("A", 3, learner=(7, 2.8), parent=(8, 3.0)),
            _ind("B", 3, learner=(2, None), parent=(0, None)),  # learners suppressed
            _ind("N", 95, kind="NUMBER", learner=(0, None), parent=(0, None)),
        ),
    }
    view = cluster_view(reports)
    assert view["schools"] == [1, 2, 3]
    assert view["series"] == ["self", "learner", "parent"]
    rows = {r["key"]: r["series"] for r in view["indicators"]}
    # A: three schools rated themselves 4, 2, 3 -> median 3; learners 3.2, 2.4, 2.8 -> 2.8.
    assert rows["A"]["self"]["median"] == 3.0 and rows["A"]["self"]["schools"] == 3
    assert rows["A"]["self"]["position"] == {1: 1.0, 2: -1.0, 3: 0.0}
    assert rows["A"]["learner"]["median"] == pytest.approx(2.8)
    assert rows["A"]["learner"]["position"][1] == pytest.approx(0.4)
    # Parents: school 2's group is suppressed, so only 2 schools -> no median.
    assert rows["A"]["parent"]["values"] == {1: 2.0, 2: None, 3: 3.0}
    assert rows["A"]["parent"]["schools"] == 2 and rows["A"]["parent"]["median"] is None
    assert rows["A"]["parent"]["position"] == {1: None, 2: None, 3: None}
    # B: school 2 has no self rating, school 3's learners are suppressed: 2 of 3 each.
    assert rows["B"]["self"]["values"] == {1: 2.0, 2: None, 3: 3.0}
    assert rows["B"]["self"]["median"] is None
    assert rows["B"]["learner"]["values"] == {1: 1.5, 2: 2.5, 3: None}
    assert rows["B"]["learner"]["median"] is None
    # Counts are not on the rating scale: no self figure, no median.
    assert rows["N"]["self"]["schools"] == 0 and rows["N"]["self"]["median"] is None
    # With a fourth school on B, three shown figures make a median.
    reports[4] = _rep(_ind("B", 1, learner=(5, 3.5), parent=(0, None)))
    rows = {r["key"]: r["series"] for r in cluster_view(reports)["indicators"]}
    assert rows["B"]["self"]["median"] == 2.0  # 2, 3, 1
    assert rows["B"]["learner"]["median"] == 2.5  # 1.5, 2.5, 3.5


def test_school_labels_anonymise_unreadable_schools():
    names = {10: "Alpha", 11: "Beta", 12: "Gamma", 13: "Delta"}
    assert school_labels(names, readable={11}, viewer_school=11) == {
        10: "School A",
        11: "Beta (yours)",
        12: "School B",
        13: "School C",
    }
    assert school_labels(names, readable=names, viewer_school=None) == names


# --- peer access on the app ----------------------------------------------------------------


async def test_peer_reads_cluster_schools_without_raw_answers_or_comments(settings):
    async with running_app(settings) as client:
        sm = client.app[keys.SESSIONMAKER]
        seeded, _ = await four_schools(client)
        south, west = seeded["south"], seeded["west"]
        qid, key = await mapped_key(sm)
        async with sm.begin() as s:
            await schools.upsert_self_rating(
                s, south.cycle_id, key, value=3, comment="SECRET self comment"
            )
            await schools.add_evidence(
                s, south.cycle_id, key, kind="link", url="https://example.org/plan", note="Plan"
            )
        await learners_answer(sm, south.cycle_id, qid, [1, 2, 2, 3, 3])
        # Free text from 10 learners: shown to the school itself (at the threshold).
        await add_more_learners_with_comments(sm, south.cycle_id, 10)

        assert (await login(client, "peer@north.example")).status == 303
        c = f"/dashboard/cycles/{south.cycle_id}"
        # Reads: overview, self-assessment, drill-down, evidence, exports, charts, compare.
        paths = (
            c,
            c + "/self-assessment",
            c + f"/indicators/{key}",
            c + "/actions",
            c + "/compare",
            c + "/charts/heatmap.svg",
            c + "/export.csv",
            c + "/export.pdf",
        )
        assert await other_than(client, paths, 200) == {}
        # Not the invites: a code would let the reviewer answer as the school's respondent.
        paths = (c + "/invites", c + "/invites/print")
        assert await other_than(client, paths, 404) == {}
        async with sm.begin() as s:
            (invite,) = await responses.list_invites(s, south.cycle_id)
        assert (await client.get(f"{c}/invites/{invite.id}/qr.png")).status == 404
        assert invite.code not in await (await client.get(c)).text()
        selfpage = await (await client.get(c + "/self-assessment")).text()
        drill = await (await client.get(c + f"/indicators/{key}")).text()
        assert "SECRET self comment" not in selfpage + drill
        assert "https://example.org/plan" in drill and "Leave feedback" in drill
        # The JSON export and the API: no respondents' free text, no self comments.
        data = await (await client.get(c + "/export.json")).json()
        assert data["comments"] == {} and "hidden learner remark" not in json.dumps(data)
        headers = await api_headers(client, "peer@north.example")
        api_report = await (
            await client.get(f"/api/cycles/{south.cycle_id}/report", headers=headers)
        ).json()
        assert api_report["comments"] == {}
        ratings = await (
            await client.get(f"/api/cycles/{south.cycle_id}/self-ratings", headers=headers)
        ).json()
        assert [r["comment"] for r in ratings["ratings"]] == [None]
        # Writes are refused.
        token = await csrf_of(client, c)
        theme = load_model().index()[key].theme_id
        for path, data in (
            (c + "/status", {"status": "closed"}),
            (c + "/self-assessment", {"theme": theme, f"v:{key}": "1"}),
            (c + "/self-assessment/submit", {}),
            (c + "/invites", {"role": "learner"}),
            (c + "/actions", {"indicator_key": key, "title": "x"}),
        ):
            resp = await client.post(path, data={"csrf": token, **data}, allow_redirects=False)
            assert resp.status == 403, path
        resp = await client.post(
            f"/api/cycles/{south.cycle_id}/self-ratings",
            json={"ratings": [{"key": key, "value": 1}]},
            headers=headers,
        )
        assert resp.status == 403
        # Feedback per indicator.
        resp = await client.post(
            c + f"/indicators/{key}/feedback",
            data={"csrf": token, "text": "Strong <plan>; add employer evidence"},
            allow_redirects=False,
        )
        assert resp.status == 303
        assert resp.headers["Location"].endswith(f"/indicators/{key}#feedback")
        # A school outside the cluster is 404, pages, API and feedback alike.
        w = f"/dashboard/cycles/{west.cycle_id}"
        paths = (w, w + "/self-assessment", w + f"/indicators/{key}", w + "/export.json")
        assert await other_than(client, paths, 404) == {}
        assert (
            await client.get(f"/api/cycles/{west.cycle_id}/report", headers=headers)
        ).status == 404
        resp = await client.post(
            w + f"/indicators/{key}/feedback", data={"csrf": token, "text": "x"}
        )
        assert resp.status == 404
        # Its own school: no feedback form (peers review others).
        n = f"/dashboard/cycles/{seeded['north'].cycle_id}"
        assert "Leave feedback" not in await (await client.get(n + f"/indicators/{key}")).text()
        resp = await client.post(
            n + f"/indicators/{key}/feedback", data={"csrf": token, "text": "x"}
        )
        assert resp.status == 403
        # The clusters page lists the schools it reviews.
        page = await (await client.get("/dashboard/clusters")).text()
        assert "South College" in page and "East College" in page and "West College" not in page

        # South's coordinator sees the feedback on its drill-down, with the comment.
        await post_form(client, "/logout", {})
        assert (await login(client, "coord@south.example")).status == 303
        drill = await (await client.get(c + f"/indicators/{key}")).text()
        assert "Strong &lt;plan&gt;; add employer evidence" in drill
        assert "peer@north.example" in drill and "SECRET self comment" in drill
        assert "Leave feedback" not in drill
        resp = await post_form(client, c + f"/indicators/{key}/feedback", {"text": "self"}, c)
        assert resp.status == 403
        async with sm.begin() as s:
            assert len(await list_feedback(s, south.cycle_id, key)) == 1
        # The school itself still gets its free text (10 learners at the threshold of 10).
        data = await (await client.get(c + "/export.json")).json()
        assert "hidden learner remark" in json.dumps(data)


async def add_more_learners_with_comments(sm, cycle_id: int, n: int) -> None:
    tag = load_banks()["learner"].tag
    bank = load_banks()["learner"]
    text_q = next(q.id for q in bank.questions if str(q.kind) == "text")
    async with sm.begin() as s:
        for i in range(n):
            await add_response(
                s, cycle_id, "learner", tag, comment=(text_q, f"hidden learner remark {i}")
            )


def row_reader(key: str) -> Callable[[str], list[str]]:
    """The cells of `key`'s indicator row on a cluster page."""
    ind_id = load_model().index()[key].indicator.id
    return lambda page: cluster_row(page, ind_id)


async def rated_cluster(client):
    """`four_schools` whose members rate one mapped indicator: north 4, south 2, east 3
    (median 3). -> (seeded, cluster, question id, indicator key)"""
    sm = client.app[keys.SESSIONMAKER]
    seeded, cluster = await four_schools(client)
    qid, key = await mapped_key(sm)
    for slug, value in (("north", 4), ("south", 2), ("east", 3)):
        async with sm.begin() as s:
            await schools.upsert_self_rating(s, seeded[slug].cycle_id, key, value=value)
    return seeded, cluster, qid, key


async def test_cluster_view_on_the_app(settings):
    async with running_app(settings) as client:
        sm = client.app[keys.SESSIONMAKER]
        seeded, cluster, qid, key = await rated_cluster(client)
        # Learners: north and south shown (5 each), east suppressed (2) -> fewer than 3 schools.
        await learners_answer(sm, seeded["north"].cycle_id, qid, [4, 4, 4, 3, 3])
        await learners_answer(sm, seeded["south"].cycle_id, qid, [1, 1, 2, 2, 2])
        await learners_answer(sm, seeded["east"].cycle_id, qid, [0, 0])
        row_of = row_reader(key)
        url = f"/dashboard/clusters/{cluster.id}"
        # South's coordinator: its own school named, the others anonymised.
        assert (await login(client, "coord@south.example")).status == 303
        page = await (await client.get(url)).text()
        assert "South College (yours)" in page
        assert "North College" not in page and "East College" not in page
        assert "School A" in page and "School B" in page
        # Order: north (A), south (yours), east (B); median 3; south is 1 below.
        assert row_of(page) == ["4", "2", "3", "3.00", "▼ -1.00"]
        page = await (await client.get(url + "?series=learner")).text()
        assert row_of(page) == ["3.60", "1.60", "—", "fewer than 3 schools", ""]
        assert "0.00" not in row_of(page)  # east's suppressed mean never appears
        # Not a member: 404. The admin sees every name.
        await post_form(client, "/logout", {})
        assert (await login(client, "coord@west.example")).status == 303
        assert (await client.get(url)).status == 404
        assert "Riverside" not in await (await client.get("/dashboard/clusters")).text()
        await post_form(client, "/logout", {})
        assert (await login(client, "admin@example.org")).status == 303
        page = await (await client.get(url)).text()
        assert "North College" in page and "East College" in page and "School A" not in page
        # The peer of north reads the other members, so it sees their names.
        await post_form(client, "/logout", {})
        assert (await login(client, "peer@north.example")).status == 303
        page = await (await client.get(url)).text()
        assert "South College" in page and "North College (yours)" in page
        # Removing a school from the cluster ends the peer's access to it.
        await post_form(client, "/logout", {})
        assert (await login(client, "admin@example.org")).status == 303
        admin = "/dashboard/admin/clusters"
        await post_form(
            client, f"{admin}/{cluster.id}/members/remove", {"school": "south"}, csrf_page=admin
        )
        await post_form(client, "/logout", {})
        assert (await login(client, "peer@north.example")).status == 303
        assert (await client.get(f"/dashboard/cycles/{seeded['south'].cycle_id}")).status == 404
        assert (await client.get(f"/dashboard/cycles/{seeded['east'].cycle_id}")).status == 200


async def test_the_cluster_view_compares_one_round(settings):
    """By default each school's newest cycle; `?round=` the cycles of that name, so that
    a school a year ahead is not set beside the others' previous year."""
    async with running_app(settings) as client:
        sm = client.app[keys.SESSIONMAKER]
        seeded, cluster, _qid, key = await rated_cluster(client)
        async with sm.begin() as s:  # north and south run a second cycle; east does not yet
            for slug, value in (("north", 1), ("south", 1)):
                newer = await schools.create_cycle(
                    s, seeded[slug].school_id, "2027/28", load_model().version, status="open"
                )
                await schools.upsert_self_rating(s, newer.id, key, value=value)
        row_of = row_reader(key)
        url = f"/dashboard/clusters/{cluster.id}"
        assert (await login(client, "admin@example.org")).status == 303
        page = await (await client.get(url)).text()
        assert row_of(page)[:4] == ["1", "1", "3", "1.00"]  # newest: 2027/28, 2027/28, 2026/27
        assert '<option value="2027/28"' in page and '<option value="2026/27"' in page
        page = await (await client.get(url + "?round=2026/27")).text()
        assert row_of(page)[:4] == ["4", "2", "3", "3.00"]
        page = await (await client.get(url + "?round=2027/28")).text()
        assert "No cycle 2027/28: East College." in page
        assert row_of(page)[:3] == ["1", "1", "fewer than 3 schools"]
        page = await (await client.get(url + "?round=1999")).text()  # unknown: the newest
        assert row_of(page)[:4] == ["1", "1", "3", "1.00"]
