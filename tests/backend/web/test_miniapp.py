"""The Telegram Mini App: initData validation (pure) and a run through `/app/api`.

The Mini App's respondent is `runner.subject("telegram", user.id)`: the same person as in the
Telegram chat, so both ways land in one response and one position.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from html import unescape
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from backend.web import keys, webchat
from backend.web.miniapp import InitDataError, sign_init_data, validate_init_data
from conversations import engine as E
from conversations.i18n import Translator
from storage.models import Answer, Respondent, Response
from tests.apptools import TOKEN, WEBHOOK_SECRET, db_url_of, make_settings, running_app, seed_school
from tests.security.sweep import sweep_urls
from tests.webtools import web_user

T = Translator()
NOW = 1_750_000_000.0
DAY = 24 * 3600
USER = {"id": 424242, "first_name": "Ana", "language_code": "en", "allows_write_to_pm": True}


def init_data(
    *,
    token: str = TOKEN,
    user: dict | None = None,
    auth_date: float = NOW,
    extra: dict[str, str] | None = None,
) -> str:
    fields = {
        "query_id": "AAHdF6IQAAAAAN0XohDhrOrc",
        "user": json.dumps(user or USER, separators=(",", ":"), ensure_ascii=False),
        "auth_date": str(int(auth_date)),
        "signature": "c2lnbmF0dXJlLW9mLXRlbGVncmFt",
        **(extra or {}),
    }
    fields["hash"] = sign_init_data(fields, token)
    return urlencode(fields)


def reason(data: str, *, now: float = NOW, token: str = TOKEN) -> str:
    with pytest.raises(InitDataError) as exc:
        validate_init_data(data, token, max_age=DAY, now=now)
    return exc.value.reason


# -- validation (pure) -------------------------------------------------------------------


def test_valid_init_data():
    data = validate_init_data(init_data(), TOKEN, max_age=DAY, now=NOW + 60)
    assert data["user"]["id"] == USER["id"]
    assert data["auth_date"] == int(NOW)
    assert data["query_id"] == "AAHdF6IQAAAAAN0XohDhrOrc"


def test_known_vector_computed_the_documented_way():
    """HMAC_SHA256(key=HMAC_SHA256("WebAppData", token), data_check_string), by hand."""
    import hashlib
    import hmac

    dcs = "auth_date=1750000000\nquery_id=Q\nuser=" + json.dumps({"id": 7})
    secret = hmac.new(b"WebAppData", TOKEN.encode(), hashlib.sha256).digest()
    digest = hmac.new(secret, dcs.encode(), hashlib.sha256).hexdigest()
    raw = urlencode({"query_id": "Q", "user": json.dumps({"id": 7}), "auth_date": "1750000000"})
    data = validate_init_data(raw + "&hash=" + digest, TOKEN, max_age=DAY, now=NOW)
    assert data["user"] == {"id": 7}


def test_forged_hash_is_refused():
    good = init_data()
    forged = good.rsplit("hash=", 1)[0] + "hash=" + "0" * 64
    assert reason(forged) == "bad_hash"
    # Signed with another bot's token.
    assert reason(init_data(token="999:another-bot-token")) == "bad_hash"


def test_tampered_field_is_refused():
    good = init_data()
    tampered = good.replace("424242", "424243")
    assert tampered != good
    assert reason(tampered) == "bad_hash"
    # A field added after signing breaks the signature too.
    assert reason(good + "&start_param=evil") == "bad_hash"


def test_stale_and_future_auth_date_are_refused():
    assert reason(init_data(auth_date=NOW - DAY - 1)) == "stale"
    assert reason(init_data(auth_date=NOW + 3600)) == "stale"
    validate_init_data(init_data(auth_date=NOW - DAY + 5), TOKEN, max_age=DAY, now=NOW)


def test_missing_hash_and_malformed_data_are_refused():
    assert reason(init_data().rsplit("&hash=", 1)[0]) == "no_hash"
    assert reason("") == "missing"
    assert reason(init_data(), token="") == "missing"
    assert reason("a=1&a=2&hash=00") == "malformed"
    assert reason("x" * 9000) == "malformed"
    no_user = {"auth_date": str(int(NOW)), "query_id": "Q"}
    no_user["hash"] = sign_init_data(no_user, TOKEN)
    assert reason(urlencode(no_user)) == "no_user"


def test_a_hash_that_is_not_ascii_is_refused_not_a_crash():
    """compare_digest refuses str with non-ASCII characters (TypeError): a forged hash
    with them must read as a wrong hash, like any other."""
    good = init_data()
    stem = good.rsplit("hash=", 1)[0]
    for forged in ("%C3%BC" * 32, "%C3%BC", "%ED%A0%80", "%FF%FE" * 16):
        assert reason(stem + "hash=" + forged) == "bad_hash", forged


# -- the Mini App over HTTP ---------------------------------------------------------------


@asynccontextmanager
async def fake_bot_api() -> AsyncIterator[str]:
    """The smallest Bot API for the bot's startup (getMe and friends): ok to everything."""

    async def method(request: web.Request) -> web.Response:
        name = request.match_info["method"]
        result: object = True
        if name == "getMe":
            result = {
                "id": int(TOKEN.split(":")[0]),
                "is_bot": True,
                "first_name": "Test",
                "username": "guidance_test_bot",
            }
        return web.json_response({"ok": True, "result": result})

    app = web.Application()
    app.router.add_route("*", "/bot{token}/{method}", method)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/bot"))
    finally:
        await server.close()


@pytest.fixture
async def app_client(db_engine) -> AsyncIterator[TestClient]:
    async with fake_bot_api() as api:
        settings = make_settings(
            db_url_of(db_engine),
            telegram_bot_token=TOKEN,
            telegram_webhook_secret=WEBHOOK_SECRET,
            telegram_api_base_url=api,
        )
        async with running_app(settings) as client:
            yield client


async def api(client: TestClient, path: str, body: dict | None = None, *, data: str | None = None):
    headers = {
        "X-Telegram-Init-Data": data if data is not None else init_data(auth_date=time.time())
    }
    r = await client.post(path, json=body or {}, headers=headers)
    return r.status, await r.json()


async def count(sm, model) -> int:
    async with sm() as s:
        return (await s.execute(select(func.count()).select_from(model))).scalar_one()


async def test_miniapp_page_loads_no_external_script_and_may_be_framed_by_telegram(app_client):
    r = await app_client.get("/app")
    html = await r.text()
    assert r.status == 200
    assert "telegram-web-app.js" not in html and "https://" not in html
    # Outside Telegram it says what it is and how to answer in the browser instead.
    assert T("web.miniapp.heading") in html and T("web.miniapp.get_link") in html
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors https://web.telegram.org" in csp
    assert "X-Frame-Options" not in r.headers


async def test_stale_or_forged_init_data_is_refused(app_client):
    status, body = await api(app_client, "/app/api/state", data="")
    assert status == 401 and body["message"] == T("web.miniapp.open_in_telegram")
    status, body = await api(
        app_client, "/app/api/state", data=init_data(auth_date=time.time() - 2 * DAY)
    )
    assert status == 401 and body["error"] == "stale" and body["message"] == T("web.miniapp.stale")
    forged = init_data(auth_date=time.time()).replace("424242", "1")
    status, body = await api(app_client, "/app/api/answer", {"choice": "yes"}, data=forged)
    assert status == 403 and body["message"] == T("web.miniapp.forged")
    status, _ = await api(
        app_client, "/app/api/state", data=init_data(token="1:other", auth_date=time.time())
    )
    assert status == 403
    assert await count(app_client.app[keys.SESSIONMAKER], Respondent) == 0


async def test_miniapp_and_chat_share_one_response_and_position(app_client):
    sm = app_client.app[keys.SESSIONMAKER]
    runner = app_client.app[keys.SURVEY]
    seeded = await seed_school(sm, roles=["learner"])
    subject = runner.subject("telegram", USER["id"])

    # In the Telegram chat: /start <code>, consent, two answers.
    await runner.start(subject, seeded.invites["learner"])
    await runner.handle(subject, E.Consent(True))
    await runner.handle(subject, E.Answer("l01", "4"))
    await runner.handle(subject, E.Answer("l02", "3"))

    # The Mini App opens where the chat stands.
    status, body = await api(app_client, "/app/api/state")
    assert status == 200
    assert body["prompts"][-1]["question_id"] == "l03"
    assert body["prompts"][-1]["progress"][0] == 3
    assert 'value="l03"' in body["html"] and "Question 3 of" in body["html"]

    # Answers in the Mini App: N/A, back, change, skip.
    status, body = await api(app_client, "/app/api/answer", {"question_id": "l03", "choice": "na"})
    assert body["prompts"][-1]["question_id"] == "l04"
    status, body = await api(
        app_client, "/app/api/answer", {"question_id": "l04", "choice": "back"}
    )
    assert body["prompts"][-1]["question_id"] == "l03" and body["prompts"][-1]["current"] == "na"
    assert "is-current" in body["html"]
    status, body = await api(app_client, "/app/api/answer", {"question_id": "l03", "choice": "2"})
    status, body = await api(
        app_client, "/app/api/answer", {"question_id": "l04", "choice": "skip"}
    )
    assert body["prompts"][-1]["question_id"] == "l05"

    # Back in the chat: the same position, answers from both ways in one response.
    now = await runner.current(subject)
    assert now.step.prompts[-1].question_id == "l05"
    await runner.handle(subject, E.Answer("l05", "1"))
    status, body = await api(app_client, "/app/api/state")
    assert body["prompts"][-1]["question_id"] == "l06"

    assert await count(sm, Respondent) == 1
    assert await count(sm, Response) == 1
    async with sm() as s:
        rows = {a.question_id: a for a in (await s.execute(select(Answer))).scalars()}
    assert set(rows) == {"l01", "l02", "l03", "l04", "l05"}
    assert rows["l03"].value == 2 and not rows["l03"].na
    assert rows["l04"].skipped

    # Erase from the Mini App: ask, confirm, gone.
    status, body = await api(app_client, "/app/api/answer", {"action": "delete"})
    assert body["prompts"][-1]["kind"] == "confirm"
    status, body = await api(app_client, "/app/api/answer", {"choice": "yes"})
    assert body["final"] and T("delete.done") in body["html"]
    assert await count(sm, Answer) == 0 and await count(sm, Respondent) == 0


async def test_miniapp_starts_from_start_param(app_client):
    sm = app_client.app[keys.SESSIONMAKER]
    seeded = await seed_school(sm, roles=["graduate"])
    data = init_data(auth_date=time.time(), extra={"start_param": seeded.invites["graduate"]})
    status, body = await api(app_client, "/app/api/state", data=data)
    assert status == 200 and body["prompts"][-1]["kind"] == "consent"
    assert await count(sm, Respondent) == 0
    status, body = await api(app_client, "/app/api/answer", {"choice": "yes"}, data=data)
    assert body["prompts"][-1]["question_id"] == "now"
    status, body = await api(
        app_client, "/app/api/answer", {"question_id": "now", "choice": "c:looking"}, data=data
    )
    assert body["prompts"][-1]["question_id"] == "g01"
    # The same person in the chat continues there.
    runner = app_client.app[keys.SURVEY]
    out = await runner.start(runner.subject("telegram", USER["id"]), seeded.invites["graduate"])
    assert out.step.prompts[-1].question_id == "g01"
    async with sm() as s:
        response = (await s.execute(select(Response))).scalar_one()
    assert response.role == "graduate"


async def test_without_a_bot_the_app_page_offers_the_web_chat(db_engine):
    """No bot token: no Mini App API, but /app is no 404 of the dashboard: it says the survey
    is not offered in Telegram here, in the browser's language, and offers the web chat (the
    invite's web link when the address names it, else how to get a link)."""
    async with running_app(make_settings(db_url_of(db_engine))) as client:
        assert (await client.post("/app/api/state")).status == 404
        r = await client.get("/app")
        html = unescape(await r.text())
        assert r.status == 200 and '<html lang="en">' in html
        assert T("web.miniapp.no_telegram") in html and T("web.miniapp.get_link") in html
        assert "dashboard" not in html and "<script" not in html
        hy = Translator("hy")
        r = await client.get("/app?startapp=abc_123", headers={"Accept-Language": "hy-AM,hy"})
        html = unescape(await r.text())
        assert '<html lang="hy">' in html and hy("web.miniapp.no_telegram") in html
        assert f'href="/s/abc_123">{hy("web.miniapp.answer_in_browser")}<' in html
        r = await client.get("/app?startapp=%3Cscript%3E")  # not a code: not a link
        assert "/s/" not in await r.text()


async def test_outside_telegram_the_app_page_links_to_the_invite_or_the_started_survey(
    app_client,
):
    sm = app_client.app[keys.SESSIONMAKER]
    seeded = await seed_school(sm, roles=["learner"])
    code = seeded.invites["learner"]
    html = unescape(await (await app_client.get(f"/app?startapp={code}")).text())
    assert T("web.miniapp.outside") in html
    assert f'href="/s/{code}">{T("web.miniapp.answer_in_browser")}<' in html
    async with web_user(app_client) as user:  # someone who started in this browser
        await user.get(f"/s/{code}")
        await user.get("/app")
        html = unescape(user.html)
        assert f'href="/chat">{T("web.miniapp.continue_in_browser")}<' in html


async def test_a_nul_in_the_mini_app_or_at_the_webhook_is_refused(app_client):
    """A NUL in the Mini App's JSON answer: 400 JSON, nothing stored. In a path segment
    or the query string of the Mini App's and the webhook's routes (only registered with
    a token, so not in the security sweep's app): 400 too."""
    sm = app_client.app[keys.SESSIONMAKER]
    seeded = await seed_school(sm, roles=["learner"])
    data = init_data(auth_date=time.time(), extra={"start_param": seeded.invites["learner"]})
    status, body = await api(app_client, "/app/api/state", data=data)
    assert status == 200, body
    for fields in ({"choice": "yes\x00"}, {"text": "a\x00b"}, {"choice": "yes", "x\x00": "1"}):
        status, body = await api(app_client, "/app/api/answer", fields)
        assert status == 400 and body["error"] == "bad_input", (fields, body)
        assert body["message"] == T("web.error.bad_input")
    assert await count(sm, Respondent) == 0  # the consent with a NUL did not count
    status, body = await api(app_client, "/app/api/answer", {"choice": "yes"})
    assert status == 200 and await count(sm, Respondent) == 1
    routes = [
        r
        for r in app_client.app.router.routes()
        if (r.name or "").startswith("webchat.app") or r.name == "telegram_webhook"
    ]
    assert len(routes) >= 4
    problems = await sweep_urls(app_client, routes, {}, lambda path: {})
    assert not problems, "\n".join(problems)


async def test_two_people_on_the_same_card_get_the_same_html_kept_once_and_as_if_rendered_anew(
    app_client,
):
    """The Mini App's card is kept rendered by its context (`webchat.Fragments`): a second
    person at the same card with the same answer gets the same HTML from the cache, and it is
    the HTML a render without the cache gives; another answer is another card."""
    sm = app_client.app[keys.SESSIONMAKER]
    seeded = await seed_school(sm, roles=["graduate"])
    fragments = app_client.app[keys.WEBCHAT_FRAGMENTS]

    def person(n: int) -> str:
        user = {**USER, "id": 500_000 + n}
        extra = {"start_param": seeded.invites["graduate"]}
        return init_data(auth_date=time.time(), user=user, extra=extra)

    async def to_first_question(data: str, choice: str) -> dict:
        await api(app_client, "/app/api/state", data=data)
        await api(app_client, "/app/api/answer", {"choice": "yes"}, data=data)
        _, body = await api(
            app_client, "/app/api/answer", {"question_id": "now", "choice": choice}, data=data
        )
        return body

    first = await to_first_question(person(1), "c:looking")
    kept = len(fragments._html)
    second = await to_first_question(person(2), "c:looking")
    assert second["html"] == first["html"] and second["prompts"][-1]["question_id"] == "g01"
    assert len(fragments._html) == kept  # nothing new to render for the second person
    fragments._html.clear()
    _, again = await api(app_client, "/app/api/answer", {}, data=person(2))  # rendered anew
    assert again["html"] == first["html"]
    # Back at the first card, each shows the answer they gave: two cards, not one.
    fragments.size = 1  # and the cache keeps no more than its size
    _, back2 = await api(app_client, "/app/api/answer", {"choice": "back"}, data=person(2))
    await to_first_question(person(3), "c:studying")
    _, back3 = await api(app_client, "/app/api/answer", {"choice": "back"}, data=person(3))
    assert back2["prompts"][-1]["question_id"] == back3["prompts"][-1]["question_id"] == "now"
    assert back2["html"] != back3["html"]
    assert len(fragments._html) == 1


def test_a_context_with_a_persons_own_token_or_typed_text_is_never_kept():
    """Nothing of one person's own goes into the cache: the web chat's pages (a CSRF token)
    and a card that shows text typed into the box are rendered each time."""
    card = {"kind": "question", "text": "Why?", "value": ""}
    assert webchat.Fragments.key({"t": None, "csrf": "", "card": card}) is not None
    assert webchat.Fragments.key({"t": None, "csrf": "tok", "card": card}) is None
    typed = {**card, "value": "my own words"}
    assert webchat.Fragments.key({"t": None, "csrf": "", "card": typed}) is None
    assert webchat.Fragments.key({"t": None, "csrf": "", "card": None, "x": object()}) is None
