"""/api/openapi.json describes the API exactly: the answers each operation can give, the
model's indicator keys as an enum, null where the server takes null, every response property
required. And the server agrees with it: a body the document allows is stored (200), one it
refuses is refused (nothing stored); the real answers fit the document's response schemas.
On SQLite and PostgreSQL (the `world` bench).
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema_rs

from conversations.model import load_model
from storage import schools
from tests.security.bench import World

OPERATIONS = {
    ("get", "/api/openapi.json"),
    ("get", "/api/me"),
    ("get", "/api/schools/{slug}/cycles"),
    ("get", "/api/cycles/{id}/report"),
    ("get", "/api/cycles/{id}/rates"),
    ("get", "/api/cycles/{id}/self-ratings"),
    ("post", "/api/cycles/{id}/self-ratings"),
    ("get", "/api/rounds"),
    ("get", "/api/rounds/{round_id}"),
    ("get", "/api/rounds/{round_id}/schools/{school_id}"),
}
# The steps of a round: their success answers (each also answers 409).
STEPS = {
    "/submissions": {"201"},
    "/ratings": {"200"},
    "/requests": {"201"},
    "/requests/{request_id}/answer": {"200"},
    "/decision": {"201"},
    "/decision/revoke": {"200"},
    "/assessors": {"200", "201"},
}
OPERATIONS |= {("post", "/api/rounds/{round_id}/schools/{school_id}" + p) for p in STEPS}
JSON = {"Content-Type": "application/json"}


async def _document(w: World) -> dict[str, Any]:
    resp = await w.client.get("/api/openapi.json")
    assert resp.status == 200
    return await resp.json()


def _deref(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _validator(doc: dict[str, Any], schema: dict[str, Any]) -> Any:
    return jsonschema_rs.Draft202012Validator(
        {**schema, "components": doc["components"]}, validate_formats=True
    )


def _body_schema(doc: dict[str, Any]) -> dict[str, Any]:
    post = doc["paths"]["/api/cycles/{id}/self-ratings"]["post"]
    return post["requestBody"]["content"]["application/json"]["schema"]


def _rating_variants(doc: dict[str, Any]) -> list[dict[str, Any]]:
    body = _deref(doc, _body_schema(doc))
    items = _deref(doc, body["properties"]["ratings"]["items"])
    return [_deref(doc, v) for v in items["oneOf"]]


def _walk_objects(doc: dict[str, Any], node: Any, seen: set[int]) -> Any:
    """Every object schema reachable from `node` (through refs, unions, arrays, maps)."""
    if not isinstance(node, dict) or id(node) in seen:
        return
    seen.add(id(node))
    node = _deref(doc, node)
    if node.get("type") == "object" and "properties" in node:
        yield node
    for sub in node.get("properties", {}).values():
        yield from _walk_objects(doc, sub, seen)
    for key in ("items", "additionalProperties"):
        yield from _walk_objects(doc, node.get(key), seen)
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in node.get(key, []):
            yield from _walk_objects(doc, sub, seen)


async def test_every_operation_lists_the_answers_it_can_give(world: World):
    doc = await _document(world)
    found = {(m, p) for p, item in doc["paths"].items() for m in item}
    assert found == OPERATIONS
    for method, path in OPERATIONS:
        op = doc["paths"][path][method]
        statuses = set(op["responses"])
        public = op.get("security") == []
        step = path.removeprefix("/api/rounds/{round_id}/schools/{school_id}")
        want = STEPS.get(step, {"200"}) | {"405"} | (set() if public else {"401"})
        if "{" in path:
            want.add("404")
        if method == "post":
            want |= {"403"} if step == "/decision/revoke" else {"400", "403", "413", "422"}
        if step in STEPS:
            want.add("409")
        assert statuses == want, (method, path, sorted(statuses))
        for status, answer in op["responses"].items():
            answer = _deref(doc, answer)
            assert answer["description"], (path, status)
            schema = answer["content"]["application/json"]["schema"]
            _deref(doc, schema)  # resolves
            if status == "405":
                assert answer["headers"]["Allow"]["required"] is True
            if status == "401":
                assert answer["headers"]["WWW-Authenticate"]["required"] is True


async def test_the_rating_key_is_an_enum_of_the_models_indicators(world: World):
    doc = await _document(world)
    keys: list[str] = []
    for variant in _rating_variants(doc):
        key = variant["properties"]["key"]
        assert key["type"] == "string" and ("enum" in key or "const" in key), key
        keys += key.get("enum", [key.get("const")])
        assert "key" in variant["required"]
    assert len(keys) == len(set(keys)), "a key in two variants"
    assert set(keys) == set(load_model().index())
    assert len(keys) == 71


async def test_null_is_allowed_where_the_server_takes_it(world: World):
    doc = await _document(world)
    body_ok = _validator(doc, _body_schema(doc))
    for key in load_model().index():
        nulls = {"key": key, "value": None, "number": None, "comment": None}
        assert body_ok.is_valid({"ratings": [nulls]}), key
    assert body_ok.is_valid({"ratings": [{"key": "FL-1", "value": 1, "comment": None}]})
    assert body_ok.is_valid({"ratings": [{"key": "FL-3.1", "number": None, "value": None}]})
    assert not body_ok.is_valid({"ratings": [{"key": "FL-1", "status": None}]})


async def test_response_properties_are_all_required_and_no_others_sent(world: World):
    doc = await _document(world)
    checked = 0
    seen: set[int] = set()
    for path, item in doc["paths"].items():
        for op in item.values():
            for answer in op["responses"].values():
                schema = _deref(doc, answer)["content"]["application/json"]["schema"]
                for obj in _walk_objects(doc, schema, seen):
                    assert set(obj.get("required", [])) == set(obj["properties"]), (path, obj)
                    assert obj.get("additionalProperties") is False, (path, obj)
                    checked += 1
    assert checked >= 20


async def _stored(w: World) -> dict[str, Any]:
    async with w.sm() as s:
        ratings = await schools.list_self_ratings(s, w.a.cycle_id)
    return {k: (r.value, r.number, r.comment, r.status) for k, r in ratings.items()}


# Bodies the old document and the server disagreed on, and their neighbours.
BODIES: list[Any] = [
    {"ratings": [{"key": "FL-1", "value": None, "number": None, "comment": None}]},
    {"ratings": [{"key": "FL-1", "value": 4, "comment": "ok", "status": "submitted"}]},
    {"ratings": [{"key": "FL-1", "value": 2.0}]},
    {"ratings": [{"key": "FL-1", "value": 5}]},
    {"ratings": [{"key": "FL-1", "value": 2.5}]},
    {"ratings": [{"key": "FL-1", "value": True}]},
    {"ratings": [{"key": "FL-1", "value": "2"}]},
    {"ratings": [{"key": "FL-1", "number": 3}]},
    {"ratings": [{"key": "FL-3.1", "number": 500}]},
    {"ratings": [{"key": "FL-3.1", "number": 501}]},
    {"ratings": [{"key": "FL-3.1", "number": 12.0}]},
    {"ratings": [{"key": "FL-3.1", "number": 12.5}]},
    {"ratings": [{"key": "FL-3.1", "value": 3}]},
    {"ratings": [{"key": "FL-3.1", "number": None, "value": None}]},
    {"ratings": [{"key": "WS-7.1", "number": 12.5}]},
    {"ratings": [{"key": "WS-7.1", "number": 100.5}]},
    {"ratings": [{"key": "WS-7.1", "number": "12"}]},
    {"ratings": [{"key": "NOPE", "value": 1}]},
    {"ratings": [{"key": "fl-1", "value": 1}]},
    {"ratings": [{"key": ["FL-1"], "value": 1}]},
    {"ratings": [{"key": "FL-1", "comment": "x" * 4000}]},
    {"ratings": [{"key": "FL-1", "comment": "x" * 4001}]},
    {"ratings": [{"key": "FL-1", "comment": "nul\x00"}]},
    {"ratings": [{"key": "FL-1", "comment": 7}]},
    {"ratings": [{"key": "FL-1", "status": "final"}]},
    {"ratings": [{"key": "FL-1", "value": 1, "updated_at": "2026-01-01", "extra": [1]}]},
    {"ratings": [{"key": "FL-1", "value": 1}] * 500},
    {"ratings": [{"key": "FL-1", "value": 1}] * 501},
    {"ratings": []},
    {"ratings": None},
    {},
    [],
    "FL-1",
    None,
]


async def test_the_server_takes_exactly_the_bodies_the_document_allows(world: World):
    w = world
    doc = await _document(w)
    body_ok = _validator(doc, _body_schema(doc))
    post = doc["paths"]["/api/cycles/{id}/self-ratings"]["post"]["responses"]
    answers = {
        status: _validator(doc, _deref(doc, post[status])["content"]["application/json"]["schema"])
        for status in ("200", "422")
    }
    url = f"/api/cycles/{w.a.cycle_id}/self-ratings"
    for body in BODIES:
        before = await _stored(w)
        data = json.dumps(body).encode()  # json=None would send no body
        resp = await w.client.post(url, data=data, headers={**w.a.api_headers, **JSON})
        answer = await resp.json()
        where = (str(body)[:80], resp.status, str(answer)[:300])
        if body_ok.is_valid(body):
            assert resp.status == 200, where
            assert answers["200"].is_valid(answer), where
        else:
            assert resp.status == 422, where
            assert answers["422"].is_valid(answer), where
            assert answer["error"]["problems"], where
            assert await _stored(w) == before, where


async def test_the_real_answers_fit_the_documented_schemas(world: World):
    w = world
    doc = await _document(w)
    c = w.a.cycle_id
    await w.client.post(
        f"/api/cycles/{c}/self-ratings",
        json={"ratings": [{"key": "FL-3.1", "number": 12}, {"key": "WS-7.1", "number": 7.5}]},
        headers=w.a.api_headers,
    )
    for path, url in (
        ("/api/me", "/api/me"),
        ("/api/schools/{slug}/cycles", f"/api/schools/{w.a.slug}/cycles"),
        ("/api/cycles/{id}/report", f"/api/cycles/{c}/report"),
        ("/api/cycles/{id}/rates", f"/api/cycles/{c}/rates"),
        ("/api/cycles/{id}/self-ratings", f"/api/cycles/{c}/self-ratings"),
        ("/api/rounds", "/api/rounds"),
        ("/api/rounds/{round_id}", f"/api/rounds/{w.a.round_id}"),
        (
            "/api/rounds/{round_id}/schools/{school_id}",
            f"/api/rounds/{w.a.round_id}/schools/{w.a.school_id}",
        ),
    ):
        resp = await w.client.get(url, headers=w.a.api_headers)
        assert resp.status == 200, url
        answer = await resp.json()
        schema = doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
        errors = [str(e) for e in _validator(doc, schema["schema"]).iter_errors(answer)]
        assert not errors, (url, errors[:5])
