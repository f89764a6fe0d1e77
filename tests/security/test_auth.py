"""Login brute force, session fixation, logout, and CSRF on every POST route of the dashboard.

The password check is replaced by a fast one here (argon2 takes a second per try on this
machine); the limiter, the session handling and the routes are the real ones. SQLite only:
nothing here depends on the database.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp import FormData

from backend.dashboard import auth, views_account
from tests.security.bench import PASSWORD, World, csrf_of, login, session_cookie, session_csrf
from tests.security.sweep import FORM, ids_in_table, params, snapshot

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture(autouse=True)
def fast_passwords(monkeypatch):
    monkeypatch.setattr(views_account, "verify_password", lambda h, p: p == PASSWORD)


async def _try(client, email: str, password: str, ip: str) -> int:
    resp = await login(client, email, password, headers={"X-Test-Ip": ip})
    return resp.status


async def test_failures_from_one_address_do_not_lock_the_account_elsewhere(world: World, fake_ip):
    client = world.client
    for _ in range(auth.PAIR_LIMIT):
        assert await _try(client, world.a.email, "wrong password 123", "10.0.0.1") == 401
    # That address waits, whatever the password and however the e-mail is spelled ...
    assert await _try(client, world.a.email, PASSWORD, "10.0.0.1") == 429
    assert await _try(client, " " + world.a.email.upper(), PASSWORD, "10.0.0.1") == 429
    # ... while the coordinator elsewhere logs in, and another account from there too.
    assert await _try(client, world.a.email, PASSWORD, "10.0.0.2") == 303
    assert await _try(client, world.b.email, PASSWORD, "10.0.0.1") == 303


async def test_guessing_from_many_addresses_is_slowed(world: World, fake_ip):
    client = world.client
    for i in range(auth.ACCOUNT_SLOW_AFTER):
        assert await _try(client, world.a.email, "wrong password 123", f"10.0.0.{i}") == 401
    resp = await login(client, world.a.email, PASSWORD, headers={"X-Test-Ip": "10.0.0.99"})
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) <= auth.ACCOUNT_SPACING + 1
    # Another account is not slowed by it.
    assert await _try(client, world.b.email, PASSWORD, "10.0.0.97") == 303


async def test_the_limit_holds_per_ip_across_accounts(world: World, fake_ip):
    client = world.client
    for i in range(auth.ADDRESS_LIMIT):
        assert await _try(client, f"nobody{i}@example.org", "whatever pass", "10.9.9.9") == 401
    assert await _try(client, world.a.email, PASSWORD, "10.9.9.9") == 429
    assert await _try(client, world.a.email, PASSWORD, "10.9.9.10") == 303


async def test_a_forwarded_for_header_does_not_reset_the_limit(world: World):
    """TRUSTED_PROXIES is empty: X-Forwarded-For is anybody's to write, and ignored."""
    client = world.client
    for _ in range(auth.PAIR_LIMIT):
        assert (await login(client, world.a.email, "wrong password 123")).status == 401
    resp = await login(client, world.a.email, PASSWORD, headers={"X-Forwarded-For": "1.2.3.4"})
    assert resp.status == 429


async def test_a_planted_cookie_is_not_the_session_after_login(world: World):
    client = world.client
    await csrf_of(client)
    planted = session_cookie(client)
    assert (await login(client, world.a.email)).status == 303
    after = session_cookie(client)
    assert after and after != planted
    # The attacker, holding the planted cookie, is not logged in.
    async with (
        aiohttp.ClientSession(cookies={auth.COOKIE: planted}) as attacker,
        attacker.get(client.make_url("/dashboard/account"), allow_redirects=False) as resp,
    ):
        assert resp.status == 303 and resp.headers["Location"].startswith("/login")


async def test_logout_ends_the_session_in_this_browser(world: World):
    client = world.client
    assert (await login(client, world.a.email)).status == 303
    resp = await client.post("/logout", data={"csrf": session_csrf(client)}, allow_redirects=False)
    assert resp.status == 303
    resp = await client.get("/dashboard/account", allow_redirects=False)
    assert resp.status == 303


async def test_a_copied_cookie_is_dead_after_logout(world: World):
    client = world.client
    assert (await login(client, world.a.email)).status == 303
    stolen = session_cookie(client)
    resp = await client.post("/logout", data={"csrf": session_csrf(client)}, allow_redirects=False)
    assert resp.status == 303
    async with (
        aiohttp.ClientSession(cookies={auth.COOKIE: stolen}) as attacker,
        attacker.get(client.make_url("/dashboard/account"), allow_redirects=False) as resp,
    ):
        assert resp.status == 303


def _own_path(world: World, route: Any) -> str | None:
    own = {
        "slug": world.a.slug,
        "cycle_id": world.a.cycle_id,
        "invite_id": world.a.invite_ids[0],
        "evidence_id": world.a.evidence_ids[0],
        "key": "VL-1",
    }
    names = params(route)
    if any(n not in own for n in names):
        return None
    if not names:
        return route.resource.canonical
    return route.resource.url_for(**{n: str(own[n]) for n in names}).path


async def test_every_post_route_refuses_a_missing_or_forged_csrf_token(world: World):
    """Every dashboard POST route (read from the router), with our own ids: 403, no change."""
    client = world.client
    assert (await login(client, world.a.email)).status == 303
    good = session_csrf(client)
    before = await snapshot(world)
    checked = []
    for route in world.app.router.routes():
        if route.method != "POST" or not (route.name or "").startswith("dash:"):
            continue
        path = _own_path(world, route)
        if path is None:  # an id we do not fill by name: take one of our school's rows
            parts = {}
            for n in params(route):
                if n in ("cycle_id",):
                    parts[n] = str(world.a.cycle_id)
                elif n == "slug":
                    parts[n] = world.a.slug
                elif n == "key":
                    parts[n] = "VL-1"
                else:
                    ids = await ids_in_table(world, n, world.a.school_id, [world.a.cycle_id])
                    parts[n] = str(ids[0])
            path = route.resource.url_for(**parts).path
        for token in (None, "forged-" + good[7:], ""):
            data = dict(FORM)
            if token is not None:
                data["csrf"] = token
            resp = await client.post(path, data=data, allow_redirects=False)
            assert resp.status == 403, (route.name, path, token, resp.status)
            # as multipart too (the evidence upload reads its CSRF field itself)
            form = FormData()
            if token is not None:
                form.add_field("csrf", token)
            for k, v in data.items():
                if k != "csrf":
                    form.add_field(k, v)
            resp = await client.post(path, data=form, allow_redirects=False)
            assert resp.status == 403, (route.name, path, "multipart", token, resp.status)
        checked.append(route.name)
    assert {"dash:cycle_create", "dash:evidence_add", "dash:logout"} <= set(checked)
    assert before == await snapshot(world)
    # Still logged in: the forged logout did nothing.
    assert (await client.get("/dashboard/account", allow_redirects=False)).status == 200


async def test_the_session_cookie_is_no_api_credential(world: World):
    client = world.client
    assert (await login(client, world.a.email)).status == 303
    resp = await client.post(
        f"/api/cycles/{world.a.cycle_id}/self-ratings",
        json={"ratings": [{"key": "VL-1", "value": 4}]},
        headers={"X-CSRF-Token": session_csrf(client)},
    )
    assert resp.status == 401
