"""The JSON API of certification and accreditation (read only): the rounds a token reaches,
a round's schools, and one school in a round. The same rules as the pages
(`backend.certification.service.Reader`): a board reads its agency's rounds, an assessor
the schools assigned to it (never raw answers or free text: the frozen snapshot only), a
school's user its own school's rows, requests and decisions. Anything else is a 404."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from backend.certification import service
from backend.dashboard.views_agency import _int, _round_rows
from backend.dashboard.web import sessionmaker, user_of
from storage import certification as store
from storage.models import CertRound, Decision, Submission


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


async def school_in_round(request: web.Request) -> web.Response:
    async with sessionmaker(request).begin() as s:
        who = await service.reader(s, user_of(request))
        rnd = await _reachable(request, s, who)
        sid = _int(request.match_info.get("school_id"))
        own = who.user.role == "coordinator" and who.user.school_id == sid
        if sid is None or not (own or await service.reviewable(s, who, rnd, sid)):
            raise web.HTTPNotFound()
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
            "requests": [
                {
                    "id": q.id,
                    "key": q.indicator_key,
                    "question": q.question,
                    "asked_at": q.asked_at.isoformat(),
                    "answer": q.answer,
                    "answered_at": q.answered_at.isoformat() if q.answered_at else None,
                }
                for q in requests
            ],
            "decision": _decision_json(request, decision),
        }
    )


def routes() -> list[tuple[str, str, Any, str]]:
    r = "/api/rounds/{round_id:\\d+}"
    return [
        ("GET", "/api/rounds", rounds, "api:rounds"),
        ("GET", r, round_detail, "api:round"),
        ("GET", r + "/schools/{school_id:\\d+}", school_in_round, "api:round_school"),
    ]
