"""The web chat over HTTP, without JavaScript: plain form posts, POST -> 303 -> GET.

Runs on SQLite and PostgreSQL (the `db_engine` fixture) against the real app.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update

from backend.web import keys, webchat
from backend.web.app import create_app
from conversations import engine as E
from conversations.i18n import Translator
from storage.models import Answer, Comment, Cycle, Invite, Respondent, Response
from tests.apptools import (
    client_of,
    db_url_of,
    make_settings,
    running_app,
    seed_school,
    with_number_bank,
)
from tests.webtools import (
    answer_everything,
    consented,
    count,
    first_choice,
    forms_of,
    only,
    web_user,
)

T = Translator()


@pytest.fixture
async def app_client(db_engine) -> AsyncIterator[TestClient]:
    async with running_app(make_settings(db_url_of(db_engine))) as client:
        yield client


# -- the tests -------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["learner", "graduate"])
async def test_full_survey_without_javascript(app_client, role):
    sm = app_client.app[keys.SESSIONMAKER]
    seeded = await seed_school(sm)
    async with web_user(app_client) as user:
        await user.get(f"/s/{seeded.invites[role]}")
        assert user.status == 200
        assert "Test Vocational School" in user.html
        assert await count(sm, Respondent) == 0  # nothing stored before consent
        await user.tap(E.YES)
        assert "Question 1 of" in user.html
        seen = await answer_everything(user)
        assert "Thank you! Your answers are saved." in user.html
        # The page names the web button, not Telegram's /delete command.
        assert "/delete" not in user.html and "“Erase my answers”" in user.html
    async with sm() as s:
        response = (await s.execute(select(Response))).scalar_one()
        answers = (await s.execute(select(Answer))).scalars().all()
        comments = (await s.execute(select(Comment))).scalars().all()
    assert response.status == "completed" and response.role == role
    assert len(answers) + len(comments) == len(seen) == len(set(seen))
    assert [c.text for c in comments] == ["More company visits"]
    assert len({a.question_id for a in answers}) == len(answers)  # each exactly once
    if role == "graduate":
        now = next(a for a in answers if a.question_id == "now")
        assert now.choice == "working"
        assert {"g09", "g10"} <= {a.question_id for a in answers}
        assert "g11" not in {a.question_id for a in answers}


async def test_security_headers_cookie_and_static(app_client):
    seeded = await seed_school(app_client.app[keys.SESSIONMAKER], roles=["learner"])
    r = await app_client.get(f"/s/{seeded.invites['learner']}", allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/chat"
    cookie = r.cookies[webchat.COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and not cookie["secure"]
    assert int(cookie["max-age"]) == 72 * 3600  # WEBCHAT_COOKIE_HOURS' default
    assert len(cookie.value) >= 43
    for h in (r.headers, (await app_client.get("/chat")).headers):
        assert "default-src 'self'" in h["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in h["Content-Security-Policy"]
        assert h["X-Content-Type-Options"] == "nosniff"
        assert h["Referrer-Policy"] == "no-referrer"
    page = await (await app_client.get("/chat")).text()
    css = re.search(r'href="(/static/webchat/webchat\.css\?v=[^"]+)"', page)
    js = re.search(r'src="(/static/webchat/webchat\.js\?v=[^"]+)"', page)
    assert css and js and "https://" not in page
    static = await app_client.get(css.group(1).replace("&amp;", "&"))
    assert static.status == 200 and "max-age" in static.headers["Cache-Control"]
    # The cookie value itself is never stored: the respondent row holds its keyed hash.
    forms = forms_of(page)
    await app_client.post("/chat", data={**forms[0].hidden, "choice": "yes"})
    subject = await only(app_client.app[keys.SESSIONMAKER], Respondent.subject_hash)
    assert subject != cookie.value and cookie.value not in subject
    assert subject == app_client.app[keys.SURVEY].subject("web", cookie.value)


async def test_consent_refused_stores_nothing(app_client):
    sm = app_client.app[keys.SESSIONMAKER]
    seeded = await seed_school(sm, roles=["parent"])
    async with web_user(app_client) as user:
        await user.get(f"/s/{seeded.invites['parent']}")
        await user.tap(E.NO)
        assert T("consent.declined") in user.text()
        assert not [f for f in user.forms() if any(b[0] == "choice" for b in f.buttons)]
    assert await count(sm, Respondent) == 0
    assert await count(sm, Response) == 0
    invite = await only(sm, Invite)
    assert invite.uses == 0


async def test_back_skip_and_not_applicable(app_client):
    sm = app_client.app[keys.SESSIONMAKER]
    async with consented(app_client, "learner") as (user, _):
        assert user.question_id() == "l01"
        assert "Question 1 of" in user.html
        await user.tap("3")
        assert user.question_id() == "l02" and "Question 2 of" in user.html
        await user.tap("na")
        assert user.question_id() == "l03"
        await user.tap(E.SKIP)
        assert user.question_id() == "l04"
        await user.tap(E.BACK)
        assert user.question_id() == "l03"
        assert T("question.current", answer=T("answer.skipped")) in user.text()
        await user.tap(E.BACK)
        assert user.question_id() == "l02"
        # The answer already given is highlighted and announced.
        assert re.search(r'value="na" class="secondary is-current" aria-pressed="true"', user.html)
        assert "Your answer: Not applicable" in user.text()
        await user.tap("4")  # change it: lands once, updated
        assert user.question_id() == "l04"
    async with sm() as s:
        rows = {a.question_id: a for a in (await s.execute(select(Answer))).scalars()}
    assert set(rows) == {"l01", "l02", "l03"}
    assert rows["l01"].value == 3
    assert rows["l02"].value == 4 and not rows["l02"].na
    assert rows["l03"].skipped


async def test_stale_button_and_text_where_a_tap_is_due(app_client):
    sm = app_client.app[keys.SESSIONMAKER]
    async with consented(app_client, "learner") as (user, _):
        old = user.form_with("choice", "4")
        await user.tap("4")
        await user.post({**old.hidden, "choice": "2"})  # the browser's back button, resubmitted
        assert T("question.stale") in user.text()
        assert user.question_id() == "l02"
        await user.post({**old.hidden, "question_id": "l02", "text": "hello"})
        assert T("question.tap_button") in user.text()
    assert await count(sm, Answer) == 1


@asynccontextmanager
async def app_with_number_question(db_engine) -> AsyncIterator[TestClient]:
    """The real app whose employer bank asks one number question first (no shipped bank does)."""
    app = with_number_bank(create_app(make_settings(db_url_of(db_engine))))
    async with client_of(app) as client:
        yield client


async def test_bad_number_reprompts_and_keeps_the_state(db_engine):
    async with app_with_number_question(db_engine) as client:
        sm = client.app[keys.SESSIONMAKER]
        seeded = await seed_school(sm, roles=["employer"])
        async with web_user(client) as user:
            await user.start(seeded.invites["employer"])
            assert user.question_id() == "n1"
            assert 'inputmode="numeric"' in user.html
            await user.type("lots")
            assert T("number.invalid", example="1") in user.text()
            assert user.question_id() == "n1"
            await user.type("900")
            assert T("number.range", min="0", max="500") in user.text()
            assert user.question_id() == "n1"
            assert await count(sm, Answer) == 0
            # A reload shows the question again, without the old notice.
            await user.get("/chat")
            assert user.question_id() == "n1" and '<p class="notice">' not in user.html
            await user.type("12")
            assert user.question_id() == "e1"
            await user.tap(E.BACK)
            assert 'value="12"' in user.html  # the number given, ready to edit
        answer = await only(sm, Answer)
        assert answer.number == 12


async def test_resume_with_the_cookie_after_the_session_store_is_lost(app_client):
    sm = app_client.app[keys.SESSIONMAKER]
    async with consented(app_client, "graduate") as (user, seeded):
        await user.tap("c:studying")
        await user.tap("4")
        await user.tap("3")
        qid = user.question_id()
        store = app_client.app[keys.SESSION_STORE]
        store._data.clear()  # "Redis loss": the memory store forgets every session
        await user.get("/chat")
        assert user.question_id() == qid  # rebuilt from the database
        assert "Question 4 of" in user.html
        # The invite link again also resumes, without a second response or use.
        await user.get(f"/s/{seeded.invites['graduate']}")
        assert user.question_id() == qid
        await user.tap(E.BACK)
        assert user.question_id() == "g02"
    invite = await only(sm, Invite)
    assert invite.uses == 1
    assert await count(sm, Response) == 1


async def test_stop_and_resume(app_client):
    sm = app_client.app[keys.SESSIONMAKER]
    async with consented(app_client, "learner") as (user, _):
        await user.tap("4")
        await user.tap("stop", name="action")
        assert "Paused" in user.html and user.question_id() is None
        assert await only(sm, Response.status) == "stopped"
        await user.tap("resume", name="action")
        assert user.question_id() == "l02"
        assert await only(sm, Response.status) == "in_progress"


async def test_erase_asks_then_really_deletes(app_client):
    sm = app_client.app[keys.SESSIONMAKER]
    seeded = await seed_school(sm, roles=["learner", "parent"])
    async with web_user(app_client) as other:  # someone else's answers stay
        await other.start(seeded.invites["parent"])
        await other.tap(first_choice(other))
    async with web_user(app_client) as user:
        await user.start(seeded.invites["learner"])
        await user.tap("4")
        await user.tap("2")
        assert T("web.erase") in user.html
        await user.tap("delete", name="action")
        assert T("delete.confirm") in user.text()
        await user.tap(E.NO)  # cancel: nothing erased, back at the question
        assert T("delete.cancelled") in user.text() and user.question_id() == "l03"
        assert await count(sm, Answer) == 3
        await user.tap("delete", name="action")
        await user.tap(E.YES)
        assert T("delete.done") in user.text()
        assert not any(b[0] == "choice" for f in user.forms() for b in f.buttons)
        await user.get("/chat")
        assert T("delete.done") in user.text()
    assert await count(sm, Respondent) == 1
    assert await count(sm, Response) == 1
    assert await count(sm, Answer) == 1


async def test_csrf_missing_or_forged_is_refused(app_client):
    sm = app_client.app[keys.SESSIONMAKER]
    seeded = await seed_school(sm, roles=["learner"])
    async with web_user(app_client) as user:
        form = await user.consent_form(seeded.invites["learner"])
        no_token = {k: v for k, v in form.hidden.items() if k != "csrf"}
        await user.post({**no_token, "choice": E.YES})
        assert user.status == 403 and T("web.error.csrf") in user.text()
        await user.post({**no_token, "csrf": "0" * 40, "choice": E.YES})
        assert user.status == 403
        other = webchat.csrf_token("another-secret", user.cookie)
        await user.post({**no_token, "csrf": other, "choice": E.YES})
        assert user.status == 403
        # The right token from another site: refused by the Origin / Sec-Fetch-Site checks.
        await user.post({**form.hidden, "choice": E.YES}, headers={"Origin": "https://evil.test"})
        assert user.status == 403
        await user.post({**form.hidden, "choice": E.YES}, headers={"Sec-Fetch-Site": "cross-site"})
        assert user.status == 403
        assert await count(sm, Respondent) == 0
        # Our own page's post (Origin "null" under no-referrer) goes through.
        await user.post({**form.hidden, "choice": E.YES}, headers={"Origin": "null"})
        assert user.status == 200 and user.question_id() == "l01"
    # Without the cookie there is nothing to protect and nobody to answer for.
    r = await app_client.post("/chat", data={"csrf": "x", "choice": "yes"})
    assert r.status == 403


async def test_invalid_and_expired_invites(app_client):
    sm = app_client.app[keys.SESSIONMAKER]
    seeded = await seed_school(sm, roles=["learner", "parent"])
    async with sm.begin() as s:
        await s.execute(
            update(Invite)
            .where(Invite.code == seeded.invites["parent"])
            .values(expires_at=datetime.now(UTC) - timedelta(days=1))
        )
    async with web_user(app_client) as user:
        await user.get("/s/no-such-code")
        assert user.status == 200 and T("invite.unknown") in user.text()
        assert not user.forms() or not any(
            b[0] == "choice" for f in user.forms() for b in f.buttons
        )
        await user.get(f"/s/{seeded.invites['parent']}")
        assert T("invite.expired") in user.text()
        await user.get("/s/" + "x" * 300)
        assert T("invite.unknown") in user.text()
        await user.get("/chat")  # nothing started: explain how to start
        assert T("web.no_survey").split(".")[0] in user.text()
    assert await count(sm, Respondent) == 0


async def test_an_invite_of_a_cycle_that_opens_later_is_refused_at_once(app_client):
    """The one invite rule (storage.responses.invite_refusal) decides on the link as at consent:
    no consent card for a cycle that opens tomorrow, only the reason."""
    sm = app_client.app[keys.SESSIONMAKER]
    seeded = await seed_school(sm, roles=["learner"])
    async with sm.begin() as s:
        await s.execute(
            update(Cycle)
            .where(Cycle.id == seeded.cycle_id)
            .values(opens_at=datetime.now(UTC) + timedelta(days=1))
        )
    async with web_user(app_client) as user:
        await user.get(f"/s/{seeded.invites['learner']}")
        assert T("invite.not_open") in user.text()
        assert not any(b[1] == E.YES for f in user.forms() for b in f.buttons)
    assert await count(sm, Respondent) == 0


async def test_free_text_is_escaped_wherever_it_is_echoed(app_client):
    sm = app_client.app[keys.SESSIONMAKER]
    seeded = await seed_school(sm, roles=["learner"])
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    async with web_user(app_client) as user:
        await user.start(seeded.invites["learner"])
        while user.question_id() != "l22":
            await user.tap(E.SKIP if "skip" in user.choices() else "4")
        long = evil * 200  # too long: the notice echoes its length, the state stays
        await user.type(long)
        assert user.question_id() == "l22"
        await user.type(evil)
        assert "Thank you" in user.html
        for page in (user.html, await user.get("/chat"), await user.get("/privacy")):
            assert "<script>alert" not in page and "<img src=x" not in page
        # The JSON card for fetch escapes it too.
        token = webchat.csrf_token(user.client.app[keys.SECRET_KEY], user.cookie)
        async with user.session.post(
            user.client.make_url("/chat"),
            data={"csrf": token},
            headers={"Accept": "application/json"},
        ) as r:
            data = await r.json()
        assert "<script>alert" not in data["html"]
    assert await only(sm, Comment.text) == evil


async def test_fetch_posts_get_the_card_as_json(app_client):
    sm = app_client.app[keys.SESSIONMAKER]
    seeded = await seed_school(sm, roles=["learner"])
    async with web_user(app_client) as user:
        form = await user.consent_form(seeded.invites["learner"])
        async with user.session.post(
            user.client.make_url("/chat"),
            data={**form.hidden, "choice": E.YES},
            headers={"Accept": "application/json"},
        ) as r:
            assert r.status == 200
            data = await r.json()
        assert data["lang"] == "en" and not data["final"]
        assert 'id="card"' in data["html"] and 'value="l01"' in data["html"]
        async with user.session.post(
            user.client.make_url("/chat"),
            data={"choice": "4", "question_id": "l01"},
            headers={"Accept": "application/json"},
        ) as r:
            assert r.status == 403
            assert (await r.json())["message"] == T("web.error.csrf")


def test_form_fields_map_to_engine_events():
    ev = webchat.form_event
    assert ev({"choice": "3", "question_id": "l01"}) == E.Answer("l01", "3")
    assert ev({"choice": "na", "question_id": "l01"}) == E.Answer("l01", "na")
    assert ev({"choice": "back", "question_id": "l02"}) == E.Back("l02")
    assert ev({"choice": "skip", "question_id": "l02"}) == E.Skip("l02")
    assert ev({"choice": "lang:en"}) == E.ChooseLanguage("lang:en")
    assert ev({"choice": "yes", "question_id": ""}) == E.Answer(None, "yes")
    assert ev({"text": "12", "question_id": "n1"}) == E.Answer("n1", "12")
    assert ev({"action": "delete"}) == E.DeleteRequest()
    assert ev({"action": "stop"}) == E.Stop()
    assert ev({"action": "resume"}) == E.Resume()
    assert ev({"action": "drop-tables"}) is None
    assert ev({}) is None


async def test_language_choice(app_client):
    sm = app_client.app[keys.SESSIONMAKER]
    seeded = await seed_school(sm, roles=["learner"], languages=["en", "uk"])
    uk = Translator("uk")
    async with web_user(app_client) as user:
        await user.get(f"/s/{seeded.invites['learner']}")
        assert T("language.prompt") in user.text() and 'lang="en"' in user.html
        await user.tap("lang:uk")
        assert 'lang="uk"' in user.html
        assert uk("consent.yes") in user.text()
        await user.tap(E.YES)
        assert user.question_id() == "l01"
        await user.tap("language", name="action")  # the footer's language button
        await user.tap("lang:en")
        assert 'lang="en"' in user.html and user.question_id() == "l01"
    assert await only(sm, Response.language) == "en"


# -- https, the cookie's lifetime, and a shared device ----------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_the_cookie_is_secure_under_https_believed_only_from_trusted_proxies(db_engine):
    https = {"X-Forwarded-Proto": "https"}
    async with running_app(make_settings(db_url_of(db_engine))) as client:
        # Anybody can write X-Forwarded-Proto: from an untrusted peer it says nothing.
        r = await client.get("/chat", headers=https)
        assert not r.cookies[webchat.COOKIE]["secure"]
        assert "Strict-Transport-Security" not in r.headers
    trusted = make_settings(db_url_of(db_engine), trusted_proxies="127.0.0.1")
    async with running_app(trusted) as client:
        r = await client.get("/chat", headers=https)
        assert r.cookies[webchat.COOKIE]["secure"]
        assert r.cookies[webchat.COOKIE]["httponly"]
        r = await client.get("/chat", headers={"X-Forwarded-Proto": "http"})
        assert not r.cookies[webchat.COOKIE]["secure"]
    public = make_settings(db_url_of(db_engine), public_url="https://survey.example.org")
    async with running_app(public) as client:  # an https deployment, proxy not configured
        seeded = await seed_school(client.app[keys.SESSIONMAKER], roles=["learner"])
        r = await client.get(f"/s/{seeded.invites['learner']}", allow_redirects=False)
        assert r.cookies[webchat.COOKIE]["secure"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_https_responses_carry_hsts_on_every_page(db_engine):
    settings = make_settings(db_url_of(db_engine), trusted_proxies="127.0.0.1")
    https = {"X-Forwarded-Proto": "https"}
    async with running_app(settings) as client:
        seeded = await seed_school(client.app[keys.SESSIONMAKER], roles=["learner"])
        paths = ["/chat", "/privacy", "/chat/forget", f"/s/{seeded.invites['learner']}"]
        paths += ["/login", "/dashboard", "/healthz", "/api/openapi.json", "/no-such-page"]
        page = await (await client.get("/chat")).text()
        paths.append(re.search(r'href="(/static/webchat/[^"]+)"', page).group(1))
        for path in paths:
            r = await client.get(path, headers=https, allow_redirects=False)
            assert r.headers.get("Strict-Transport-Security") == "max-age=31536000", path
            plain = await client.get(path, allow_redirects=False)
            assert "Strict-Transport-Security" not in plain.headers, path


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_the_cookie_lives_hours_after_the_last_visit(db_engine):
    settings = make_settings(db_url_of(db_engine), webchat_cookie_hours=5)
    async with running_app(settings) as client:
        seeded = await seed_school(client.app[keys.SESSIONMAKER], roles=["learner"])
        async with web_user(client) as user:
            form = await user.consent_form(seeded.invites["learner"])
            # Every answer renews it, with JavaScript (JSON) and without (the redirect).
            for accept in ("application/json", "text/html"):
                async with user.session.post(
                    client.make_url("/chat"),
                    data={**form.hidden, "choice": E.YES},
                    headers={"Accept": accept},
                    allow_redirects=False,
                ) as r:
                    assert int(r.cookies[webchat.COOKIE]["max-age"]) == 5 * 3600
                    assert r.cookies[webchat.COOKIE].value == user.cookie


async def test_not_me_forgets_the_device_but_keeps_the_answers(app_client):
    sm = app_client.app[keys.SESSIONMAKER]
    seeded = await seed_school(sm, roles=["learner"], languages=["en", "uk"])
    uk = Translator("uk")
    async with web_user(app_client) as user:
        await user.get("/chat")  # nothing kept here yet: nothing to forget
        assert "/chat/forget" not in user.html
        await user.get(f"/s/{seeded.invites['learner']}")
        await user.tap("lang:uk")
        await user.tap(E.YES)
        await user.tap("4")
        await user.tap("3")
        assert user.question_id() == "l03"
        # The next person at this device: a visible way out on every page of the survey.
        assert 'class="not-me" href="/chat/forget"' in user.html
        assert uk("web.forget.link") in user.text()
        old_cookie = user.cookie
        subject = app_client.app[keys.SURVEY].subject("web", old_cookie)
        store = app_client.app[keys.SESSION_STORE]
        assert await store.load(app_client.app[keys.SURVEY].key(subject)) is not None
        await user.get("/chat/forget")
        assert uk("web.forget.text").split("\n")[0] in user.text()
        form = next(f for f in user.forms() if f.action == "/chat/forget")
        # Not without the page's token.
        async with user.session.post(
            app_client.make_url("/chat/forget"), data={"csrf": "0" * 40}
        ) as r:
            assert r.status == 403
        assert user.cookie == old_cookie
        async with user.session.post(
            app_client.make_url("/chat/forget"), data=form.hidden, allow_redirects=False
        ) as r:
            assert r.status == 303
            assert r.cookies[webchat.COOKIE].value == ""
            assert int(r.cookies[webchat.COOKIE]["max-age"]) == 0
            location = r.headers["Location"]
        await user.get(location)
        assert uk("web.forget.done").split("\n")[0] in user.text()
        assert 'lang="uk"' in user.html
        assert not any(c.key == webchat.COOKIE for c in user.session.cookie_jar)
        # The server forgot where that cookie stood; the answers are kept.
        assert await store.load(app_client.app[keys.SURVEY].key(subject)) is None
        assert await count(sm, Answer) == 2
        assert await only(sm, Response.status) == "in_progress"
        # The next person starts fresh, with a new cookie.
        await user.get("/chat")
        assert T("web.no_survey").split(".")[0] in user.text()
        assert user.cookie != old_cookie
        assert "/chat/forget" not in user.html


async def test_after_the_last_answer_the_page_offers_to_forget_the_device(app_client):
    sm = app_client.app[keys.SESSIONMAKER]
    async with consented(app_client, "learner") as (user, _):
        assert T("web.forget.offer") not in user.text()  # not while answering
        await answer_everything(user)
        assert T("web.forget.offer") in user.text()
        form = next(f for f in user.forms() if f.action == "/chat/forget")
        subject = app_client.app[keys.SURVEY].subject("web", user.cookie)
        answers = await count(sm, Answer)
        # With JavaScript: the fragment says it is done, and the cookie goes.
        async with user.session.post(
            app_client.make_url("/chat/forget"),
            data=form.hidden,
            headers={"Accept": "application/json"},
        ) as r:
            assert r.status == 200
            data = await r.json()
            assert r.cookies[webchat.COOKIE]["max-age"] == "0"
        assert T("web.forget.done").split("\n")[0] in data["html"].replace("&#39;", "'")
        assert 'name="csrf"' not in data["html"]  # nothing left to act on
        store, runner = app_client.app[keys.SESSION_STORE], app_client.app[keys.SURVEY]
        assert await store.load(runner.key(subject)) is None
    assert await count(sm, Answer) == answers > 0
    assert await only(sm, Response.status) == "completed"


async def test_a_nul_in_an_answer_is_refused_in_the_respondents_language(app_client):
    """A NUL (which PostgreSQL cannot store) in a typed answer or any field: 400, the web
    chat's page in the respondent's language (JSON for fetch), nothing stored, the
    respondent still where they were."""
    sm = app_client.app[keys.SESSIONMAKER]
    seeded = await seed_school(sm, roles=["learner"], languages=["uk", "en"])
    uk = Translator("uk")
    async with web_user(app_client) as user:
        await user.get(f"/s/{seeded.invites['learner']}%00")
        assert user.status == 400 and T("web.error.bad_input") in user.text()
        await user.get(f"/s/{seeded.invites['learner']}")
        await user.tap("lang:uk")
        await user.tap(E.YES)
        while not user.has_typed_input():
            await user.tap(E.SKIP if "skip" in user.choices() else "4")
        qid = user.question_id()
        form = next(f for f in user.forms() if f.typed)
        await user.post({**form.hidden, form.typed: "Visits\x00please"})
        assert user.status == 400
        assert 'lang="uk"' in user.html and uk("web.error.bad_input") in user.text()
        await user.post({**form.hidden, form.typed: "fine", "question_id": "l\x00"})
        assert user.status == 400
        async with user.session.post(
            user.client.make_url("/chat"),
            data={**form.hidden, form.typed: "\x00"},
            headers={"Accept": "application/json"},
        ) as r:
            assert r.status == 400
            body = await r.json()
        assert body == {"error": "bad_input", "message": uk("web.error.bad_input")}
        await user.get("/chat")
        assert user.question_id() == qid
    assert await count(sm, Comment) == 0


async def _to_the_comment(user) -> str:
    """Tap through to the free-text question; its id."""
    for _ in range(60):
        if user.has_typed_input():
            return user.question_id()
        await user.tap(first_choice(user))
    raise AssertionError("no free-text question")


async def test_a_too_long_answer_comes_back_in_the_box_with_the_limit(app_client):
    """10,000 characters pasted into a 1,000-character answer: the box does not cut it
    (no maxlength), the server refuses it with a notice that says the limit, and the text
    is back in the box (without JavaScript across the redirect, and in the fetch answer):
    nothing typed is thrown away. Nothing is stored until it fits."""
    sm = app_client.app[keys.SESSIONMAKER]
    seeded = await seed_school(sm, roles=["learner"])
    long_text = ("Career days with employers, please. " * 300)[:9_999] + "!"
    async with web_user(app_client) as user:
        await user.start(seeded.invites["learner"])
        qid = await _to_the_comment(user)
        assert "maxlength" not in user.html  # a paste is never cut in the box
        assert "0 of 1,000 characters" in user.text()
        await user.type(long_text)
        assert user.status == 200 and user.question_id() == qid
        notice = T("text.too_long", length="10,000", max="1,000")
        assert notice.startswith("Not saved") and notice in user.text()
        area = re.search(r"<textarea[^>]*>\n?(.*?)</textarea>", user.html, re.S)
        assert area is not None and area.group(1) == long_text
        assert "10,000 of 1,000 characters: 9,000 too many" in user.text()
        assert await count(sm, Comment) == 0
        # A reload later: the box is empty again (the refused text rode one redirect only).
        await user.get("/chat")
        assert re.search(r"<textarea[^>]*>\n?</textarea>", user.html)
        # The same through fetch (JSON): the card that comes back holds the text.
        form = next(f for f in user.forms() if f.typed)
        async with user.session.post(
            user.client.make_url("/chat"),
            data={**form.hidden, "text": long_text},
            headers={"Accept": "application/json"},
        ) as r:
            html = (await r.json())["html"]
        assert notice in html and long_text in html
        await user.type(long_text[:900])
        assert T("done.text").split("\n")[0] in user.html.replace("&#39;", "'")
    assert await only(sm, Comment.text) == long_text[:900].strip()
