"""SQL injection in every query parameter, form field, path segment and API body; path
traversal on the static routes; evidence uploads with hostile names, sizes and types.

No request answers 500, none shows school B's data, and every table is intact afterwards
(school B's rows unchanged; new rows only where our own forms legitimately made them).
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from aiohttp import FormData

from tests.security.bench import B_MARK, World, login, session_csrf
from tests.security.sweep import (
    FILTERS,
    FORM,
    PUBLIC,
    RESPONDENT,
    a_path_values,
    ids_in_table,
    params,
    snapshot,
)

SQLI = ["' OR 1=1 --", '1;DROP TABLE answer;" UNION SELECT email FROM user_account --']
SLOW_SUFFIXES = (".pdf", ".svg", ".png", ".xlsx", "/compare")


async def _paths(w: World, route: Any, payload: str, ids: dict[str, str]) -> list[str]:
    """The route with our ids, and with the payload in each free-text path segment."""
    names = params(route)
    own = ids | a_path_values(w)
    if not names:
        return [route.resource.canonical]
    paths = [route.resource.url_for(**{n: own[n] for n in names}).path]
    for n in names:
        if n in ("slug", "key", "code", "fmt"):  # segments that take any text
            parts = {m: own[m] for m in names}
            parts[n] = payload
            paths.append(str(route.resource.url_for(**parts)))
    return paths


async def test_sql_injection_everywhere(world: World):
    w, client = world, world.client
    assert (await login(client, w.a.email)).status == 303
    before = await snapshot(w)
    ids: dict[str, str] = {}  # our rows of other tables, taken before the sweep deletes any
    for route in w.app.router.routes():
        for n in params(route):
            if n.endswith("_id") and n not in ("cycle_id", "invite_id", "evidence_id"):
                found = await ids_in_table(w, n, w.a.school_id, [w.a.cycle_id])
                ids.setdefault(n, str(found[0]))
    problems = []
    for payload in SQLI:
        for route in w.app.router.routes():
            if route.method not in ("GET", "POST") or route.name in ("dash:logout",):
                continue
            if route.name in PUBLIC and route.name not in ("dash:login_submit",):
                continue
            for path in await _paths(w, route, payload, ids):
                if path.endswith(SLOW_SUFFIXES):  # charts and files: swept in test_content
                    continue
                query = {k: payload for k in (*FILTERS, "next", "link", "v", "q")}
                headers = w.a.api_headers if path.startswith("/api/") else {}
                if route.method == "GET":
                    resp = await client.get(
                        path, params=query, headers=headers, allow_redirects=False
                    )
                elif path.startswith("/api/"):
                    body = {"ratings": [{"key": payload, "value": 1, "comment": payload}]}
                    resp = await client.post(path, json=body, headers=headers)
                else:
                    data = {k: payload for k in FORM} | {
                        "csrf": session_csrf(client),
                        "email": payload,
                        "password": payload,
                    }
                    resp = await client.post(path, data=data, allow_redirects=False)
                text = (await resp.read()).decode("utf-8", "replace")
                where = f"{route.method} {path} [{payload}]"
                if resp.status >= 500:
                    problems.append(f"{where}: {resp.status}")
                if B_MARK in text or "coord@beta" in text:
                    problems.append(f"{where}: shows school B's data")
                if RESPONDENT.match(route.name or "") is None and "syntax error" in text.lower():
                    problems.append(f"{where}: a database error shows")
    assert not problems, "\n".join(problems)
    after = await snapshot(w)
    assert set(after) == set(before), "a table is gone"
    for table, rows in before.items():
        gone = set(rows) - set(after[table])
        for row in gone:  # only our own rows may have been changed, by our own forms
            assert B_MARK not in row, (table, row)
    for table in ("answer", "response", "comment", "respondent", "school", "user_account"):
        assert len(after[table]) == len(before[table]), table


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_static_routes_refuse_traversal(world: World):
    client = world.client
    for prefix in ("/static/dashboard/", "/static/webchat/"):
        for evil in (
            "..%2f..%2f..%2fpyproject.toml",
            "..%2f..%2fapp.py",
            "%2e%2e/%2e%2e/app.py",
            "..%252f..%252fapp.py",
            "....//....//app.py",
            "..\\..\\app.py",
            "%2e%2e%2f%2e%2e%2fsettings.py",
        ):
            resp = await client.get(prefix + evil, allow_redirects=False)
            body = await resp.text()
            assert resp.status in (400, 403, 404), (prefix + evil, resp.status)
            assert "def create_app" not in body and "[project]" not in body
            assert "SECRET_KEY" not in body


def _upload_form(csrf: str, filename: str, data: bytes, **fields: str) -> FormData:
    form = FormData()
    form.add_field("csrf", csrf)
    form.add_field(
        "file", io.BytesIO(data), filename=filename, content_type="application/octet-stream"
    )
    for k, v in fields.items():
        form.add_field(k, v)
    return form


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_hostile_evidence_uploads(world: World, tmp_path):
    from storage import schools

    w, client = world, world.client
    assert (await login(client, w.a.email)).status == 303
    url = f"/dashboard/cycles/{w.a.cycle_id}/indicators/VL-2/evidence"
    store = w.settings.data_dir / "evidence"
    files_before = set(store.iterdir())
    outside = tmp_path / "evil.pdf"

    async def post(form: Any, **kw: Any) -> int:
        resp = await client.post(url, data=form, allow_redirects=False, **kw)
        await resp.read()
        return resp.status

    async def added() -> list[Any]:
        async with w.sm() as s:
            return await schools.list_evidence(s, w.a.cycle_id, "VL-2")

    # A traversal name: stored under a random name in the store, shown sanitised.
    name = "../../../" + str(outside.relative_to("/")).replace("evil.pdf", "") + "evil.pdf"
    assert await post(_upload_form(session_csrf(client), name, b"%PDF-1.4 ok")) == 303
    assert not outside.exists()
    items = await added()
    assert [i.filename for i in items] == ["evil.pdf"]
    new = set(store.iterdir()) - files_before
    assert len(new) == 1 and next(iter(new)).parent == store
    # Oversized, streamed without a Content-Length: refused, nothing left behind.
    big = io.BytesIO(b"%PDF-1.4 " + b"0" * (10 * 1024 * 1024 + 10))
    assert await post(_upload_form(session_csrf(client), "big.pdf", big.getvalue())) in (303, 413)
    # ... and with a Content-Length announcing more than the limit: 413 at once.
    form = _upload_form(session_csrf(client), "big2.pdf", b"%PDF-" + b"0" * (11 * 1024 * 1024))
    assert await post(form) == 413
    # HTML or SVG in disguise, or by name: refused.
    for fname, data in (
        ("page.pdf", b"<html><script>alert(1)</script></html>"),
        ("page.html", b"<html><script>alert(1)</script></html>"),
        ("chart.svg", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'),
        ("x.png", b"GIF89a not a png"),
        ("notes.txt", b"\x00\x01binary"),
    ):
        assert await post(_upload_form(session_csrf(client), fname, data)) == 303
    # Links that would run script: refused.
    for link in ("javascript:alert(1)", "data:text/html,<script>alert(1)</script>", "//evil"):
        resp = await client.post(url, data={"csrf": session_csrf(client), "url": link, "note": "x"})
        assert resp.status == 200  # the indicator page, with the refusal
    assert len(await added()) == 1
    assert set(store.iterdir()) - files_before == new
    # The stored file downloads as an attachment that cannot run in the page.
    item = (await added())[0]
    resp = await client.get(f"/dashboard/cycles/{w.a.cycle_id}/evidence/{item.id}")
    assert resp.status == 200
    assert resp.headers["Content-Disposition"].startswith("attachment;")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in resp.headers["Content-Security-Policy"]


async def test_ids_beyond_the_integer_range_are_404_not_500(world: World):
    w, client = world, world.client
    assert (await login(client, w.a.email)).status == 303
    huge = str(2**63 + 5)
    for path in (
        f"/api/cycles/{huge}/report",
        f"/dashboard/cycles/{huge}",
        f"/dashboard/cycles/{w.a.cycle_id}/invites/{huge}/qr.png",
        f"/dashboard/cycles/{w.a.cycle_id}/evidence/{huge}",
        f"/dashboard/cycles/{2**31}",
    ):
        headers = w.a.api_headers if path.startswith("/api/") else {}
        resp = await client.get(path, headers=headers)
        assert resp.status == 404, path
