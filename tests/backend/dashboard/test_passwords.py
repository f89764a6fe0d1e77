"""Password rules (common passwords, the e-mail) wherever a password is set, and the page
that changes one: the current password first, CSRF, the login limits, other sessions end.

The change page runs on the real app (SQLite; the database is a bystander); argon2 is real
here, so each hash or check takes a moment.
"""

from __future__ import annotations

import random
import string
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from backend.cli import app as cli
from backend.dashboard import auth
from backend.dashboard.passwords import (
    GUESSABLE,
    IS_EMAIL,
    MAX_LENGTH,
    TOO_LONG,
    TOO_SHORT,
    PasswordRefused,
    check_password,
    common_passwords,
    hash_password,
    verify_password,
)
from backend.web import keys
from storage import schools
from storage.models import User
from tests.apptools import create_schema, make_settings, running_app
from tests.security.bench import csrf_of, login, session_cookie

EMAIL = "Jane.Doe@school.example"
PASSWORD = "correct horse battery"
NEW = "staple lantern orbit"


def reason(password: str, email: str = "") -> str | None:
    try:
        check_password(password, email)
    except PasswordRefused as exc:
        return exc.reason
    return None


# --- the rules ----------------------------------------------------------------------------


def test_the_shipped_list_is_the_common_passwords():
    common = common_passwords()
    assert len(common) == 30_000
    assert {"123456", "password", "qwerty", "iloveyou", "1q2w3e4r5t", "qwertyuiop"} <= common
    assert all(p == p.casefold() and p.strip() == p and p for p in common)


@pytest.mark.parametrize(
    "password",
    [
        "password123",
        "PASSWORD123",  # case does not matter
        "Qwertyuiop",
        "1234567890",
        "iloveyou!!!",  # digits and symbols around a common one
        "Dragon2024!",
        "!!Monkey1987",
        "  sunshine12  ",
        "aaaaaaaaaaaa",  # one or two characters over and over
        "abababababab",
    ],
)
def test_common_passwords_are_refused(password):
    assert reason(password) == GUESSABLE


@pytest.mark.parametrize(
    "password",
    ["Jane.Doe@school.example", "jane.doe@SCHOOL.example", "jane.doe2024", "JaneDoe!!!!!"],
)
def test_the_email_and_its_local_part_are_refused(password):
    assert reason(password, EMAIL) == IS_EMAIL
    assert reason(password, "someone.else@school.example") != IS_EMAIL


def test_length_and_good_passwords():
    assert reason("short") == TOO_SHORT
    assert reason("Kq7#zP2!w") == TOO_SHORT  # 9 characters
    assert reason("Kq7#zP2!wL") is None  # 10
    assert reason("ab cd ef gh " * 100) == TOO_LONG  # longer than the login form reads
    assert len("ab cd ef gh " * 100) > MAX_LENGTH
    for good in (PASSWORD, "demo-password", "Jane's school garden", "dragonfly orchard 7"):
        assert reason(good, EMAIL) is None, good
    rng = random.Random(20261206)
    alphabet = string.ascii_letters + string.digits + "-_!?"
    for _ in range(500):  # random passwords are never "common"
        assert reason("".join(rng.choices(alphabet, k=12))) is None


def test_hash_password_applies_the_rules():
    with pytest.raises(PasswordRefused) as exc:
        hash_password("Password123")
    assert isinstance(exc.value, ValueError) and "too easy to guess" in str(exc.value)
    with pytest.raises(PasswordRefused):
        hash_password("jane.doe2024", EMAIL)
    assert verify_password(hash_password(PASSWORD, EMAIL), PASSWORD)


# --- every place that sets a password -------------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_cli_refuses_common_and_email_passwords(monkeypatch, db_url, tmp_path):
    for k in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET", "REDIS_URL"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("SECRET_KEY", "cli-test-secret-key-0123456789")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    args = ["school", "create", "--slug", "ogre-tech", "--name", "Ogre Technical School"]
    assert runner.invoke(cli, args).exit_code == 0
    create = ["user", "create", "--school", "ogre-tech", "--email", EMAIL, "--password-stdin"]
    r = runner.invoke(cli, create, input="Password123\n")
    assert r.exit_code == 1 and "too easy to guess" in r.output
    r = runner.invoke(cli, create, input="jane.doe2024\n")
    assert r.exit_code == 1 and "e-mail address" in r.output
    r = runner.invoke(cli, create, input=PASSWORD + "\n")
    assert r.exit_code == 0, r.output


@pytest.fixture
async def app(tmp_path) -> Any:
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}", data_dir=tmp_path / "d")
    await create_schema(settings.database_url)
    async with running_app(settings) as client:
        sm = client.app[keys.SESSIONMAKER]
        async with sm.begin() as s:
            school = await schools.create_school(s, "ogre-tech", "Ogre Technical School")
            await schools.create_user(s, school.id, EMAIL, hash_password(PASSWORD, EMAIL))
            await schools.create_user(
                s, None, "admin@school.example", hash_password(PASSWORD), "admin"
            )
        yield client


async def _password_hash(client, email: str = EMAIL) -> str | None:
    async with client.app[keys.SESSIONMAKER]() as s:
        user = await schools.get_user_by_email(s, email)
        return user.password_hash if user else None


async def test_the_admin_page_refuses_common_and_email_passwords(app):
    assert (await login(app, "admin@school.example", PASSWORD)).status == 303
    page = await (await app.get("/dashboard/admin")).text()
    assert "not one of the most common passwords" in page
    for password, message in (
        ("Password123", "too easy to guess"),
        ("new.user2024", "the part before the @"),
        ("short", "at least 10 characters"),
    ):
        token = await csrf_of(app, "/dashboard/admin")
        form = {"csrf": token, "email": "New.User@school.example", "password": password}
        resp = await app.post("/dashboard/admin/users", data={**form, "school": "ogre-tech"})
        assert message in await resp.text(), password
        assert await _password_hash(app, "new.user@school.example") is None
    token = await csrf_of(app, "/dashboard/admin")
    form = {"csrf": token, "email": "New.User@school.example", "password": NEW}
    resp = await app.post("/dashboard/admin/users", data={**form, "school": "ogre-tech"})
    assert "Coordinator New.User@school.example created." in await resp.text()


# --- the change-password page ---------------------------------------------------------------


async def _change(client, current: str, new: str, repeat: str | None = None, **kw: Any) -> Any:
    token = await csrf_of(client, "/dashboard/account/password")
    data = {
        "csrf": token,
        "current": current,
        "new": new,
        "repeat": new if repeat is None else repeat,
    }
    return await client.post("/dashboard/account/password", data=data, allow_redirects=False, **kw)


async def test_the_account_page_leads_to_the_change_page(app):
    assert (await login(app, EMAIL, PASSWORD)).status == 303
    page = await (await app.get("/dashboard/account")).text()
    assert 'href="/dashboard/account/password"' in page
    form = await (await app.get("/dashboard/account/password")).text()
    for field in ('name="csrf"', 'name="current"', 'name="new"', 'name="repeat"'):
        assert field in form
    assert 'autocomplete="current-password"' in form and 'autocomplete="new-password"' in form
    # Logged out: the login page first.
    async with (
        aiohttp.ClientSession() as anon,
        anon.get(app.make_url("/dashboard/account/password"), allow_redirects=False) as resp,
    ):
        assert resp.status == 303 and resp.headers["Location"].startswith("/login")


async def test_a_change_needs_the_current_password_and_a_good_new_one(app):
    assert (await login(app, EMAIL, PASSWORD)).status == 303
    before = await _password_hash(app)
    for current, new, repeat, status, message in (
        ("not my password", NEW, None, 401, "The current password is not right."),
        (PASSWORD, NEW, NEW + "x", 400, "The two new passwords differ."),
        (PASSWORD, PASSWORD, None, 400, "The new password is the same as the current one."),
        (PASSWORD, "Password123", None, 400, "too easy to guess"),
        (PASSWORD, "Jane.Doe2024", None, 400, "the part before the @"),
        (PASSWORD, "short", None, 400, "at least 10 characters"),
    ):
        resp = await _change(app, current, new, repeat)
        assert resp.status == status, (new, await resp.text())
        assert message in await resp.text()
        assert 'aria-invalid="true"' in await resp.text()
    assert await _password_hash(app) == before
    # Without the form's CSRF token: refused, nothing changed.
    resp = await app.post(
        "/dashboard/account/password",
        data={"current": PASSWORD, "new": NEW, "repeat": NEW},
        allow_redirects=False,
    )
    assert resp.status == 403
    assert await _password_hash(app) == before


async def test_a_change_ends_the_other_sessions_and_the_token_not_this_one(app):
    assert (await login(app, EMAIL, PASSWORD)).status == 303
    async with app.app[keys.SESSIONMAKER]() as s:
        user = (await s.execute(select(User).where(User.email == EMAIL.lower()))).scalar_one()
    old_token = auth.api_token(app.app[keys.SECRET_KEY], user)
    # The same coordinator, logged in on another computer.
    other = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    try:
        async with other.get(app.make_url("/login")) as r:
            html = await r.text()
        csrf = html.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        async with other.post(
            app.make_url("/login"),
            data={"csrf": csrf, "email": EMAIL, "password": PASSWORD},
            allow_redirects=False,
        ) as r:
            assert r.status == 303
        async with other.get(app.make_url("/dashboard/account"), allow_redirects=False) as r:
            assert r.status == 200
        api = {"Authorization": f"Bearer {old_token}"}
        assert (await app.get("/api/me", headers=api)).status == 200
        before = session_cookie(app)

        resp = await _change(app, PASSWORD, NEW)
        assert resp.status == 303 and resp.headers["Location"] == "/dashboard/account"
        # This browser: still logged in, with a fresh session (new id and CSRF token).
        after = session_cookie(app)
        codec = auth.SessionCodec(app.app[keys.SECRET_KEY])
        assert after != before
        assert codec.loads(after)["sid"] != codec.loads(before)["sid"]
        page = await app.get("/dashboard/account", allow_redirects=False)
        assert page.status == 200
        assert "Your password was changed." in await page.text()
        # The other computer is logged out, and the old API token no longer works.
        async with other.get(app.make_url("/dashboard/account"), allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"].startswith("/login")
        assert (await app.get("/api/me", headers=api)).status == 401
        # A copy of this browser's old cookie is dead too.
        async with (
            aiohttp.ClientSession(cookies={auth.COOKIE: before}) as thief,
            thief.get(app.make_url("/dashboard/account"), allow_redirects=False) as r,
        ):
            assert r.status == 303
    finally:
        await other.close()
    # The new password logs in, the old one does not.
    stored = await _password_hash(app)
    assert verify_password(stored, NEW) and not verify_password(stored, PASSWORD)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as fresh:
        for password, status in ((PASSWORD, 401), (NEW, 303)):
            async with fresh.get(app.make_url("/login")) as r:
                csrf = (await r.text()).split('name="csrf" value="', 1)[1].split('"', 1)[0]
            async with fresh.post(
                app.make_url("/login"),
                data={"csrf": csrf, "email": EMAIL, "password": password},
                allow_redirects=False,
            ) as r:
                assert r.status == status


async def test_guessing_the_current_password_meets_the_login_limit(app, monkeypatch):
    from backend.dashboard import views_account

    monkeypatch.setattr(views_account, "verify_password", lambda h, p: p == PASSWORD)
    assert (await login(app, EMAIL, PASSWORD)).status == 303
    for _ in range(auth.DEVICE_LIMIT):
        assert (await _change(app, "a wrong guess 1", NEW)).status == 401
    resp = await _change(app, PASSWORD, NEW)  # even the right one waits now
    assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0
    assert verify_password(await _password_hash(app), PASSWORD)
