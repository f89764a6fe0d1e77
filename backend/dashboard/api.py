"""The JSON API (Bearer token, see `auth.api_token`) and its OpenAPI 3.1 description.

Same access rules as the pages: another school's slug or cycle id is a 404.
"""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from backend.dashboard import api_models as m
from backend.dashboard.api_models import BodyNotJSON, parse_self_ratings, problems, summary
from backend.dashboard.rates import response_rates
from backend.dashboard.web import (
    MAX_ROW_ID,
    cycle_for,
    for_reader,
    hides_raw,
    release_figures,
    school_for,
    sessionmaker,
    user_of,
    writable_cycle,
)
from backend.reporting.report import build_report
from conversations.model import load_model
from storage import schools
from storage.models import Cycle, SelfRating


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def _cycle_json(c: Cycle) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "status": c.status,
        "model_version": c.model_version,
        "opens_at": _iso(c.opens_at),
        "closes_at": _iso(c.closes_at),
        "targets": c.targets or {},
        "thresholds": {"anonymity": c.anonymity_threshold, "free_text": c.free_text_threshold},
    }


def _rating_json(r: SelfRating) -> dict[str, Any]:
    return {
        "key": r.indicator_key,
        "value": r.value,
        "number": r.number,
        "comment": r.comment,
        "status": r.status,
        "updated_at": _iso(r.updated_at),
    }


async def me(request: web.Request) -> web.Response:
    user = user_of(request)
    return web.json_response(
        {"id": user.id, "email": user.email, "role": user.role, "school_id": user.school_id}
    )


async def school_cycles(request: web.Request) -> web.Response:
    async with sessionmaker(request).begin() as s:
        school = await school_for(request, s, request.match_info["slug"])
        cycles = await schools.list_cycles(s, school.id)
    return web.json_response(
        {
            "school": {"slug": school.slug, "name": school.name},
            "cycles": [_cycle_json(c) for c in cycles],
        }
    )


async def cycle_report(request: web.Request) -> web.Response:
    await release_figures(request)
    async with sessionmaker(request).begin() as s:
        cycle = await cycle_for(request, s, request.match_info["cycle_id"])
        report = await build_report(s, cycle.id, load_model())
    return web.json_response(for_reader(request, report, cycle.school_id))


async def cycle_rates(request: web.Request) -> web.Response:
    async with sessionmaker(request).begin() as s:
        cycle = await cycle_for(request, s, request.match_info["cycle_id"])
        rates = await response_rates(s, cycle)
    return web.json_response(
        {
            "cycle": cycle.id,
            "started": sum(r.started for r in rates),
            "completed": sum(r.completed for r in rates),
            "roles": [r.as_json() for r in rates],
        }
    )


async def get_self_ratings(request: web.Request) -> web.Response:
    async with sessionmaker(request).begin() as s:
        cycle = await cycle_for(request, s, request.match_info["cycle_id"])
        ratings = await schools.list_self_ratings(s, cycle.id)
    rows = [_rating_json(r) for r in ratings.values()]
    if hides_raw(request, cycle.school_id):  # a peer reviewer: no free-text comments
        rows = [{**r, "comment": None} for r in rows]
    return web.json_response({"cycle": cycle.id, "ratings": rows})


async def post_self_ratings(request: web.Request) -> web.Response:
    """Validate the whole body first (nothing is stored unless every rating fits), then save."""
    try:
        items = parse_self_ratings(await request.read())
    except BodyNotJSON as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    except ValidationError as exc:
        found = problems(exc)
        detail = m.InvalidDetail(status=422, message=summary(found), problems=found)
        return web.json_response(m.Invalid(error=detail).model_dump(), status=422)
    user = user_of(request)
    async with sessionmaker(request).begin() as s:
        cycle = await writable_cycle(request, s)
        saved = [
            await schools.upsert_self_rating(
                s, cycle.id, i["key"], i["value"], i["number"], i["comment"], i["status"], user.id
            )
            for i in items
        ]
    return web.json_response(
        {"cycle": cycle.id, "saved": [_rating_json(r) for r in saved]}, status=200
    )


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


# --- the OpenAPI document: schemas from api_models, operations and their answers here ------


def _ref(name: str, kind: str = "schemas") -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _ok(model: type, description: str, links: dict[str, Any] | None = None) -> dict[str, Any]:
    out = {"description": description, "content": _json(_ref(model.__name__))}
    if links:
        out["links"] = links
    return out


def _link(operation_id: str, pointer: str, description: str) -> dict[str, Any]:
    """An OpenAPI link: the cycle id at `pointer` of this answer is the target's `id`."""
    return {
        "operationId": operation_id,
        "parameters": {"id": f"$response.body#{pointer}"},
        "description": description,
    }


def _cycle_links(pointer: str, *targets: str) -> dict[str, Any]:
    what = {
        "getReport": "Its report",
        "getRates": "Its response rates",
        "getSelfRatings": "Its self-ratings",
        "postSelfRatings": "Rate its indicators",
    }
    return {t: _link(t, pointer, what[t]) for t in targets}


# Error answers, each {"error": {"status", "message"}} (422: with the problems by field).
_ERROR_ANSWERS: dict[str, tuple[str, str, str, dict[str, Any]]] = {
    # status: (component name, description, schema, headers)
    "400": (
        "BadRequest",
        "The body is not JSON text (not UTF-8, a lone surrogate, or nested too deeply). "
        "Nothing is stored.",
        "Error",
        {},
    ),
    "401": (
        "Unauthorized",
        "No token, or an invalid one.",
        "Error",
        {"WWW-Authenticate": {"required": True, "schema": {"type": "string", "const": "Bearer"}}},
    ),
    "403": (
        "Forbidden",
        "The account may read this school (or round) but not take this step.",
        "Error",
        {},
    ),
    "404": ("NotFound", "No such resource among the schools you may read.", "Error", {}),
    "405": (
        "MethodNotAllowed",
        "The path does not take this method; `Allow` names those it takes.",
        "Error",
        {"Allow": {"required": True, "schema": {"type": "string"}}},
    ),
    "409": (
        "Conflict",
        "The body is fine, but the round's or the school's state does not allow the step now "
        "(a closed round, nothing submitted yet, a request answered or a certificate revoked "
        "already, an assessor with a conflict of interest). Nothing is stored.",
        "Error",
        {},
    ),
    "413": ("TooLarge", "The body is larger than the server takes.", "Error", {}),
    "422": (
        "Invalid",
        "The body is JSON but does not fit the schema (e.g. an unknown indicator key, a value "
        "off the scale), or a field the schema cannot judge alone does not do (a cycle of "
        "another school, a validity that ends before it starts, a user who is not one of the "
        "agency's assessors): every problem is named by field. Nothing is stored.",
        "Invalid",
        {},
    ),
}


def _errors(*statuses: str) -> dict[str, Any]:
    return {s: _ref(_ERROR_ANSWERS[s][0], "responses") for s in (*statuses, "405")}


_CYCLE_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ROW_ID},
    "description": "The cycle's id (404 unless it belongs to a school you may read).",
}


def _id_param(name: str, what: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ROW_ID},
        "description": what,
    }


def _write(
    summary: str,
    description: str,
    operation_id: str,
    params: list[dict[str, Any]],
    body: type | None,
    answers: dict[str, tuple[type, str]],
    errors: tuple[str, ...],
) -> dict[str, Any]:
    """A certification step: its body's schema, its answers, its errors."""
    back = {
        "getRoundSchool": {
            "operationId": "getRoundSchool",
            "parameters": {
                "round_id": "$response.body#/round_id",
                "school_id": "$response.body#/school_id",
            },
            "description": "The school in the round, with this step's result",
        }
    }
    op: dict[str, Any] = {
        "summary": summary,
        "description": description,
        "operationId": operation_id,
        "parameters": params,
        "responses": {
            **{status: _ok(model, text, back) for status, (model, text) in answers.items()},
            **_errors("401", "404", *errors),
        },
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": _json(_ref(body.__name__))}
    return {"post": op}


def _round_paths() -> dict[str, Any]:
    """Certification and accreditation: rounds, their schools, one school in a round."""
    round_id = _id_param("round_id", "The round's id (404 unless your account reaches it).")
    school_id = _id_param("school_id", "The school's id (404 unless you may read it there).")
    return {
        "/api/rounds": {
            "get": {
                "summary": "The certification and accreditation rounds your account reaches",
                "description": (
                    "A board member: the agency's rounds; an assessor: the rounds with a "
                    "school assigned to it; a school's user: the rounds its school is in or "
                    "may submit to."
                ),
                "operationId": "listRounds",
                "responses": {"200": _ok(m.Rounds, "The rounds"), **_errors("401")},
            }
        },
        "/api/rounds/{round_id}": {
            "get": {
                "summary": "A round's schools: status, newest submission, assessors, decision",
                "operationId": "getRound",
                "parameters": [round_id],
                "responses": {"200": _ok(m.RoundDetail, "The round"), **_errors("401", "404")},
            }
        },
        "/api/rounds/{round_id}/schools/{school_id}": {
            "get": {
                "summary": "One school in a round: submissions, snapshot, reviews, decision",
                "description": (
                    "The snapshot is what the school submitted, frozen: figures that passed "
                    "the anonymity gate, never an answer or free text."
                ),
                "operationId": "getRoundSchool",
                "parameters": [round_id, school_id],
                "responses": {
                    "200": _ok(m.SchoolInRound, "The school in the round"),
                    **_errors("401", "404"),
                },
            }
        },
        **_round_steps(round_id, school_id),
    }


def _round_steps(round_id: dict[str, Any], school_id: dict[str, Any]) -> dict[str, Any]:
    """The steps of a round, each the page's use case (`backend.certification.service`)."""
    sch = "/api/rounds/{round_id}/schools/{school_id}"
    both = [round_id, school_id]
    body = ("400", "413", "422")
    request_id = _id_param("request_id", "The evidence request's id (in this round and school).")
    return {
        sch + "/submissions": _write(
            "Submit one of the school's cycles to the round (the school's coordinator)",
            "Freezes the cycle as a new version of the school's submission (the earlier "
            "ones are kept) with the SHA-256 of its snapshot: the figures that passed the "
            "anonymity gate, the evidence portfolio and the action plan, never an answer or "
            "free text. 409: the round is closed, or (accreditation) does not list the school.",
            "postSubmission",
            both,
            m.SubmissionInput,
            {"201": (m.Submitted, "The new version")},
            ("403", "409", *body),
        ),
        sch + "/ratings": _write(
            "Rate an indicator (an assessor assigned to the school)",
            "Agree with the school's own rating, or propose another (0..4) with a reason; "
            "a new rating of the indicator replaces the assessor's last. 409: the round is "
            "closed, the submitted version does not rate the indicator, or the school did "
            "not rate it (agreeing needs a rating to agree with).",
            "postReviewRating",
            both,
            m.review_rating_input(),
            {"200": (m.RatingSaved, "The rating as stored")},
            ("403", "409", *body),
        ),
        sch + "/requests": _write(
            "Ask the school for more evidence on an indicator (an assigned assessor)",
            "The school sees the request on its certification page and answers it once; "
            "the request and the answer are kept. 409: nothing submitted yet, or the "
            "submitted version has no such indicator.",
            "postEvidenceRequest",
            both,
            m.evidence_request_input(),
            {"201": (m.RequestSaved, "The request")},
            ("403", "409", *body),
        ),
        sch + "/requests/{request_id}/answer": _write(
            "Answer an evidence request (the school's coordinator)",
            "An answer is given once and kept as given. 409: answered already.",
            "postEvidenceAnswer",
            [*both, request_id],
            m.EvidenceAnswerInput,
            {"200": (m.RequestSaved, "The request with its answer")},
            ("403", "409", *body),
        ),
        sch + "/decision": _write(
            "Record the board's decision on the school (a board member)",
            "Certified, certified with conditions (required), or not yet; a certificate "
            "has a validity period (`valid_until` after `valid_from`). A new decision "
            "replaces the last; the school sees it in the dashboard. 409: the school has "
            "not submitted to the round.",
            "postDecision",
            both,
            m.DecisionInput,
            {"201": (m.DecisionSaved, "The decision, with its verification page")},
            ("403", "409", *body),
        ),
        sch + "/decision/revoke": _write(
            "Revoke the school's certificate (a board member)",
            "The certificate's public verification page says it is revoked. No body. "
            "409: no certificate, or revoked already.",
            "postRevocation",
            both,
            None,
            {"200": (m.DecisionSaved, "The revoked decision")},
            ("403", "409"),
        ),
        sch + "/assessors": _write(
            "Assign one of the agency's assessors to the school (a board member)",
            "The conflict-of-interest rule of the pages: not an assessor who works at the "
            "school, nor (when the round excludes the cluster) at a school of its cluster "
            "(409). 201: assigned; 200: assigned already, nothing done.",
            "postAssignment",
            both,
            m.AssignmentInput,
            {
                "201": (m.Assigned, "Assigned"),
                "200": (m.Assigned, "Assigned already: nothing done"),
            },
            ("403", "409", *body),
        ),
    }


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document: every body's schema is its pydantic model's."""
    cycle_ops = ("getReport", "getRates", "getSelfRatings", "postSelfRatings")
    doc = {
        "openapi": "3.1.0",
        "info": {
            "title": "guidance-survey API",
            "version": "1.2.0",
            "description": (
                "Cycles, response rates, the triangulation report and the self-assessment of "
                "the schools your account may read; certification and accreditation rounds, "
                "their submissions, reviews and decisions, and the steps of a round (submit, "
                "rate, ask for evidence, answer, decide, revoke, assign) under the pages' "
                "rules, each recorded in the round's audit trail. Authenticate with "
                "`Authorization: Bearer <token>` (no cookie, so no CSRF token either); the "
                "token is on your account page in the dashboard and changes when "
                "your password does. Every figure in the report has passed the anonymity gate. "
                'Errors answer `{"error": {"status": ..., "message": ...}}`.'
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": {
            "/api/openapi.json": {
                "get": {
                    "summary": "This document",
                    "operationId": "getOpenAPI",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "The OpenAPI document",
                            "content": _json({"type": "object"}),
                        },
                        "405": _ref("MethodNotAllowed", "responses"),
                    },
                }
            },
            "/api/me": {
                "get": {
                    "summary": "The account the token belongs to",
                    "operationId": "me",
                    "responses": {"200": _ok(m.User, "The account"), **_errors("401")},
                }
            },
            "/api/schools/{slug}/cycles": {
                "get": {
                    "summary": "A school's assessment cycles, newest first",
                    "operationId": "listCycles",
                    "parameters": [
                        {
                            "name": "slug",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                            "description": "The school's short name (404 unless you may read it).",
                        }
                    ],
                    "responses": {
                        "200": _ok(
                            m.SchoolCycles,
                            "The school and its cycles",
                            _cycle_links("/cycles/0/id", *cycle_ops),
                        ),
                        **_errors("401", "404"),
                    },
                }
            },
            "/api/cycles/{id}/report": {
                "get": {
                    "summary": "The triangulation report (anonymity rules applied)",
                    "operationId": "getReport",
                    "parameters": [_CYCLE_ID],
                    "responses": {
                        "200": _ok(
                            m.Report,
                            "The report",
                            {
                                **_cycle_links("/cycle/id", "getRates", "getSelfRatings"),
                                "listCycles": {
                                    "operationId": "listCycles",
                                    "parameters": {"slug": "$response.body#/school/slug"},
                                    "description": "The school's cycles",
                                },
                            },
                        ),
                        **_errors("401", "404"),
                    },
                }
            },
            "/api/cycles/{id}/rates": {
                "get": {
                    "summary": "Started and completed responses per role, beside the targets",
                    "operationId": "getRates",
                    "parameters": [_CYCLE_ID],
                    "responses": {
                        "200": _ok(m.Rates, "The rates", _cycle_links("/cycle", "getReport")),
                        **_errors("401", "404"),
                    },
                }
            },
            "/api/cycles/{id}/self-ratings": {
                "get": {
                    "summary": "The school's own ratings of the indicators",
                    "operationId": "getSelfRatings",
                    "parameters": [_CYCLE_ID],
                    "responses": {
                        "200": _ok(
                            m.SelfRatings,
                            "The ratings (without comments for a peer reviewer)",
                            _cycle_links("/cycle", "postSelfRatings"),
                        ),
                        **_errors("401", "404"),
                    },
                },
                "post": {
                    "summary": "Set self-ratings: a point of the scale (`value`) or a number",
                    "description": (
                        "The indicator's key decides what a rating takes: `value` 0..4 for an "
                        "indicator on a scale, `number` within its bounds for a count or a "
                        "rate. All or nothing: one refused rating stores none."
                    ),
                    "operationId": "postSelfRatings",
                    "parameters": [_CYCLE_ID],
                    "requestBody": {
                        "required": True,
                        "content": _json(_ref(m.self_ratings_input().__name__)),
                    },
                    "responses": {
                        "200": _ok(
                            m.SavedSelfRatings,
                            "The ratings as stored",
                            _cycle_links("/cycle", "getSelfRatings", "getReport"),
                        ),
                        **_errors("400", "401", "403", "404", "413", "422"),
                    },
                },
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                name: {
                    "description": text,
                    "content": _json(_ref(schema)),
                    **({"headers": headers} if headers else {}),
                }
                for name, text, schema, headers in _ERROR_ANSWERS.values()
            },
            "schemas": m.component_schemas(),
        },
    }
    doc["paths"].update(_round_paths())
    return doc


def routes() -> list[tuple[str, str, Any, str]]:
    c = "/api/cycles/{cycle_id:\\d+}"
    return [
        ("GET", "/api/openapi.json", openapi, "api:openapi"),
        ("GET", "/api/me", me, "api:me"),
        ("GET", "/api/schools/{slug}/cycles", school_cycles, "api:cycles"),
        ("GET", c + "/report", cycle_report, "api:report"),
        ("GET", c + "/rates", cycle_rates, "api:rates"),
        ("GET", c + "/self-ratings", get_self_ratings, "api:self_ratings"),
        ("POST", c + "/self-ratings", post_self_ratings, "api:self_ratings_post"),
    ]
