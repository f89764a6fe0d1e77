"""The JSON API's answers to malformed and hostile requests, each a finding of a Schemathesis
review (`--checks all`, stateful): a 4xx with a JSON message that names the problem, never
a 500, and nothing stored on a refused request. On SQLite and PostgreSQL (the `world`
bench): some of these were 500s on one database only (NUL bytes and 32-bit ids on
PostgreSQL, lone surrogates on both).
"""

from __future__ import annotations

import io
import json
from typing import Any

from backend.dashboard.auth import API_TOKEN_PREFIX
from storage import schools
from tests.security.bench import World, login, session_csrf


def _ratings_url(w: World) -> str:
    return f"/api/cycles/{w.a.cycle_id}/self-ratings"


async def _stored(w: World) -> dict[str, Any]:
    async with w.sm() as s:
        ratings = await schools.list_self_ratings(s, w.a.cycle_id)
    return {k: (r.value, r.number, r.comment, r.status) for k, r in ratings.items()}


async def _post(w: World, body: Any) -> tuple[int, dict[str, Any]]:
    """POST a body (bytes as they are, anything else as JSON) to school A's self-ratings."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    resp = await w.client.post(
        _ratings_url(w),
        data=data,
        headers={**w.a.api_headers, "Content-Type": "application/json"},
    )
    assert resp.content_type == "application/json", (resp.status, await resp.text())
    return resp.status, await resp.json()


def _error(status: int, answer: dict[str, Any]) -> str:
    """The message of a JSON error answer, after checking its shape."""
    assert set(answer) == {"error"}, answer
    assert answer["error"]["status"] == status, answer
    message = answer["error"]["message"]
    assert isinstance(message, str) and message, answer
    return message


async def test_a_non_string_indicator_key_is_refused_not_a_500(world: World):
    w = world
    before = await _stored(w)
    for bad, where in (
        ({"key": ["FL-1"]}, "ratings[0].key"),
        ({"key": {"FL-1": 1}, "value": 1}, "ratings[0].key"),
        ({"key": 7, "value": 1}, "ratings[0].key"),
        ({"key": None}, "ratings[0].key"),
        ({"value": 1}, "ratings[0]"),
        ("FL-1", "ratings[0]"),
    ):
        status, answer = await _post(w, {"ratings": [bad]})
        assert status == 422, (bad, status, answer)
        assert where in _error(422, answer), (bad, answer)
        # Beside a valid rating: nothing of the request is stored.
        status, answer = await _post(w, {"ratings": [{"key": "FL-1", "value": 2}, bad]})
        assert status == 422, (bad, status, answer)
        assert where.replace("[0]", "[1]") in _error(422, answer), (bad, answer)
    assert await _stored(w) == before


async def test_a_nul_or_a_lone_surrogate_in_a_comment_is_refused_not_a_500(world: World):
    w = world
    before = await _stored(w)
    status, answer = await _post(
        w, {"ratings": [{"key": "FL-1", "value": 1, "comment": "before\x00after"}]}
    )
    assert status == 422, (status, answer)
    assert "ratings[0].comment" in _error(422, answer)
    # A lone surrogate is no Unicode text (JSON's grammar allows the escape, UTF-8 does not).
    for raw in (
        rb'{"ratings": [{"key": "FL-1", "value": 1, "comment": "\ud800"}]}',
        rb'{"ratings": [{"key": "FL-1", "value": 1, "comment": "x\udfff"}]}',
        rb'{"ratings": [{"key": "FL-1", "value": 1, "comment": "\ud83d"}]}',
    ):
        status, answer = await _post(w, raw)
        assert status == 400, (raw, status, answer)
        assert "JSON" in _error(400, answer)
    assert await _stored(w) == before
    # A surrogate pair is a character like any other: stored as sent.
    raw = rb'{"ratings": [{"key": "FL-1", "value": 1, "comment": "ok \ud83d\ude00"}]}'
    status, answer = await _post(w, raw)
    assert status == 200, (status, answer)
    assert (await _stored(w))["FL-1"] == (1, None, "ok \U0001f600", "draft")


async def test_a_nul_in_a_school_slug_is_400_not_500(world: World):
    """No text holds a NUL: refused as bad input (backend.web.input_guard) before any lookup."""
    w, client = world, world.client
    for slug in ("%00", "alpha%00", "%00alpha"):
        resp = await client.get(f"/api/schools/{slug}/cycles", headers=w.a.api_headers)
        assert resp.status == 400, (slug, resp.status)
        _error(400, await resp.json())
    assert (await login(client, w.a.email)).status == 303
    for slug in ("%00", "alpha%00"):
        resp = await client.get(f"/dashboard/schools/{slug}", allow_redirects=False)
        assert resp.status == 400, (slug, resp.status)
        for action in ("cycles", "languages"):
            resp = await client.post(
                f"/dashboard/schools/{slug}/{action}",
                data={"csrf": session_csrf(client), "name": "x", "languages": "en"},
                allow_redirects=False,
            )
            assert resp.status == 400, (slug, action, resp.status)
    async with w.sm() as s:
        assert len(await schools.list_cycles(s, w.a.school_id)) == 2


async def test_405_answers_keep_the_allow_header(world: World):
    w, client = world, world.client
    c = w.a.cycle_id
    for method, path, allowed in (
        ("PUT", "/api/me", {"GET"}),
        ("DELETE", f"/api/cycles/{c}/self-ratings", {"GET", "POST"}),
        ("PATCH", f"/api/cycles/{c}/report", {"GET"}),
        ("POST", "/api/openapi.json", {"GET"}),
    ):
        resp = await client.request(method, path, headers=w.a.api_headers)
        assert resp.status == 405, (method, path, resp.status)
        _error(405, await resp.json())
        assert "Allow" in resp.headers, (method, path, dict(resp.headers))
        assert {m.strip() for m in resp.headers["Allow"].split(",")} == allowed, resp.headers
    # The dashboard's pages too.
    assert (await login(client, w.a.email)).status == 303
    resp = await client.put(f"/dashboard/cycles/{c}", allow_redirects=False)
    assert resp.status == 405
    assert "GET" in resp.headers.get("Allow", ""), dict(resp.headers)


async def test_a_token_whose_user_id_overflows_the_column_is_401_not_500(world: World):
    w, client = world, world.client
    signature = w.a.token.rsplit("_", 1)[1]
    for uid in ("999999999999", str(2**31), str(2**32 + w.a.user_id), "0", "\u00b2", "\u0661"):
        token = f"{API_TOKEN_PREFIX}_{uid}_{signature}"
        resp = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 401, (uid, resp.status)
        assert resp.headers.get("WWW-Authenticate") == "Bearer"
        _error(401, await resp.json())
    # The real token still works.
    assert (await client.get("/api/me", headers=w.a.api_headers)).status == 200


async def test_deeply_nested_json_is_400_not_500(world: World):
    w = world
    before = await _stored(w)
    for raw in (
        b"[" * 100_000,
        b'{"ratings": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"ratings": [{"key": "FL-1", "comment": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_000,
    ):
        status, answer = await _post(w, raw)
        assert status == 400, (raw[:40], status, answer)
        message = _error(400, answer)
        assert "JSON" in message and "nested too deeply" in message, message
    assert await _stored(w) == before
    # A body that is not JSON at all, or not UTF-8: 400 too.
    for raw in (b"", b"{", b'{"ratings": [}', b"\xff\xfe{}"):
        status, answer = await _post(w, raw)
        assert status == 400, (raw, status, answer)
        assert "JSON" in _error(400, answer)


async def test_a_body_over_the_size_limit_is_a_json_413(world: World):
    w = world
    before = await _stored(w)
    limit = w.app._client_max_size  # what aiohttp reads of a body at most
    body = {"ratings": [{"key": "FL-1", "value": 1, "comment": "x" * (limit + 1024)}]}
    resp = await w.client.post(
        _ratings_url(w),
        data=io.BytesIO(json.dumps(body).encode()),  # raw bytes this large: a ResourceWarning
        headers={**w.a.api_headers, "Content-Type": "application/json"},
    )
    assert resp.status == 413, resp.status
    _error(413, await resp.json())
    assert await _stored(w) == before
