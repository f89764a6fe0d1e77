"""The JSON API (Bearer token, see `auth.api_token`) and its OpenAPI 3 description.

Same access rules as the pages: another school's slug or cycle id is a 404.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from backend.analytics.report import build_report
from backend.dashboard.queries import response_rates
from backend.dashboard.views_self import parse_rating
from backend.dashboard.web import (
    cycle_for,
    for_reader,
    hides_raw,
    release_figures,
    school_for,
    sessionmaker,
    user_of,
    writable_cycle,
)
from conversations.model import load_model
from storage import repo
from storage.models import Cycle, SelfRating

MAX_RATINGS_PER_POST = 500


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
        cycles = await repo.list_cycles(s, school.id)
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
        ratings = await repo.list_self_ratings(s, cycle.id)
    rows = [_rating_json(r) for r in ratings.values()]
    if hides_raw(request, cycle.school_id):  # a peer reviewer: no free-text comments
        rows = [{**r, "comment": None} for r in rows]
    return web.json_response({"cycle": cycle.id, "ratings": rows})


def _validate(body: Any) -> list[dict[str, Any]]:
    """The ratings of a POST body, each checked against the model; ValueError lists problems."""
    if not isinstance(body, dict) or not isinstance(body.get("ratings"), list):
        raise ValueError('the body is {"ratings": [{"key": ..., "value" | "number": ...}]}')
    items = body["ratings"]
    if not 1 <= len(items) <= MAX_RATINGS_PER_POST:
        raise ValueError(f"send 1..{MAX_RATINGS_PER_POST} ratings")
    index = load_model().index()
    out, problems = [], []
    for pos, item in enumerate(items):
        if not isinstance(item, dict) or item.get("key") not in index:
            problems.append(f"ratings[{pos}]: unknown indicator key")
            continue
        ind = index[item["key"]].indicator
        status = item.get("status", "draft")
        comment = item.get("comment")
        value, number = item.get("value"), item.get("number")
        try:
            if status not in ("draft", "submitted"):
                raise ValueError(f"{ind.id}: status is draft or submitted")
            if comment is not None and (not isinstance(comment, str) or len(comment) > 4000):
                raise ValueError(f"{ind.id}: comment is a string of up to 4000 characters")
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"{ind.id}: value is an integer 0..4")
            if number is not None and (
                isinstance(number, bool) or not isinstance(number, int | float)
            ):
                raise ValueError(f"{ind.id}: number is a number")
            v, n = parse_rating(
                ind, "" if value is None else str(value), "" if number is None else str(number)
            )
            if (value is not None and v is None) or (number is not None and n is None):
                raise ValueError(f"{ind.id}: give a value for a scale, a number for a count")
        except ValueError as exc:
            problems.append(f"ratings[{pos}]: {exc}")
            continue
        out.append({"key": ind.key, "value": v, "number": n, "comment": comment, "status": status})
    if problems:
        raise ValueError("; ".join(problems))
    return out


async def post_self_ratings(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="the body is not JSON") from None
    try:
        items = _validate(body)
    except ValueError as exc:
        raise web.HTTPUnprocessableEntity(text=str(exc)) from None
    user = user_of(request)
    async with sessionmaker(request).begin() as s:
        cycle = await writable_cycle(request, s)
        saved = [
            await repo.upsert_self_rating(
                s, cycle.id, i["key"], i["value"], i["number"], i["comment"], i["status"], user.id
            )
            for i in items
        ]
    return web.json_response(
        {"cycle": cycle.id, "saved": [_rating_json(r) for r in saved]}, status=200
    )


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(OPENAPI)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _ok(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "401": {"$ref": "#/components/responses/Unauthorized"},
    "404": {"$ref": "#/components/responses/NotFound"},
}
_CYCLE_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer"},
    "description": "The cycle's id (404 unless it belongs to a school you may read).",
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "guidance-survey API",
        "version": "1.0.0",
        "description": (
            "Cycles, response rates, the triangulation report and the self-assessment of "
            "the schools your account may read. Authenticate with `Authorization: Bearer "
            "<token>`; the token is on your account page in the dashboard and changes when "
            "your password does. Every figure in the report has passed the anonymity gate."
        ),
    },
    "servers": [{"url": "/"}],
    "security": [{"bearer": []}],
    "paths": {
        "/api/me": {
            "get": {
                "summary": "The account the token belongs to",
                "operationId": "me",
                "responses": {"200": _ok(_ref("User")), "401": _ERRORS["401"]},
            }
        },
        "/api/schools/{slug}/cycles": {
            "get": {
                "summary": "A school's assessment cycles, newest first",
                "operationId": "listCycles",
                "parameters": [
                    {"name": "slug", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": _ok(
                        {
                            "type": "object",
                            "properties": {
                                "school": {"type": "object"},
                                "cycles": {"type": "array", "items": _ref("Cycle")},
                            },
                        }
                    ),
                    **_ERRORS,
                },
            }
        },
        "/api/cycles/{id}/report": {
            "get": {
                "summary": "The triangulation report (anonymity rules applied)",
                "operationId": "getReport",
                "parameters": [_CYCLE_ID],
                "responses": {"200": _ok(_ref("Report")), **_ERRORS},
            }
        },
        "/api/cycles/{id}/rates": {
            "get": {
                "summary": "Started and completed responses per role, beside the targets",
                "operationId": "getRates",
                "parameters": [_CYCLE_ID],
                "responses": {"200": _ok(_ref("Rates")), **_ERRORS},
            }
        },
        "/api/cycles/{id}/self-ratings": {
            "get": {
                "summary": "The school's own ratings of the indicators",
                "operationId": "getSelfRatings",
                "parameters": [_CYCLE_ID],
                "responses": {
                    "200": _ok(
                        {
                            "type": "object",
                            "properties": {
                                "cycle": {"type": "integer"},
                                "ratings": {"type": "array", "items": _ref("SelfRating")},
                            },
                        }
                    ),
                    **_ERRORS,
                },
            },
            "post": {
                "summary": "Set self ratings (a scale value 0..4, or a number for counts)",
                "operationId": "postSelfRatings",
                "parameters": [_CYCLE_ID],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["ratings"],
                                "properties": {
                                    "ratings": {
                                        "type": "array",
                                        "minItems": 1,
                                        "maxItems": MAX_RATINGS_PER_POST,
                                        "items": _ref("SelfRatingInput"),
                                    }
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": _ok(
                        {
                            "type": "object",
                            "properties": {
                                "cycle": {"type": "integer"},
                                "saved": {"type": "array", "items": _ref("SelfRating")},
                            },
                        }
                    ),
                    "403": {"$ref": "#/components/responses/Forbidden"},
                    "422": {"$ref": "#/components/responses/Invalid"},
                    **_ERRORS,
                },
            },
        },
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "responses": {
            name: {"description": text, "content": {"application/json": {"schema": _ref("Error")}}}
            for name, text in (
                ("Unauthorized", "No token, or an invalid one"),
                ("Forbidden", "The account may read but not change this school"),
                ("NotFound", "No such resource among the schools you may read"),
                ("Invalid", "The body does not fit the model"),
            )
        },
        "schemas": {
            "Error": {
                "type": "object",
                "properties": {
                    "error": {
                        "type": "object",
                        "properties": {
                            "status": {"type": "integer"},
                            "message": {"type": "string"},
                        },
                    }
                },
            },
            "User": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "email": {"type": "string"},
                    "role": {"type": "string", "enum": ["coordinator", "admin", "peer"]},
                    "school_id": {"type": "integer", "nullable": True},
                },
            },
            "Cycle": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "name": {"type": "string"},
                    "status": {"type": "string", "enum": ["draft", "open", "closed"]},
                    "model_version": {"type": "string"},
                    "opens_at": {"type": "string", "format": "date-time", "nullable": True},
                    "closes_at": {"type": "string", "format": "date-time", "nullable": True},
                    "targets": {"type": "object", "additionalProperties": {"type": "integer"}},
                    "thresholds": {"type": "object"},
                },
            },
            "Rates": {
                "type": "object",
                "properties": {
                    "cycle": {"type": "integer"},
                    "started": {"type": "integer"},
                    "completed": {"type": "integer"},
                    "roles": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "role": {"type": "string"},
                                "label": {"type": "string"},
                                "started": {"type": "integer"},
                                "completed": {"type": "integer"},
                                "target": {"type": "integer", "nullable": True},
                                "percent": {"type": "integer", "nullable": True},
                            },
                        },
                    },
                },
            },
            "SelfRating": {
                "type": "object",
                "properties": {
                    "key": {"type": "string", "example": "FL-1"},
                    "value": {"type": "integer", "minimum": 0, "maximum": 4, "nullable": True},
                    "number": {"type": "number", "nullable": True},
                    "comment": {"type": "string", "nullable": True},
                    "status": {"type": "string", "enum": ["draft", "submitted"]},
                    "updated_at": {"type": "string", "format": "date-time"},
                },
            },
            "SelfRatingInput": {
                "type": "object",
                "required": ["key"],
                "properties": {
                    "key": {"type": "string"},
                    "value": {"type": "integer", "minimum": 0, "maximum": 4},
                    "number": {"type": "number"},
                    "comment": {"type": "string", "maxLength": 4000},
                    "status": {
                        "type": "string",
                        "enum": ["draft", "submitted"],
                        "default": "draft",
                    },
                },
            },
            "Report": {
                "type": "object",
                "description": (
                    "Per indicator: `self`, per role `n`, `mean` (null below the anonymity "
                    "threshold), `distribution`, `na`; `gap` (group mean minus self) and "
                    "`flag` (blind_spot / hidden_strength / null)."
                ),
                "properties": {
                    "school": {"type": "object"},
                    "cycle": {"type": "object"},
                    "thresholds": {"type": "object"},
                    "roles": {"type": "object"},
                    "indicators": {"type": "array", "items": {"type": "object"}},
                    "rollups": {"type": "object"},
                    "comments": {"type": "object"},
                },
            },
        },
    },
}


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
