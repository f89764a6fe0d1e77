"""The coordinator dashboard and its JSON API, on the real app (SQLite and PostgreSQL)."""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import UTC, datetime
from typing import Any

from aiohttp import FormData

from backend.dashboard import auth
from backend.dashboard.evidence import sanitise_filename
from backend.dashboard.passwords import hash_password
from backend.web import keys
from conversations.model import load_model
from storage import responses, schools
from storage.models import Invite
from tests.apptools import add_responses, running_app, seed_school
from tests.backend.dashboard.support import (
    PASSWORD,
    add_user,
    api_headers,
    csrf_of,
    login,
    post_form,
    rate_through_api,
)


async def two_schools(client) -> tuple[Any, Any]:
    """Our school (with a coordinator logged in) and another school with its own cycle."""
    sm = client.app[keys.SESSIONMAKER]
    ours = await seed_school(sm, slug="ours", name="Our School", roles=["learner", "parent"])
    theirs = await seed_school(sm, slug="theirs", name="Their School", roles=["learner"])
    await add_user(client, "coord@ours.example", ours.school_id)
    assert (await login(client, "coord@ours.example")).status == 303
    return ours, theirs


def cookie_value(client) -> str | None:
    for c in client.session.cookie_jar:
        if c.key == auth.COOKIE:
            return c.value
    return None


# --- login, logout, sessions -------------------------------------------------------------


async def test_login_logout_and_session_rotation(settings):
    async with running_app(settings) as client:
        seeded = await seed_school(client.app[keys.SESSIONMAKER], roles=["learner"])
        await add_user(client, "Coord@Example.org", seeded.school_id)
        # Pages need a login.
        resp = await client.get("/dashboard", allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"].startswith("/login")
        before_token = await csrf_of(client)
        before_cookie = cookie_value(client)
        assert before_cookie
        resp = await client.post(
            "/login",
            data={"csrf": before_token, "email": "coord@example.org", "password": PASSWORD},
            allow_redirects=False,
        )
        assert resp.status == 303
        cookies = {h.split("=", 1)[0]: h for h in resp.headers.getall("Set-Cookie")}
        set_cookie = cookies[auth.COOKIE]
        assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie
        assert "Secure" not in set_cookie  # plain http in the test
        # This browser now vouches for the account at the login form (auth.DeviceCodec).
        device = cookies[auth.DEVICE_COOKIE]
        assert "HttpOnly" in device and "SameSite=Strict" in device and "Path=/login" in device
        after_cookie = cookie_value(client)
        after = auth.SessionCodec(client.app[keys.SECRET_KEY]).loads(after_cookie)
        before = auth.SessionCodec(client.app[keys.SECRET_KEY]).loads(before_cookie)
        assert after["sid"] != before["sid"] and after["csrf"] != before["csrf"]
        assert after["uid"] > 0
        # Logged in: the home goes to the school page.
        resp = await client.get("/dashboard")
        assert resp.status == 200 and "Test Vocational School" in await resp.text()
        # The old (pre-login) CSRF token no longer works.
        resp = await client.post("/logout", data={"csrf": before_token}, allow_redirects=False)
        assert resp.status == 403
        resp = await post_form(client, "/logout", {})
        assert resp.status == 303
        resp = await client.get("/dashboard", allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"].startswith("/login")


async def test_a_planted_session_cookie_is_not_kept_at_login(settings):
    async with running_app(settings) as client:
        seeded = await seed_school(client.app[keys.SESSIONMAKER], roles=["learner"])
        await add_user(client, "c@example.org", seeded.school_id)
        await csrf_of(client)
        planted = auth.SessionCodec(client.app[keys.SECRET_KEY]).loads(cookie_value(client))
        assert (await login(client, "c@example.org")).status == 303
        now = auth.SessionCodec(client.app[keys.SECRET_KEY]).loads(cookie_value(client))
        assert now["sid"] != planted["sid"]


async def test_wrong_password_and_unknown_user(settings):
    async with running_app(settings) as client:
        seeded = await seed_school(client.app[keys.SESSIONMAKER], roles=["learner"])
        await add_user(client, "c@example.org", seeded.school_id)
        for email, pw in (("c@example.org", "wrong password!"), ("nobody@example.org", PASSWORD)):
            resp = await login(client, email, pw)
            assert resp.status == 401
            assert "Wrong e-mail or password" in await resp.text()
        resp = await client.get("/dashboard", allow_redirects=False)
        assert resp.status == 303


async def test_forged_or_old_session_cookie_is_ignored(settings):
    async with running_app(settings) as client:
        seeded = await seed_school(client.app[keys.SESSIONMAKER], roles=["learner"])
        uid = await add_user(client, "c@example.org", seeded.school_id)
        forged = auth.SessionCodec("another secret").dumps(
            {"sid": "x", "csrf": "y", "iat": int(datetime.now(UTC).timestamp()), "uid": uid}
        )
        client.session.cookie_jar.update_cookies({auth.COOKIE: forged})
        resp = await client.get("/dashboard", allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"].startswith("/login")
        old = auth.SessionCodec(client.app[keys.SECRET_KEY]).dumps(
            {"sid": "x", "csrf": "y", "iat": 1000, "uid": uid}
        )
        client.session.cookie_jar.update_cookies({auth.COOKIE: old})
        resp = await client.get("/dashboard", allow_redirects=False)
        assert resp.status == 303


async def test_login_rate_limit(settings):
    async with running_app(settings) as client:
        seeded = await seed_school(client.app[keys.SESSIONMAKER], roles=["learner"])
        await add_user(client, "c@example.org", seeded.school_id)
        for _ in range(5):
            assert (await login(client, "c@example.org", "bad password 123")).status == 401
        resp = await login(client, "c@example.org")  # even the right password waits now
        assert resp.status == 429
        assert "Too many failed logins" in await resp.text()
        assert int(resp.headers["Retry-After"]) > 0


async def test_limiter_counts_per_key_and_forgets_after_the_window():
    now = [0.0]
    limits = auth.LoginLimits(pair=2, address=3, account=10, window=60)
    lim = auth.MemoryLoginLimiter(limits, clock=lambda: now[0])
    await lim.failed("x", "a")
    now[0] = 1
    assert await lim.blocked("x", "a") is None
    now[0] = 2
    await lim.failed("x", "a")
    await lim.failed("y", "a")
    now[0] = 3
    assert (await lim.blocked("x", "a")).bound == "pair"
    assert await lim.blocked("x", "b") is None
    assert (await lim.blocked("z", "a")).bound == "address"
    assert await lim.blocked("y", "b") is None
    now[0] = 63
    assert await lim.blocked("x", "a") is None


# --- CSRF ------------------------------------------------------------------------------


async def test_missing_or_forged_csrf_is_refused(settings):
    async with running_app(settings) as client:
        ours, _ = await two_schools(client)
        url = f"/dashboard/schools/{ours.school_slug}/cycles"
        resp = await client.post(url, data={"name": "2030/31"}, allow_redirects=False)
        assert resp.status == 403
        assert "form has expired" in await resp.text()
        resp = await client.post(
            url, data={"name": "2030/31", "csrf": "forged"}, allow_redirects=False
        )
        assert resp.status == 403
        resp = await client.post("/login", data={"email": "x@y.z", "password": "p"})
        assert resp.status == 403
        async with client.app[keys.SESSIONMAKER].begin() as s:
            assert await schools.list_cycles(s, ours.school_id) != []
            names = [c.name for c in await schools.list_cycles(s, ours.school_id)]
        assert "2030/31" not in names


# --- another school's ids -----------------------------------------------------------------


async def test_another_schools_ids_are_404_everywhere(settings):
    async with running_app(settings) as client:
        ours, theirs = await two_schools(client)
        sm = client.app[keys.SESSIONMAKER]
        async with sm.begin() as s:
            inv = (await responses.list_invites(s, theirs.cycle_id))[0]
            item = await schools.add_evidence(
                s, theirs.cycle_id, "FL-1", "link", url="https://example.org/x"
            )
        c, i = theirs.cycle_id, inv.id
        gets = [
            f"/dashboard/schools/{theirs.school_slug}",
            f"/dashboard/cycles/{c}",
            f"/dashboard/cycles/{c}/invites",
            f"/dashboard/cycles/{c}/invites/print",
            f"/dashboard/cycles/{c}/invites/{i}/qr.png",
            f"/dashboard/cycles/{c}/invites/{i}/qr.svg",
            f"/dashboard/cycles/{ours.cycle_id}/invites/{i}/qr.png",  # our cycle, their invite
            f"/dashboard/cycles/{c}/rates.json",
            f"/dashboard/cycles/{c}/self-assessment",
            f"/dashboard/cycles/{c}/indicators/FL-1",
            f"/dashboard/cycles/{c}/evidence/{item.id}",
            f"/dashboard/cycles/{ours.cycle_id}/evidence/{item.id}",
            "/dashboard/cycles/999999",
            "/dashboard/admin",
        ]
        for path in gets:
            resp = await client.get(path, allow_redirects=False)
            assert resp.status == 404, path
            assert "Not found" in await resp.text()
        posts = [
            f"/dashboard/schools/{theirs.school_slug}/cycles",
            f"/dashboard/cycles/{c}/status",
            f"/dashboard/cycles/{c}/invites",
            f"/dashboard/cycles/{c}/invites/{i}/revoke",
            f"/dashboard/cycles/{c}/self-assessment",
            f"/dashboard/cycles/{c}/self-assessment/submit",
            f"/dashboard/cycles/{c}/evidence/{item.id}/delete",
            f"/dashboard/cycles/{ours.cycle_id}/evidence/{item.id}/delete",
        ]
        for path in posts:
            resp = await post_form(
                client, path, {"name": "x", "status": "closed", "role": "learner", "theme": "1.1.1"}
            )
            assert resp.status == 404, path
        async with sm.begin() as s:
            assert (await s.get(Invite, i)).revoked_at is None
            assert (await schools.get_cycle(s, c)).status == "open"
            assert len(await schools.list_evidence(s, c)) == 1
        # The API, with our coordinator's token.
        headers = await api_headers(client, "coord@ours.example")
        for path in (
            f"/api/schools/{theirs.school_slug}/cycles",
            f"/api/cycles/{c}/report",
            f"/api/cycles/{c}/rates",
            f"/api/cycles/{c}/self-ratings",
        ):
            resp = await client.get(path, headers=headers)
            assert resp.status == 404, path
            assert (await resp.json())["error"]["status"] == 404
        assert await rate_through_api(client, c, headers) == 404


async def test_unknown_urls_get_friendly_pages(settings):
    async with running_app(settings) as client:
        resp = await client.get("/no/such/page")
        assert resp.status == 404 and "Not found" in await resp.text()
        resp = await client.get("/api/nothing")
        assert resp.status == 404 and (await resp.json())["error"]["status"] == 404


# --- escaping and uploads ------------------------------------------------------------------


async def test_script_in_a_school_name_and_an_evidence_note_is_escaped(settings):
    async with running_app(settings) as client:
        sm = client.app[keys.SESSIONMAKER]
        seeded = await seed_school(sm, name="<script>alert(1)</script> School", roles=["learner"])
        await add_user(client, "c@example.org", seeded.school_id)
        assert (await login(client, "c@example.org")).status == 303
        async with sm.begin() as s:
            await schools.add_evidence(
                s,
                seeded.cycle_id,
                "FL-1",
                "link",
                url="https://example.org/?a=<b>",
                note='<script>alert("note")</script>',
            )
        for path in (
            f"/dashboard/schools/{seeded.school_slug}",
            f"/dashboard/cycles/{seeded.cycle_id}",
            f"/dashboard/cycles/{seeded.cycle_id}/indicators/FL-1",
        ):
            resp = await client.get(path)
            text = await resp.text()
            assert resp.status == 200
            assert "<script>alert" not in text, path
            assert "&lt;script&gt;alert" in text
            assert "script-src 'self'" in resp.headers["Content-Security-Policy"]


def test_sanitise_filename():
    assert sanitise_filename("../../etc/passwd") == "passwd"
    assert sanitise_filename("..\\..\\windows\\system.ini") == "system.ini"
    assert sanitise_filename("..") == "file"
    assert sanitise_filename(".htaccess") == "htaccess"
    assert sanitise_filename("Übersicht <2025>.pdf") == "Ubersicht _2025_.pdf"
    assert len(sanitise_filename("a" * 300 + ".pdf")) <= 120


def docx_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<w:document/>")
    return buf.getvalue()


async def upload(client, cycle_id: int, key: str, filename: str, data: bytes, note: str = ""):
    token = await csrf_of(client, "/dashboard/account")
    form = FormData()
    form.add_field("csrf", token)
    form.add_field(
        "file", io.BytesIO(data), filename=filename, content_type="application/octet-stream"
    )
    form.add_field("url", "")
    form.add_field("note", note)
    return await client.post(f"/dashboard/cycles/{cycle_id}/indicators/{key}/evidence", data=form)


async def test_evidence_uploads_links_downloads_and_refusals(settings):
    async with running_app(settings) as client:
        ours, theirs = await two_schools(client)
        sm = client.app[keys.SESSIONMAKER]
        evidence_dir = settings.data_dir / "evidence"
        # A good PDF, with a path-traversal name.
        resp = await upload(
            client, ours.cycle_id, "FL-1", "../../../etc/passwd.pdf", b"%PDF-1.7\n%%EOF\n"
        )
        assert resp.status == 200
        assert "Evidence added to FL-1" in await resp.text()
        async with sm.begin() as s:
            (item,) = await schools.list_evidence(s, ours.cycle_id, "FL-1")
        assert item.filename == "passwd.pdf"
        assert re.fullmatch(r"[0-9a-f]{32}", item.stored_name)
        assert [p.name for p in evidence_dir.iterdir()] == [item.stored_name]
        assert not (settings.data_dir.parent / "etc").exists()
        resp = await client.get(f"/dashboard/cycles/{ours.cycle_id}/evidence/{item.id}")
        assert resp.status == 200
        assert await resp.read() == b"%PDF-1.7\n%%EOF\n"
        assert resp.headers["Content-Disposition"].startswith('attachment; filename="passwd.pdf"')
        assert resp.headers["Content-Type"] == "application/pdf"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        # Its size for people: a 15-byte file is not "0 KB".
        page = await (await client.get(f"/dashboard/cycles/{ours.cycle_id}/indicators/FL-1")).text()
        assert "15 bytes" in page and "0 KB" not in page
        # A docx (zip with word/), a csv.
        assert (
            await upload(client, ours.cycle_id, "FL-1", "plan.docx", docx_bytes())
        ).status == 200
        assert (await upload(client, ours.cycle_id, "FL-1", "n.csv", b"a,b\n1,2\n")).status == 200
        # Refused: wrong extension, content not matching the extension, too large.
        for name, data, why in (
            ("evil.html", b"<script>alert(1)</script>", "not accepted"),
            ("fake.pdf", b"MZ\x90\x00 not a pdf", "not a valid .pdf"),
            ("fake.png", b"%PDF-1.7", "not a valid .png"),
            ("fake.docx", b"PK\x03\x04 broken zip", "not a valid .docx"),
            ("bin.txt", b"\x00\x01\x02binary", "not a valid .txt"),
            ("big.pdf", b"%PDF-" + b"0" * (10 * 1024 * 1024), "larger than 10 MB"),
        ):
            resp = await upload(client, ours.cycle_id, "FL-2", name, data)
            text = await resp.text()
            assert resp.status in (200, 413), name
            assert why in text, name
        async with sm.begin() as s:
            assert await schools.list_evidence(s, ours.cycle_id, "FL-2") == []
            assert len(await schools.list_evidence(s, ours.cycle_id, "FL-1")) == 3
        assert len(list(evidence_dir.iterdir())) == 3  # refused files are not kept
        # Links: http(s) only.
        token = await csrf_of(client, f"/dashboard/cycles/{ours.cycle_id}/indicators/FL-3")
        for url, ok in (
            ("javascript:alert(1)", False),
            ("ftp://example.org/x", False),
            ("https://example.org/report", True),
        ):
            form = FormData()
            form.add_field("csrf", token)
            form.add_field("url", url)
            form.add_field("note", "The annual report")
            resp = await client.post(
                f"/dashboard/cycles/{ours.cycle_id}/indicators/FL-3/evidence", data=form
            )
            assert ("Evidence added" in await resp.text()) is ok, url
        # Without the CSRF field first: refused.
        form = FormData()
        form.add_field("file", b"%PDF-1.7", filename="x.pdf")
        resp = await client.post(
            f"/dashboard/cycles/{ours.cycle_id}/indicators/FL-3/evidence", data=form
        )
        assert resp.status == 403
        # Upload into another school's cycle: 404.
        resp = await upload(client, theirs.cycle_id, "FL-1", "x.pdf", b"%PDF-1.7")
        assert resp.status == 404
        # Delete removes the row and the file.
        resp = await post_form(
            client, f"/dashboard/cycles/{ours.cycle_id}/evidence/{item.id}/delete", {}
        )
        assert resp.status == 303
        assert not (evidence_dir / item.stored_name).exists()
        async with sm.begin() as s:
            assert len(await schools.list_evidence(s, ours.cycle_id)) == 3


# --- running a cycle -------------------------------------------------------------------


async def test_create_cycle_open_close_and_invites_with_qr(settings):
    async with running_app(settings) as client:
        ours, _ = await two_schools(client)
        sm = client.app[keys.SESSIONMAKER]
        resp = await post_form(
            client,
            f"/dashboard/schools/{ours.school_slug}/cycles",
            {
                "name": "2027/28",
                "opens_at": "2027-09-01",
                "closes_at": "2028-06-30",
                "target_learner": "200",
                "target_parent": "50",
            },
        )
        assert resp.status == 303
        async with sm.begin() as s:
            from storage.schools import cycle_by_name

            cycle = await cycle_by_name(s, ours.school_id, "2027/28")
        assert cycle.status == "draft" and cycle.targets == {"learner": 200, "parent": 50}
        assert cycle.model_version == load_model().version
        assert cycle.anonymity_threshold == 5
        resp = await post_form(client, f"/dashboard/cycles/{cycle.id}/status", {"status": "open"})
        assert resp.status == 303
        # Bad input is a flash, not a crash.
        resp = await post_form(
            client,
            f"/dashboard/schools/{ours.school_slug}/cycles",
            {"name": "bad", "opens_at": "2027-09-01", "closes_at": "2027-01-01"},
        )
        assert resp.status == 303
        # Invites: 3 single-use, 1 shared for 30.
        url = f"/dashboard/cycles/{cycle.id}/invites"
        resp = await post_form(
            client, url, {"role": "learner", "count": "3", "kind": "single", "days": "30"}
        )
        assert resp.status == 303
        resp = await post_form(
            client,
            url,
            {
                "role": "parent",
                "count": "1",
                "kind": "shared",
                "max_uses": "30",
                "label": "Parents' evening",
            },
        )
        assert resp.status == 303
        resp = await post_form(client, url, {"role": "nobody", "count": "1"})
        assert resp.status == 303
        async with sm.begin() as s:
            invites = await responses.list_invites(s, cycle.id)
        assert [(i.role, i.max_uses) for i in invites] == [("learner", 1)] * 3 + [("parent", 30)]
        page = await (await client.get(url)).text()
        for inv in invites:
            assert inv.code in page
            assert f"/s/{inv.code}" in page
        assert "Parents&#39; evening" in page
        # QR codes.
        png = await client.get(f"{url}/{invites[0].id}/qr.png")
        assert png.status == 200 and png.content_type == "image/png"
        assert (await png.read()).startswith(b"\x89PNG\r\n\x1a\n")
        svg = await client.get(f"{url}/{invites[0].id}/qr.svg")
        assert svg.status == 200 and svg.content_type == "image/svg+xml"
        import xml.etree.ElementTree as ET  # our own server's output

        root = ET.fromstring(await svg.text())  # noqa: S314
        assert root.tag.endswith("svg")
        # Printable sheet: one card per active invite.
        sheet = await (await client.get(f"{url}/print")).text()
        assert sheet.count('class="card"') == 4
        # Revoke.
        resp = await post_form(client, f"{url}/{invites[0].id}/revoke", {})
        assert resp.status == 303
        async with sm.begin() as s:
            assert (await s.get(Invite, invites[0].id)).revoked_at is not None
        sheet = await (await client.get(f"{url}/print")).text()
        assert sheet.count('class="card"') == 3
        # Close: the overview's button leads to a confirmation page; closing without it asks.
        status_url = f"/dashboard/cycles/{cycle.id}/status"
        overview = await (await client.get(f"/dashboard/cycles/{cycle.id}")).text()
        assert f'href="/dashboard/cycles/{cycle.id}/close"' in overview
        assert f'action="{status_url}"' not in overview  # no one-click close
        resp = await post_form(client, status_url, {"status": "closed"})
        assert resp.status == 303
        assert resp.headers["Location"] == f"/dashboard/cycles/{cycle.id}/close"
        async with sm.begin() as s:
            assert (await schools.get_cycle(s, cycle.id)).status == "open"
        confirm = await (await client.get(f"/dashboard/cycles/{cycle.id}/close")).text()
        assert "Close the cycle" in confirm and "No, keep it open" in confirm
        assert 'name="confirm" value="yes"' in confirm
        resp = await post_form(client, status_url, {"status": "closed", "confirm": "yes"})
        assert resp.headers["Location"] == f"/dashboard/cycles/{cycle.id}"
        async with sm.begin() as s:
            assert (await schools.get_cycle(s, cycle.id)).status == "closed"
        # A closed cycle has nothing to confirm: its page leads back to the overview.
        resp = await client.get(f"/dashboard/cycles/{cycle.id}/close", allow_redirects=False)
        assert resp.status == 303


async def test_rates_json_counts_per_role(settings):
    async with running_app(settings) as client:
        ours, theirs = await two_schools(client)
        sm = client.app[keys.SESSIONMAKER]
        await add_responses(sm, ours.cycle_id, "learner", "learner@1", 3, {})
        await add_responses(sm, ours.cycle_id, "learner", "learner@1", 2, {}, completed=False)
        await add_responses(sm, theirs.cycle_id, "learner", "learner@1", 4, {})
        data = await (await client.get(f"/dashboard/cycles/{ours.cycle_id}/rates.json")).json()
        learner = next(r for r in data["roles"] if r["role"] == "learner")
        assert (learner["started"], learner["completed"]) == (5, 3)
        assert (data["started"], data["completed"]) == (5, 3)
        page = await (await client.get(f"/dashboard/cycles/{ours.cycle_id}")).text()
        assert "rates.js" in page and "Response rates" in page


# --- self-assessment -------------------------------------------------------------------


def first_theme_with_number():
    model = load_model()
    for p in model.placed():
        if p.indicator.number is not None:
            return p.theme_id
    raise AssertionError


async def test_self_assessment_draft_then_submit(settings):
    model = load_model()
    placed = model.placed()
    async with running_app(settings) as client:
        ours, _ = await two_schools(client)
        sm = client.app[keys.SESSIONMAKER]
        url = f"/dashboard/cycles/{ours.cycle_id}/self-assessment"
        page = await (await client.get(url)).text()
        first = placed[0]
        assert first.indicator.id in page and "Means of verification" in page
        assert "To a large extent" in page or "Fully achieved" in page
        theme = first.theme_id
        keys_in_theme = [p.indicator.key for p in placed if p.theme_id == theme]
        data = {"theme": theme, "action": "draft"}
        for k in keys_in_theme:
            ind = model.indicator(k)
            if ind.number:
                data[f"n:{k}"] = str(int(ind.number.min) + 1)
            else:
                data[f"v:{k}"] = "3"
        data[f"c:{keys_in_theme[0]}"] = "Our careers week, every year"
        resp = await post_form(client, url, data, csrf_page=url)
        assert resp.status == 303 and resp.headers["Location"].endswith(f"#theme-{theme}")
        async with sm.begin() as s:
            ratings = await schools.list_self_ratings(s, ours.cycle_id)
        assert set(ratings) == set(keys_in_theme)
        assert {r.status for r in ratings.values()} == {"draft"}
        assert ratings[keys_in_theme[0]].comment == "Our careers week, every year"
        # A number indicator out of bounds is refused, the rest of the theme is saved.
        ntheme = first_theme_with_number()
        nkey = next(p.indicator for p in placed if p.theme_id == ntheme and p.indicator.number)
        resp = await post_form(
            client, url, {"theme": ntheme, f"n:{nkey.key}": str(nkey.number.max + 1)}, csrf_page=url
        )
        assert resp.status == 303
        page = await (await client.get(url)).text()
        assert "Not saved" in page and nkey.id in page
        # Bad scale value.
        resp = await post_form(
            client, url, {"theme": theme, f"v:{keys_in_theme[0]}": "9"}, csrf_page=url
        )
        async with sm.begin() as s:
            assert (await schools.list_self_ratings(s, ours.cycle_id))[keys_in_theme[0]].value == 3
        # Progress shows.
        plain = re.sub(r"<[^>]+>", "", page)
        assert f"{len(keys_in_theme)} of {len(placed)} indicators rated" in plain
        # Submit all.
        resp = await post_form(client, url + "/submit", {}, csrf_page=url)
        assert resp.status == 303
        async with sm.begin() as s:
            ratings = await schools.list_self_ratings(s, ours.cycle_id)
        assert {r.status for r in ratings.values()} == {"submitted"}
        page = await (await client.get(url)).text()
        assert "Self-assessment submitted" in page


# --- results ---------------------------------------------------------------------------


async def test_overview_heatmap_gaps_and_drilldown(settings):
    async with running_app(settings) as client:
        ours, _ = await two_schools(client)
        sm = client.app[keys.SESSIONMAKER]
        from backend.web.app import create_app  # noqa: F401  (the banks are loaded by the app)
        from conversations.banks import load_banks

        bank = load_banks()["learner"] if isinstance(load_banks(), dict) else None
        async with sm.begin() as s:
            await responses.sync_question_map(s, load_banks().values())
            qmap = await responses.question_map(s, bank.tag)
        qid, inds = next(iter(qmap.items()))
        key = inds[0]
        async with sm.begin() as s:
            await schools.upsert_self_rating(s, ours.cycle_id, key, value=4)
        # Learners answer on the same bank tag as the question map.
        await add_responses(sm, ours.cycle_id, "learner", bank.tag, 6, {qid: 1})
        await add_responses(sm, ours.cycle_id, "parent", "parent@1", 2, {})
        page = await (await client.get(f"/dashboard/cycles/{ours.cycle_id}")).text()
        assert "Triangulation heatmap" in page
        assert 'class="cell blind_spot"' in page or "blind spot" in page
        assert "Biggest gaps" in page and f">{key}<" in page
        drill = await (
            await client.get(f"/dashboard/cycles/{ours.cycle_id}/indicators/{key}")
        ).text()
        assert "Learners" in drill and "What each group says" in drill
        resp = await client.get(f"/dashboard/cycles/{ours.cycle_id}/indicators/NO-SUCH")
        assert resp.status == 404


# --- admin -----------------------------------------------------------------------------


async def test_admin_creates_schools_and_coordinators(settings):
    async with running_app(settings) as client:
        await add_user(client, "admin@example.org", None, role="admin")
        assert (await login(client, "admin@example.org")).status == 303
        resp = await post_form(
            client, "/dashboard/admin/schools", {"slug": "new-school", "name": "New <b>School</b>"}
        )
        assert resp.status == 303
        resp = await post_form(
            client,
            "/dashboard/admin/users",
            {
                "email": "new@example.org",
                "password": PASSWORD,
                "role": "coordinator",
                "school": "new-school",
            },
        )
        assert resp.status == 303
        page = await (await client.get("/dashboard/admin")).text()
        assert "new@example.org" in page and "New &lt;b&gt;School&lt;/b&gt;" in page
        # The new coordinator logs in and lands on their school.
        await post_form(client, "/logout", {})
        resp = await login(client, "new@example.org")
        resp = await client.get("/dashboard")
        assert resp.status == 200 and "New &lt;b&gt;School" in await resp.text()


def test_access_decision():
    from storage.models import User

    admin = User(id=1, role="admin", school_id=None, email="a@x", password_hash="h")
    coord = User(id=2, role="coordinator", school_id=7, email="c@x", password_hash="h")
    peer = User(id=3, role="peer", school_id=7, email="p@x", password_hash="h")
    assert auth.readable_schools(admin).reads(99)
    assert auth.readable_schools(coord).reads(7) and not auth.readable_schools(coord).reads(8)
    assert auth.readable_schools(peer, peer_schools=[8]).reads(8)
    assert not auth.readable_schools(peer).reads(8)
    assert auth.may_write(coord, 7) and not auth.may_write(coord, 8)
    assert not auth.may_write(peer, 7) and auth.may_write(admin, 8)


# --- API -------------------------------------------------------------------------------


async def test_api_token_auth_and_endpoints(settings):
    async with running_app(settings) as client:
        ours, _ = await two_schools(client)
        # The account page shows the token.
        page = await (await client.get("/dashboard/account")).text()
        headers = await api_headers(client, "coord@ours.example")
        assert headers["Authorization"].removeprefix("Bearer ") in page
        c = ours.cycle_id
        for bad in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Bearer gst_1_forged"}):
            resp = await client.get(f"/api/cycles/{c}/rates", headers=bad)
            assert resp.status == 401
            assert (await resp.json())["error"]["status"] == 401
        # The session cookie is not an API credential.
        assert (await client.get(f"/api/cycles/{c}/rates")).status == 401
        me = await (await client.get("/api/me", headers=headers)).json()
        assert me["email"] == "coord@ours.example"
        cycles = await (
            await client.get(f"/api/schools/{ours.school_slug}/cycles", headers=headers)
        ).json()
        assert [x["id"] for x in cycles["cycles"]] == [c]
        rates = await (await client.get(f"/api/cycles/{c}/rates", headers=headers)).json()
        assert {r["role"] for r in rates["roles"]} >= {"learner", "parent"}
        resp = await client.post(
            f"/api/cycles/{c}/self-ratings",
            json={
                "ratings": [
                    {"key": "FL-1", "value": 3, "comment": "ok"},
                    {"key": "FL-2", "value": 2, "status": "submitted"},
                ]
            },
            headers=headers,
        )
        assert resp.status == 200, await resp.text()
        assert [x["key"] for x in (await resp.json())["saved"]] == ["FL-1", "FL-2"]
        got = await (await client.get(f"/api/cycles/{c}/self-ratings", headers=headers)).json()
        assert {r["key"]: r["value"] for r in got["ratings"]} == {"FL-1": 3, "FL-2": 2}
        for bad_body in (
            {"ratings": [{"key": "NOPE", "value": 1}]},
            {"ratings": [{"key": "FL-1", "value": 7}]},
            {"ratings": [{"key": "FL-1", "value": True}]},
            {"ratings": []},
            ["not", "an", "object"],
        ):
            resp = await client.post(
                f"/api/cycles/{c}/self-ratings", json=bad_body, headers=headers
            )
            assert resp.status == 422, bad_body
        report = await (await client.get(f"/api/cycles/{c}/report", headers=headers)).json()
        assert report["cycle"]["id"] == c
        fl1 = next(i for i in report["indicators"] if i["key"] == "FL-1")
        assert fl1["self"] == 3
        # A new password revokes the token.
        async with client.app[keys.SESSIONMAKER].begin() as s:
            user = await schools.get_user_by_email(s, "coord@ours.example")
            user.password_hash = hash_password("another password 1")
        assert (await client.get("/api/me", headers=headers)).status == 401
        # ... and ends the session.
        resp = await client.get("/dashboard/account", allow_redirects=False)
        assert resp.status == 303


async def test_peer_reads_but_does_not_write(settings):
    async with running_app(settings) as client:
        sm = client.app[keys.SESSIONMAKER]
        seeded = await seed_school(sm, roles=["learner"])
        await add_user(client, "peer@example.org", seeded.school_id, role="peer")
        assert (await login(client, "peer@example.org")).status == 303
        assert (await client.get(f"/dashboard/cycles/{seeded.cycle_id}")).status == 200
        resp = await post_form(
            client, f"/dashboard/cycles/{seeded.cycle_id}/status", {"status": "closed"}
        )
        assert resp.status == 403
        headers = await api_headers(client, "peer@example.org")
        assert await rate_through_api(client, seeded.cycle_id, headers) == 403


async def test_openapi_document_parses(settings):
    async with running_app(settings) as client:
        resp = await client.get("/api/openapi.json")
        assert resp.status == 200
        doc = json.loads(await resp.text())
        assert doc["openapi"].startswith("3.")
        for path in (
            "/api/schools/{slug}/cycles",
            "/api/cycles/{id}/report",
            "/api/cycles/{id}/rates",
            "/api/cycles/{id}/self-ratings",
        ):
            assert path in doc["paths"]
        assert set(doc["paths"]["/api/cycles/{id}/self-ratings"]) == {"get", "post"}

        def refs(node):
            if isinstance(node, dict):
                for k, v in node.items():
                    if k == "$ref":
                        yield v
                    else:
                        yield from refs(v)
            elif isinstance(node, list):
                for v in node:
                    yield from refs(v)

        for ref in refs(doc):
            _, _section, name = ref.removeprefix("#/").partition("/")
            assert name.split("/")[-1] in doc["components"][name.split("/")[0]], ref


async def test_charts_and_exports(settings):
    async with running_app(settings) as client:
        ours, theirs = await two_schools(client)
        sm = client.app[keys.SESSIONMAKER]
        async with sm.begin() as s:
            await schools.upsert_self_rating(s, ours.cycle_id, "FL-1", value=3)
        await add_responses(sm, ours.cycle_id, "learner", "learner@1", 6, {})
        base = f"/dashboard/cycles/{ours.cycle_id}"
        page = await (await client.get(base)).text()
        for path in ("/charts/gaps.svg", "/charts/dimension-1.svg", "/export.csv", "/export.pdf"):
            assert base + path in page
        for path in (
            "/charts/heatmap.svg",
            "/charts/gaps.svg",
            "/charts/dimension-1.svg",
            "/charts/indicator/FL-1.svg",
        ):
            resp = await client.get(base + path)
            assert resp.status == 200, path
            assert resp.content_type == "image/svg+xml"
            assert b"<svg" in await resp.read()
        magic = {"csv": b"", "xlsx": b"PK\x03\x04", "json": b"{", "pdf": b"%PDF-"}
        for fmt, start in magic.items():
            resp = await client.get(f"{base}/export.{fmt}")
            assert resp.status == 200, fmt
            assert resp.headers["Content-Disposition"].startswith("attachment;")
            assert (await resp.read()).startswith(start)
        for path in ("/charts/dimension-9.svg", "/charts/indicator/NOPE.svg", "/export.exe"):
            assert (await client.get(base + path)).status == 404, path
        other = f"/dashboard/cycles/{theirs.cycle_id}"
        for path in ("/charts/gaps.svg", "/charts/heatmap.svg", "/export.csv", "/export.pdf"):
            assert (await client.get(other + path)).status == 404, path


async def test_an_api_token_can_be_replaced(settings):
    """A leaked token is replaced from the account page: the old one stops at once, the new
    one works, the password and the session are untouched; a token issued before the
    feature existed (version 0) keeps working until then."""
    async with running_app(settings) as client:
        await two_schools(client)
        old = await api_headers(client, "coord@ours.example")
        assert (await client.get("/api/me", headers=old)).status == 200
        resp = await post_form(client, "/dashboard/account/token", {})
        assert resp.status == 303 and resp.headers["Location"] == "/dashboard/account"
        assert (await client.get("/api/me", headers=old)).status == 401
        page = await (await client.get("/dashboard/account")).text()
        assert "Your API token was replaced" in page
        new = await api_headers(client, "coord@ours.example")
        assert new != old
        assert new["Authorization"].removeprefix("Bearer ") in page
        assert (await client.get("/api/me", headers=new)).status == 200
        # without the form's CSRF token nothing is replaced
        resp = await client.post("/dashboard/account/token", allow_redirects=False)
        assert resp.status == 403
        assert (await client.get("/api/me", headers=new)).status == 200
