"""IDOR sweep: every route of the app, filled with the other school's ids, as our coordinator.

The routes are read from `app.router.routes()`, so a route added later is swept too; a path
parameter the sweep does not know fails the test until it is taught here (`fill`).
With school B's ids in the path, our session cookie and our API token get 401, 403, 404
or 405 and never B's data (school B's texts all carry `Bxq9`); school B's rows are the
same afterwards. With our own ids, no response carries school B's data either.
"""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy import func, select

from backend.web import keys
from storage.models import Base
from tests.security.bench import B_MARK, World, login, readable, session_csrf
from tests.security.sweep import FORM, PUBLIC, RESPONDENT, ids_in_table, params, snapshot

DENIED = {401, 403, 404, 405}


async def fill(w: World, route: Any) -> list[str]:
    """Paths of the route with school B's ids (and our cycle with B's sub-ids)."""
    names = params(route)
    info = route.resource.get_info()
    if not names:
        return [info.get("path") or info.get("prefix", "/")]
    b, a = w.b, w.a
    values: dict[str, list[dict[str, Any]]] = {}
    for n in names:
        if n == "slug":
            values[n] = [{"b": b.slug}]
        elif n == "cycle_id":
            values[n] = [{"b": b.cycle_id}, {"b": b.old_cycle_id}, {"a": a.cycle_id}]
        elif n == "invite_id":
            values[n] = [{"b": i} for i in b.invite_ids]
        elif n == "evidence_id":
            values[n] = [{"b": i} for i in b.evidence_ids]
        elif n == "code":
            values[n] = [{"b": b.invite_codes[0]}]
        elif n == "key":
            values[n] = [{"": "VL-1"}]
        elif n == "dim":
            values[n] = [{"": "1"}]
        elif n == "fmt":
            values[n] = [{"": f} for f in ("csv", "xlsx", "json", "pdf")]
        elif n.endswith("_id"):
            ids = await ids_in_table(w, n, b.school_id, [b.cycle_id, b.old_cycle_id])
            values[n] = [{"b": i} for i in ids]
        else:
            raise AssertionError(f"the IDOR sweep does not know {{{n}}} of {route.name}: teach it")
    paths = []
    for combo in itertools.product(*(values[n] for n in names)):
        owners = {k for d in combo for k in d}
        if "b" not in owners:  # only our own ids: nothing to steal
            continue
        parts = {n: str(next(iter(d.values()))) for n, d in zip(names, combo, strict=True)}
        paths.append(route.resource.url_for(**parts).path)
    return paths


def leaks(body: bytes, w: World) -> list[str]:
    t = readable(body)
    found = [m for m in (B_MARK, *w.b.invite_codes) if m in t]
    return found


async def test_every_route_refuses_the_other_schools_ids(world: World):
    w, client = world, world.client
    assert (await login(client, w.a.email)).status == 303
    before = await snapshot(w)
    seen_routes: set[str] = set()
    problems: list[str] = []
    swept = 0
    for route in w.app.router.routes():
        if route.method not in ("GET", "POST") or route.name in PUBLIC:
            continue
        respondent = bool(RESPONDENT.match(route.name or ""))
        for path in await fill(w, route):
            path_has_b = bool(params(route))  # no ids: only check that B's data stays away
            seen_routes.add(route.name or path)
            csrf = session_csrf(client)
            for creds in ("cookie", "token"):
                headers = {"X-CSRF-Token": csrf}
                if creds == "token":
                    headers["Authorization"] = w.a.api_headers["Authorization"]
                if route.method == "GET":
                    resp = await client.get(path, headers=headers, allow_redirects=False)
                elif path.startswith("/api/"):
                    resp = await client.post(
                        path,
                        json={"ratings": [{"key": "VL-1", "value": 4}]},
                        headers=headers,
                        allow_redirects=False,
                    )
                else:
                    resp = await client.post(
                        path, data={"csrf": csrf, **FORM}, headers=headers, allow_redirects=False
                    )
                body = await resp.read()
                swept += 1
                where = f"{route.method} {path} ({creds})"
                if respondent:
                    if resp.status >= 500:
                        problems.append(f"{where}: {resp.status}")
                    continue
                if path_has_b and resp.status not in DENIED:
                    problems.append(f"{where}: {resp.status}, not 401/403/404/405")
                if leaks(body, w):
                    problems.append(f"{where}: shows school B's data {leaks(body, w)}")
    assert not problems, "\n".join(problems)
    assert swept > 50
    # The routes we know exist were swept (the sweep did not silently skip them).
    for name in ("dash:cycle", "dash:export", "dash:evidence_file", "api:report", "dash:qr_png"):
        assert name in seen_routes, name
    after = await snapshot(w)
    changed = [t for t in before if before[t] != after[t]]
    # Our own rows may change (e.g. a POST with our cycle id and B's invite is refused, but
    # nothing else may). B's rows must not.
    for t in changed:
        gone = set(before[t]) - set(after[t])
        assert not gone, f"table {t}: rows changed or vanished: {sorted(gone)[:3]}"
        new = set(after[t]) - set(before[t])
        assert not any(B_MARK in r or "Hijack" in r or "Mallory" in r for r in new), (t, new)


async def test_a_peer_of_no_cluster_reads_only_their_school(world: World):
    """A peer reviewer without a shared cluster gets 404 for school B, like a coordinator."""
    from backend.dashboard.passwords import hash_password
    from storage import schools

    w, client = world, world.client
    async with w.sm.begin() as s:
        await schools.create_user(
            s, w.a.school_id, "peer@alpha.example", hash_password("peer password 123"), "peer"
        )
        n_before = await s.scalar(select(func.count()).select_from(Base.metadata.tables["cycle"]))
    assert (await login(client, "peer@alpha.example", "peer password 123")).status == 303
    for path in (
        f"/dashboard/cycles/{w.b.cycle_id}",
        f"/dashboard/cycles/{w.b.cycle_id}/export.json",
        f"/dashboard/schools/{w.b.slug}",
    ):
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 404, path
    assert w.app[keys.SESSIONMAKER] is w.sm and n_before >= 4
