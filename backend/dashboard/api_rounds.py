"""The JSON API of certification and accreditation: the rounds a token reaches, a round's
schools, one school in a round; and the steps of a round an agency's or a school's own
system takes: submit, rate, ask for evidence, answer, decide, revoke, assign.

The same rules as the pages (`backend.certification.service.Reader`): a board reads its
agency's rounds, an assessor the schools assigned to it (never raw answers or free text:
the frozen snapshot only), a school's coordinator its own school's rows, requests and
decisions. Anything else is a 404. Each step calls the same use-case function as the
page's form (`service.submit`, `rate`, `ask`, `answer`, `decide`, `revoke`, `assign`), which
checks the step's rule and writes its audit row in the same transaction; its refusal
becomes 403 (the token reads the school but may not take this step), 409 (the round's or
the school's state does not allow it now) or 422 (a field does not do, named).

Authentication is the read API's: `Authorization: Bearer <token>`, no cookie; a browser
never sends the token by itself, so a write needs no CSRF token (the session middleware
checks CSRF on the pages' cookie-authenticated forms only)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from backend.certification import service
from backend.certification.service import Refused
from backend.dashboard import api_models as m
from backend.dashboard.views_agency import _int, _round_rows
from backend.dashboard.web import sessionmaker, user_of
from backend.reporting import releases
from backend.web import keys
from conversations.model import load_model
from storage import certification as store
from storage import schools
from storage.models import CertRound, Decision, EvidenceRequest, Submission


def _round_json(rnd: CertRound, agencies: dict[int, Any]) -> dict[str, Any]:
    agency = agencies.get(rnd.agency_id)
    return {
        "id": rnd.id,
        "name": rnd.name,
        "kind": rnd.kind,
        "status": rnd.status,
        "deadline": rnd.deadline.isoformat(),
        "exclude_cluster": rnd.exclude_cluster,
        "agency": {"id": rnd.agency_id, "name": agency.name if agency else ""},
    }


def _submission_json(sub: Submission) -> dict[str, Any]:
    return {
        "version": sub.version,
        "submitted_at": sub.submitted_at.isoformat(),
        "sha256": sub.content_hash,
    }


def _decision_json(request: web.Request, d: Decision | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {
        "outcome": d.outcome,
        "conditions": d.conditions,
        "valid_from": d.valid_from.isoformat() if d.valid_from else None,
        "valid_until": d.valid_until.isoformat() if d.valid_until else None,
        "decided_at": d.decided_at.isoformat(),
        "state": service.certificate_state(d),
        "verify_path": str(request.app.router["dash:verify"].url_for(token=d.token)),
    }


def _request_json(q: EvidenceRequest) -> dict[str, Any]:
    return {
        "id": q.id,
        "key": q.indicator_key,
        "question": q.question,
        "asked_at": q.asked_at.isoformat(),
        "answer": q.answer,
        "answered_at": q.answered_at.isoformat() if q.answered_at else None,
    }


async def _reachable(request: web.Request, s: Any, who: service.Reader) -> CertRound:
    rid = _int(request.match_info.get("round_id"))
    found = {r.id: r for r in await service.rounds_for(s, who)}
    if rid is None or rid not in found:
        raise web.HTTPNotFound()
    return found[rid]


async def rounds(request: web.Request) -> web.Response:
    async with sessionmaker(request).begin() as s:
        who = await service.reader(s, user_of(request))
        found = await service.rounds_for(s, who)
        agencies = {a.id: a for a in await store.list_agencies(s)}
    return web.json_response({"rounds": [_round_json(r, agencies) for r in found]})


async def round_detail(request: web.Request) -> web.Response:
    async with sessionmaker(request).begin() as s:
        who = await service.reader(s, user_of(request))
        rnd = await _reachable(request, s, who)
        agencies = {a.id: a for a in await store.list_agencies(s)}
        rows = await _round_rows(s, who, rnd)
    return web.json_response(
        {
            "round": _round_json(rnd, agencies),
            "schools": [
                {
                    "school": {
                        "id": r["school"].id,
                        "slug": r["school"].slug,
                        "name": r["school"].name,
                    },
                    "status": r["status"],
                    "submission": _submission_json(r["submission"]) if r["submission"] else None,
                    "assessors": [
                        {"email": a["email"], "done": a["done"], "total": a["total"]}
                        for a in r["assessors"]
                    ],
                    "decision": _decision_json(request, r["decision"]),
                }
                for r in rows
            ],
        }
    )


async def _in_round(request: web.Request, s: Any) -> tuple[service.Reader, CertRound, int]:
    """The reader, the round and the school of the URL if the token reads that school in
    that round (its own school's coordinator; the board; an assigned assessor); else 404."""
    who = await service.reader(s, user_of(request))
    rnd = await _reachable(request, s, who)
    sid = _int(request.match_info.get("school_id"))
    if sid is None or not await service.reads_submission(s, who, rnd, sid):
        raise web.HTTPNotFound()
    return who, rnd, sid


async def school_in_round(request: web.Request) -> web.Response:
    async with sessionmaker(request).begin() as s:
        who, rnd, sid = await _in_round(request, s)
        school = (await store.schools_by_id(s, [sid]))[sid]
        agencies = {a.id: a for a in await store.list_agencies(s)}
        versions = await store.list_submissions(s, rnd.id, sid)
        assignments = []
        if who.boards(rnd.agency_id):
            assignments = await store.list_assignments(s, rnd.id, sid)
        elif who.assesses_for(rnd.agency_id):
            assignments = await store.list_assignments(s, rnd.id, sid, who.user.id)
        ratings = await store.review_ratings(s, [a.id for a, _u in assignments])
        requests = await store.list_requests(s, rnd.id, sid)
        decision = (await store.latest_decisions(s, rnd.id)).get(sid)
    snap = service.load_snapshot(versions[0]) if versions else None
    agreement = None
    if snap and who.boards(rnd.agency_id) and len(assignments) >= 2:
        (a1, u1), (a2, u2) = assignments[0], assignments[1]
        _rows, kappa, n = service.side_by_side(snap, ratings[a1.id], ratings[a2.id])
        agreement = {"first": u1.email, "second": u2.email, "kappa": kappa, "pairs": n}
    return web.json_response(
        {
            "round": _round_json(rnd, agencies),
            "school": {"id": school.id, "slug": school.slug, "name": school.name},
            "submissions": [_submission_json(v) for v in versions],
            "snapshot": snap,
            "reviews": [
                {
                    "assessor": u.email,
                    "ratings": [
                        {"key": k, "agrees": r.agrees, "value": r.value, "reason": r.reason}
                        for k, r in sorted(ratings[a.id].items())
                    ],
                }
                for a, u in assignments
            ],
            "agreement": agreement,
            "requests": [_request_json(q) for q in requests],
            "decision": _decision_json(request, decision),
        }
    )


# --- the steps of a round ------------------------------------------------------------------


class _Answer(Exception):
    """An answer given before the step (a refused body, a refused step): raised inside the
    transaction so that it is rolled back, returned by `_answers`."""

    def __init__(self, response: web.Response) -> None:
        self.response = response


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"status": status, "message": message}}, status=status)


def _invalid(found: list[m.Problem]) -> _Answer:
    detail = m.InvalidDetail(status=422, message=m.summary(found), problems=found)
    return _Answer(web.json_response(m.Invalid(error=detail).model_dump(), status=422))


def _refused(exc: Refused) -> Exception:
    """The service's refusal as the API's answer (see the module's doc)."""
    if exc.kind == "not_found":
        return web.HTTPNotFound()
    if exc.kind == "forbidden":
        return web.HTTPForbidden(text=str(exc))
    if exc.kind == "conflict":
        return _Answer(_error(409, str(exc)))
    return _invalid([m.Problem(field=exc.field, message=str(exc))])


async def _body(request: web.Request, model: type[BaseModel]) -> dict[str, Any]:
    """The request's body as its model validates it: 400 for no JSON, 422 by field."""
    try:
        return m.parse_body(model, await request.read())
    except m.BodyNotJSON as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    except ValidationError as exc:
        raise _invalid(m.cert_problems(exc)) from None


def _answers(handler: Any) -> Any:
    """A step's view: an `_Answer` raised inside is its response, and the service's refusal
    (`Refused`, raised inside the view's transaction, which rolls it back) is answered as
    `_refused` says: 403, 404, 409 or 422."""

    async def run(request: web.Request) -> web.Response:
        try:
            try:
                return await handler(request)
            except Refused as exc:
                raise _refused(exc) from None
        except _Answer as answer:
            return answer.response

    run.__name__ = run.__qualname__ = handler.__name__
    run.__doc__ = handler.__doc__
    return run


def _ids(rnd: CertRound, school_id: int) -> dict[str, int]:
    return {"round_id": rnd.id, "school_id": school_id}


@_answers
async def post_submission(request: web.Request) -> web.Response:
    """The school's coordinator submits one of its cycles: a new frozen version."""
    async with sessionmaker(request).begin() as s:
        who, rnd, sid = await _in_round(request, s)
        body = await _body(request, m.SubmissionInput)
        cycle = await schools.get_cycle(s, body["cycle_id"])
    if cycle is None or cycle.school_id != sid:
        raise _invalid([m.Problem(field="cycle_id", message="not one of the school's cycles")])
    # The figures as the newest release gives them, like every other reader's (the page too).
    await releases.refresh(sessionmaker(request), [cycle.id])
    async with sessionmaker(request).begin() as s:
        who = await service.reader(s, user_of(request))
        data_dir = request.app[keys.SETTINGS].data_dir
        sub = await service.submit(s, who, rnd, cycle, load_model(), data_dir)
        out = {**_ids(rnd, sid), "cycle_id": cycle.id, "submission": _submission_json(sub)}
    return web.json_response(out, status=201)


async def _snapshot(s: Any, rnd: CertRound, school_id: int) -> dict[str, Any]:
    versions = await store.list_submissions(s, rnd.id, school_id)
    if not versions:
        raise _Answer(_error(409, "The school has not submitted to this round."))
    return service.load_snapshot(versions[0])


@_answers
async def post_rating(request: web.Request) -> web.Response:
    """An assigned assessor agrees with the school's rating of an indicator or proposes one."""
    async with sessionmaker(request).begin() as s:
        who, rnd, sid = await _in_round(request, s)
        try:
            assignment = await service.my_assignment(s, who, rnd, sid)
            body = await _body(request, m.review_rating_input())
            snap = await _snapshot(s, rnd, sid)
            agrees = body["verdict"] == "agree"
            await service.rate(
                s, who, rnd, sid, snap, body["key"], agrees, body.get("value"), body["reason"]
            )
        except Refused as exc:
            if exc.kind == "not_found":  # the key: an indicator the submitted version lacks
                raise _Answer(
                    _error(409, "The submitted version does not rate this indicator.")
                ) from None
            raise  # answered by `_answers`
        held = (await store.review_ratings(s, [assignment.id]))[assignment.id][body["key"]]
        rating = {"key": body["key"], "agrees": held.agrees, "value": held.value}
    return web.json_response(
        {**_ids(rnd, sid), "rating": {**rating, "reason": held.reason}}, status=200
    )


@_answers
async def post_request(request: web.Request) -> web.Response:
    """An assigned assessor asks the school for more evidence on an indicator."""
    async with sessionmaker(request).begin() as s:
        who, rnd, sid = await _in_round(request, s)
        await service.my_assignment(s, who, rnd, sid)
        body = await _body(request, m.evidence_request_input())
        snap = await _snapshot(s, rnd, sid)
        if body["key"] not in {i["key"] for i in service.snapshot_indicators(snap)}:
            raise _Answer(_error(409, "The submitted version has no such indicator."))
        req = await service.ask(s, who, rnd, sid, body["key"], body["question"])
        out = {**_ids(rnd, sid), "request": _request_json(req)}
    return web.json_response(out, status=201)


@_answers
async def post_answer(request: web.Request) -> web.Response:
    """The school's coordinator answers an evidence request (once)."""
    async with sessionmaker(request).begin() as s:
        who, rnd, sid = await _in_round(request, s)
        rid = _int(request.match_info.get("request_id"))
        req = await store.get_request(s, rid) if rid is not None else None
        if req is None or req.round_id != rnd.id or req.school_id != sid:
            raise web.HTTPNotFound()
        if not who.coordinates(sid):
            raise Refused("forbidden", "Only the school's coordinator may answer.")
        body = await _body(request, m.EvidenceAnswerInput)
        await service.answer(s, who, req, body["answer"])
        out = {**_ids(rnd, sid), "request": _request_json(req)}
    return web.json_response(out)


@_answers
async def post_decision(request: web.Request) -> web.Response:
    """The board records its decision on the school (a new one replaces the last)."""
    notifier = request.app[keys.NOTIFIER]
    async with sessionmaker(request).begin() as s:
        who, rnd, sid = await _in_round(request, s)
        service.require_board(who, rnd)
        body = await _body(request, m.DecisionInput)
        decision = await service.decide(
            s,
            who,
            rnd,
            sid,
            body["outcome"],
            body["conditions"],
            body["valid_from"],
            body["valid_until"],
            mail=notifier,  # the school's mail, queued in this transaction
        )
        out = {**_ids(rnd, sid), "decision": _decision_json(request, decision)}
    notifier.kick()  # after the commit, in the background
    return web.json_response(out, status=201)


@_answers
async def post_revocation(request: web.Request) -> web.Response:
    """The board revokes the school's certificate: its verification page says so."""
    notifier = request.app[keys.NOTIFIER]
    async with sessionmaker(request).begin() as s:
        who, rnd, sid = await _in_round(request, s)
        decision = await service.revoke(s, who, rnd, sid, mail=notifier)
        out = {**_ids(rnd, sid), "decision": _decision_json(request, decision)}
    notifier.kick()
    return web.json_response(out)


@_answers
async def post_assignment(request: web.Request) -> web.Response:
    """The board assigns one of the agency's assessors to the school (no conflict of interest)."""
    async with sessionmaker(request).begin() as s:
        who, rnd, sid = await _in_round(request, s)
        service.require_board(who, rnd)
        body = await _body(request, m.AssignmentInput)
        added = await service.assign(s, who, rnd, sid, body["assessor_id"])
        assessor = await schools.get_user(s, body["assessor_id"])
        out = {
            **_ids(rnd, sid),
            "assessor": {"id": assessor.id, "email": assessor.email},
            "added": added,
        }
    return web.json_response(out, status=201 if added else 200)


def routes() -> list[tuple[str, str, Any, str]]:
    r = "/api/rounds/{round_id:\\d+}"
    sch = r + "/schools/{school_id:\\d+}"
    return [
        ("GET", "/api/rounds", rounds, "api:rounds"),
        ("GET", r, round_detail, "api:round"),
        ("GET", sch, school_in_round, "api:round_school"),
        ("POST", sch + "/submissions", post_submission, "api:round_submit"),
        ("POST", sch + "/ratings", post_rating, "api:round_rate"),
        ("POST", sch + "/requests", post_request, "api:round_ask"),
        ("POST", sch + "/requests/{request_id:\\d+}/answer", post_answer, "api:round_answer"),
        ("POST", sch + "/decision", post_decision, "api:round_decide"),
        ("POST", sch + "/decision/revoke", post_revocation, "api:round_revoke"),
        ("POST", sch + "/assessors", post_assignment, "api:round_assign"),
    ]
