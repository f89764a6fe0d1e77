"""The steps of a round through the JSON API (an agency's or a school's own system): each
the page's use case, with its audit row; every other role refused (401/404, or 403 where it
reads the school), nothing changed; bad bodies 422 by field; state conflicts 409."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from backend.web import keys
from storage import certification as store
from tests.apptools import db_url_of, make_settings, running_app
from tests.backend.certification.support import set_up_round
from tests.backend.dashboard.support import add_user, api_headers

TODAY = date.today()
VALIDITY = {
    "valid_from": TODAY.isoformat(),
    "valid_until": (TODAY + timedelta(days=730)).isoformat(),
}


@pytest.fixture
def settings(db_engine, tmp_path):
    return make_settings(db_url_of(db_engine), data_dir=tmp_path / "data")


class Api:
    """Requests as one account or another (None: no token)."""

    def __init__(self, client: Any, rnd: Any) -> None:
        self.client, self.rnd = client, rnd
        self.sm = client.app[keys.SESSIONMAKER]
        self.base = f"/api/rounds/{rnd.round_id}/schools/{rnd.south.school_id}"

    async def post(self, who: str | None, path: str, body: Any = None) -> tuple[int, Any]:
        headers = await api_headers(self.client, who) if who else {}
        if body is not None:
            resp = await self.client.post(self.base + path, json=body, headers=headers)
        else:
            resp = await self.client.post(self.base + path, headers=headers)
        return resp.status, await resp.json()

    async def audit(self) -> list[Any]:
        async with self.sm() as s:
            return await store.audit_events(s, self.rnd.agency_id, self.rnd.round_id)

    async def state(self) -> Any:
        """What a step could change: the audit trail and the school in the round as the
        board reads it."""
        resp = await self.client.get(self.base, headers=await api_headers(self.client, BOARD))
        assert resp.status == 200
        return [(e.action, e.actor, e.detail) for e in await self.audit()], await resp.json()

    async def member_ids(self) -> dict[str, int]:
        """The user ids of both agencies' members."""
        async with self.sm() as s:
            return {
                u.email: u.id
                for aid in (self.rnd.agency_id, self.rnd.other_agency_id)
                for _m, u in await store.list_members(s, aid)
            }


BOARD = "board@agency.example"
A1 = "a1@agency.example"
A2 = "a2@agency.example"
COORD = "coord@south.example"


async def _submitted_and_assigned(client: Any, rnd: Any) -> Api:
    api = Api(client, rnd)
    status, body = await api.post(COORD, "/submissions", {"cycle_id": rnd.south.cycle_id})
    assert status == 201, body
    ids = await api.member_ids()
    status, body = await api.post(BOARD, "/assessors", {"assessor_id": ids[A1]})
    assert status == 201, body
    return api


async def _unrated_key(api: Api) -> str:
    resp = await api.client.get(api.base, headers=await api_headers(api.client, BOARD))
    snap = (await resp.json())["snapshot"]
    return next(
        i["key"]
        for i in snap["report"]["indicators"]
        if i["kind"] != "NUMBER" and i["self"] is None
    )


async def test_each_step_is_the_pages_step_with_its_audit_row(settings):
    async with running_app(settings) as client:
        rnd = await set_up_round(client, client.app[keys.SESSIONMAKER])
        api = Api(client, rnd)
        ids = await api.member_ids()

        # The school's coordinator submits, twice: two frozen versions.
        for version in (1, 2):
            status, body = await api.post(COORD, "/submissions", {"cycle_id": rnd.south.cycle_id})
            assert status == 201, body
            assert (
                body["submission"]["version"] == version and len(body["submission"]["sha256"]) == 64
            )
            assert (body["round_id"], body["school_id"], body["cycle_id"]) == (
                rnd.round_id,
                rnd.south.school_id,
                rnd.south.cycle_id,
            )
        assert [e.action for e in await api.audit()][-2:] == ["submission", "submission"]
        assert (await api.audit())[-1].detail["version"] == 2

        # The board assigns: a1; a1 again (nothing done); near@ works at a cluster mate (409).
        status, body = await api.post(BOARD, "/assessors", {"assessor_id": ids[A1]})
        assert status == 201 and body["added"] is True and body["assessor"]["email"] == A1
        status, body = await api.post(BOARD, "/assessors", {"assessor_id": ids[A1]})
        assert status == 200 and body["added"] is False
        before = len(await api.audit())
        status, body = await api.post(
            BOARD, "/assessors", {"assessor_id": ids["near@agency.example"]}
        )
        assert status == 409 and "cluster" in body["error"]["message"], body
        assert len(await api.audit()) == before
        status, body = await api.post(BOARD, "/assessors", {"assessor_id": ids[A2]})
        assert status == 201
        assigned = [e for e in await api.audit() if e.action == "assignment"]
        assert [e.detail["assessor"] for e in assigned] == [A1, A2]
        assert {e.actor for e in assigned} == {BOARD}

        # a1 proposes another rating, then agrees; a2 agrees.
        propose = {"verdict": "propose", "key": rnd.key, "value": 1, "reason": " Too few answers "}
        status, body = await api.post(A1, "/ratings", propose)
        assert status == 200, body
        assert body["rating"] == {
            "key": rnd.key,
            "agrees": False,
            "value": 1,
            "reason": "Too few answers",
        }
        status, body = await api.post(A1, "/ratings", {"verdict": "agree", "key": rnd.key})
        assert (
            status == 200 and body["rating"]["agrees"] is True and body["rating"]["value"] is None
        )
        assert (await api.post(A2, "/ratings", {"verdict": "agree", "key": rnd.key}))[0] == 200
        ratings = [e for e in await api.audit() if e.action == "rating"]
        assert [(e.actor, e.detail["agrees"]) for e in ratings] == [
            (A1, False),
            (A1, True),
            (A2, True),
        ]
        assert ratings[0].detail["reason"] == "Too few answers"

        # a1 asks for evidence; the coordinator answers once.
        ask = {"key": rnd.key, "question": "The plan's minutes, please."}
        status, body = await api.post(A1, "/requests", ask)
        assert status == 201 and body["request"]["answer"] is None, body
        rid = body["request"]["id"]
        status, body = await api.post(COORD, f"/requests/{rid}/answer", {"answer": "Attached."})
        assert status == 200 and body["request"]["answer"] == "Attached.", body
        assert body["request"]["answered_at"]
        status, body = await api.post(COORD, f"/requests/{rid}/answer", {"answer": "Again."})
        assert status == 409, body
        trail = await api.audit()
        assert [e.action for e in trail][-2:] == ["evidence_request", "evidence_answer"]
        assert (trail[-2].actor, trail[-1].actor) == (A1, COORD)
        assert trail[-1].detail == {"request": rid, "indicator": rnd.key, "answer": "Attached."}

        # The board decides (with conditions), then revokes; revoking again is a conflict.
        decision = {"outcome": "conditions", "conditions": "A plan by June.", **VALIDITY}
        status, body = await api.post(BOARD, "/decision", decision)
        assert status == 201, body
        d = body["decision"]
        assert (d["outcome"], d["conditions"], d["state"]) == (
            "conditions",
            "A plan by June.",
            "valid",
        )
        assert (await client.get(d["verify_path"])).status == 200
        status, body = await api.post(BOARD, "/decision/revoke")
        assert status == 200 and body["decision"]["state"] == "revoked", body
        assert "revoked" in (await (await client.get(d["verify_path"])).text()).lower()
        assert (await api.post(BOARD, "/decision/revoke"))[0] == 409
        trail = await api.audit()
        assert [e.action for e in trail][-2:] == ["decision", "revocation"]
        assert trail[-2].detail["valid_until"] == VALIDITY["valid_until"]
        assert {e.actor for e in trail[-2:]} == {BOARD}

        # The board reads it all back, as the pages show it.
        resp = await client.get(api.base, headers=await api_headers(client, BOARD))
        body = await resp.json()
        assert [v["version"] for v in body["submissions"]] == [2, 1]
        assert [r["assessor"] for r in body["reviews"]] == [A1, A2]
        assert body["requests"][0]["answer"] == "Attached."
        assert body["decision"]["state"] == "revoked"
        # A "not yet" decision needs no validity (a given one is ignored).
        status, body = await api.post(BOARD, "/decision", {"outcome": "not_yet", **VALIDITY})
        assert status == 201 and body["decision"]["valid_until"] is None


async def test_every_other_role_is_refused_and_nothing_changes(settings):
    async with running_app(settings) as client:
        rnd = await set_up_round(client, client.app[keys.SESSIONMAKER])
        api = await _submitted_and_assigned(client, rnd)
        ids = await api.member_ids()
        # A peer reviewer of south's cluster (it reads south's cycles, not its round).
        await add_user(client, "peer@north.example", rnd.north.school_id, role="peer")
        status, body = await api.post(A1, "/requests", {"key": rnd.key, "question": "More?"})
        assert status == 201
        rid = body["request"]["id"]
        await api.post(BOARD, "/decision", {"outcome": "certified", **VALIDITY})
        steps: list[tuple[str, Any]] = [
            ("/submissions", {"cycle_id": rnd.south.cycle_id}),
            ("/ratings", {"verdict": "propose", "key": rnd.key, "value": 0, "reason": "No."}),
            ("/requests", {"key": rnd.key, "question": "Anything?"}),
            (f"/requests/{rid}/answer", {"answer": "Here."}),
            ("/decision", {"outcome": "not_yet"}),
            ("/decision/revoke", None),
            ("/assessors", {"assessor_id": ids[A2]}),
        ]
        before = await api.state()
        outsiders = (
            A2,  # an assessor of the agency, not assigned to south
            "other-board@agency.example",  # another agency's board
            "other-assessor@agency.example",  # another agency's assessor
            "coord@west.example",  # another school's coordinator
            "peer@north.example",
        )
        for path, body in steps:
            status, answer = await api.post(None, path, body)
            assert status == 401 and answer["error"]["status"] == 401, (path, answer)
            for who in outsiders:
                status, answer = await api.post(who, path, body)
                assert status == 404, (who, path, status, answer)
        # Readers of the school who may not take the step: 403.
        for who, path, body in (
            (BOARD, *steps[0]),
            (A1, *steps[0]),
            (BOARD, *steps[1]),
            (COORD, *steps[1]),
            (BOARD, *steps[2]),
            (COORD, *steps[2]),
            (BOARD, *steps[3]),
            (A1, *steps[3]),
            (A1, *steps[4]),
            (COORD, *steps[4]),
            (A1, *steps[5]),
            (COORD, *steps[5]),
            (A1, *steps[6]),
            (COORD, *steps[6]),
        ):
            status, answer = await api.post(who, path, body)
            assert status == 403, (who, path, status, answer)
        # Another round's id, another school's id in this round: 404 for the board too.
        other = f"/api/rounds/{rnd.other_round_id}/schools/{rnd.south.school_id}/decision"
        resp = await client.post(
            other,
            json={"outcome": "not_yet"},
            headers=await api_headers(client, BOARD),
        )
        assert resp.status == 404
        resp = await client.post(
            f"/api/rounds/{rnd.round_id}/schools/{rnd.west.school_id}/decision",
            json={"outcome": "not_yet"},
            headers=await api_headers(client, BOARD),
        )
        assert resp.status == 404
        assert await api.state() == before


BAD: list[tuple[str, str, Any, str]] = [
    # (who, path, body, the field named)
    (COORD, "/submissions", {}, "cycle_id"),
    (COORD, "/submissions", {"cycle_id": "1"}, "cycle_id"),
    (COORD, "/submissions", {"cycle_id": 0}, "cycle_id"),
    (A1, "/ratings", {"verdict": "maybe", "key": "VL-1"}, "verdict"),
    (A1, "/ratings", {"verdict": "propose", "key": "VL-1", "reason": "x"}, "value"),
    (A1, "/ratings", {"verdict": "propose", "key": "VL-1", "value": 5, "reason": "x"}, "value"),
    (A1, "/ratings", {"verdict": "propose", "key": "VL-1", "value": 2, "reason": " \t"}, "reason"),
    (A1, "/ratings", {"verdict": "propose", "key": "VL-1", "value": 2}, "reason"),
    (A1, "/ratings", {"verdict": "agree", "key": "NOPE"}, "key"),
    (A1, "/ratings", {"verdict": "agree", "key": "FL-3.1"}, "key"),  # a count: not rated
    (A1, "/ratings", {"verdict": "agree", "key": "VL-1", "reason": "x" * 4001}, "reason"),
    (A1, "/requests", {"key": "VL-1"}, "question"),
    (A1, "/requests", {"key": "VL-1", "question": "nul\x00"}, "question"),
    (BOARD, "/decision", {"outcome": "certified"}, "valid_from"),
    (
        BOARD,
        "/decision",
        {"outcome": "certified", **VALIDITY, "valid_from": 20270101},
        "valid_from",
    ),
    (BOARD, "/decision", {"outcome": "conditions", **VALIDITY}, "conditions"),
    (BOARD, "/decision", {"outcome": "withdrawn"}, "outcome"),
    (
        BOARD,
        "/decision",
        {"outcome": "certified", "valid_from": "2028-01-01", "valid_until": "2027-01-01"},
        "valid_until",
    ),
    (BOARD, "/assessors", {"assessor_id": True}, "assessor_id"),
    (BOARD, "/assessors", {"assessor_id": 1.5}, "assessor_id"),
    (BOARD, "/assessors", [], ""),
]


async def test_bad_bodies_are_422_by_field_and_store_nothing(settings):
    async with running_app(settings) as client:
        rnd = await set_up_round(client, client.app[keys.SESSIONMAKER])
        api = await _submitted_and_assigned(client, rnd)
        ids = await api.member_ids()
        before = await api.state()
        bad = [
            *BAD,
            (COORD, "/submissions", {"cycle_id": rnd.west.cycle_id}, "cycle_id"),
            (
                BOARD,
                "/assessors",
                {"assessor_id": ids["other-assessor@agency.example"]},
                "assessor_id",
            ),
            (BOARD, "/assessors", {"assessor_id": ids[BOARD]}, "assessor_id"),
        ]
        for who, path, body, field in bad:
            status, answer = await api.post(who, path, body)
            assert status == 422, (path, body, status, answer)
            fields = [p["field"] for p in answer["error"]["problems"]]
            assert field in fields, (path, body, answer)
        # Not JSON at all: 400.
        resp = await client.post(
            api.base + "/ratings", data=b"{nope", headers=await api_headers(client, A1)
        )
        assert resp.status == 400 and (await resp.json())["error"]["status"] == 400
        assert await api.state() == before


async def test_state_conflicts_are_409_and_store_nothing(settings):
    async with running_app(settings) as client:
        sm = client.app[keys.SESSIONMAKER]
        rnd = await set_up_round(client, sm)
        api = await _submitted_and_assigned(client, rnd)
        unrated = await _unrated_key(api)
        before = await api.state()
        # Agreeing with a rating the school did not give; revoking no certificate.
        status, body = await api.post(A1, "/ratings", {"verdict": "agree", "key": unrated})
        assert status == 409 and "propose" in body["error"]["message"], body
        assert (await api.post(BOARD, "/decision/revoke"))[0] == 409
        # A closed round takes no rating and no submission.
        assert await api.state() == before
        async with sm.begin() as s:
            await store.set_round_status(s, rnd.round_id, "closed")
        before = await api.state()
        status, body = await api.post(A1, "/ratings", {"verdict": "agree", "key": rnd.key})
        assert status == 409 and body["error"]["message"] == "The round is closed.", body
        status, body = await api.post(COORD, "/submissions", {"cycle_id": rnd.south.cycle_id})
        assert status == 409, body
        assert await api.state() == before
