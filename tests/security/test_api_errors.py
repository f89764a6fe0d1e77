"""The JSON API's answers to malformed and hostile requests, each a finding of a Schemathesis
review (`--checks all`, stateful): a 4xx with a JSON message that names the problem, never
a 500, and nothing stored on a refused request. On SQLite and PostgreSQL (the `world`
bench): some of these were 500s on one database only (NUL bytes and 32-bit ids on
PostgreSQL, lone surrogates on both).
"""

from __future__ import annotations

from typing import Any

from backend.dashboard.auth import API_TOKEN_PREFIX
from storage import repo
from tests.security.bench import World, login, session_csrf


def _error(status: int, answer: dict[str, Any]) -> str:
    """The message of a JSON error answer, after checking its shape."""
    assert set(answer) == {"error"}, answer
    assert answer["error"]["status"] == status, answer
    message = answer["error"]["message"]
    assert isinstance(message, str) and message, answer
    return message


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


async def test_a_nul_in_a_school_slug_is_404_not_500(world: World):
    w, client = world, world.client
    for slug in ("%00", "alpha%00", "%00alpha"):
        resp = await client.get(f"/api/schools/{slug}/cycles", headers=w.a.api_headers)
        assert resp.status == 404, (slug, resp.status)
        _error(404, await resp.json())
    assert (await login(client, w.a.email)).status == 303
    for slug in ("%00", "alpha%00"):
        resp = await client.get(f"/dashboard/schools/{slug}", allow_redirects=False)
        assert resp.status == 404, (slug, resp.status)
        for action in ("cycles", "languages"):
            resp = await client.post(
                f"/dashboard/schools/{slug}/{action}",
                data={"csrf": session_csrf(client), "name": "x", "languages": "en"},
                allow_redirects=False,
            )
            assert resp.status == 404, (slug, action, resp.status)
    async with w.sm() as s:
        assert len(await repo.list_cycles(s, w.a.school_id)) == 2
