"""Bad input at the webhook, the web chat and the Mini App: never a 5xx, never an
unhandled exception in the logs, and forged taps never write to the database.

Runs on SQLite with in-memory sessions (fast); the inputs are Hypothesis examples drawn
up front with the fixed "fuzz" profile and posted one by one.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from hypothesis import strategies as st

from backend.web import keys, webchat
from backend.web.miniapp import sign_init_data
from bot import callback
from tests.apptools import TOKEN, db_url_of
from tests.bot.conftest import Bench, open_bench
from tests.bot.fakebot import FakeBotAPI
from tests.bot.walker import dump_storage, start_and_consent
from tests.fuzz.support import JSON, examples, replaced

OK = {200, 400, 403, 413, 415}


@pytest.fixture
def db_url(tmp_path: Any) -> str:
    """SQLite only (overrides the sqlite/postgres parametrisation): fast."""
    return f"sqlite+aiosqlite:///{tmp_path / 'fuzz.db'}"


@pytest.fixture
async def bench(db_engine: Any) -> AsyncIterator[Bench]:
    storage = {"database_url": db_url_of(db_engine)}
    async with (
        FakeBotAPI() as fake,
        open_bench(storage, fake, settings={"public_url": "https://x.example"}) as b,
    ):
        yield b


@pytest.fixture
def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """ERROR records; an exception escaping a handler shows up here (aiohttp.server)."""
    caplog.set_level(logging.WARNING)

    class View(list):  # type: ignore[type-arg]
        def __iter__(self) -> Any:
            return iter([r for r in caplog.records if r.levelno >= logging.ERROR])

        def __len__(self) -> int:
            return len(list(iter(self)))

    return View()


def unhandled(records: Any) -> list[str]:
    return [
        r.getMessage()
        for r in records
        if r.name.startswith("aiohttp") or r.exc_info or "Traceback" in r.getMessage()
    ]


# -- the webhook --------------------------------------------------------------------------


def paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += paths(v, (*prefix, i))
    return out


async def test_webhook_arbitrary_json_and_wrong_types(bench: Bench, errors: Any) -> None:
    tg = bench.tg
    user = await start_and_consent(bench, "graduate")
    templates = [
        tg.message(user, "hello"),
        tg.message(user, "/start abc"),
        tg.tap_update(user, 5, "1|graduate@1|g01|4"),
    ]
    wrong = st.sampled_from(templates).flatmap(
        lambda t: st.tuples(st.just(t), st.sampled_from(paths(t)), JSON)
    )
    bodies: list[Any] = examples(JSON, 40)
    bodies += [{"update_id": i, **b} if isinstance(b, dict) else b for i, b in enumerate(bodies)]
    bodies += [replaced(t, p, v) for t, p, v in examples(wrong, 120)]
    statuses = []
    for body in bodies:
        raw = json.dumps(body).encode()
        statuses.append(await tg.post(None, data=raw))
    assert set(statuses) <= OK, sorted(set(statuses))
    assert not unhandled(caplog_records(errors))


def caplog_records(errors: Any) -> list[logging.LogRecord]:
    return list(iter(errors))


async def test_webhook_unicode_huge_and_deep(bench: Bench, errors: Any) -> None:
    tg = bench.tg
    user = await start_and_consent(bench, "graduate")
    texts = examples(st.text(min_size=1, max_size=300), 40)
    texts += ["\u0000", "\ud800 lone surrogate", "🙂" * 2000, "a" * 5000, "\u202e RTL", "x\r\ny"]
    for text in texts:
        assert await tg.post(tg.message(user, text)) == 200
    big = {"update_id": 1, "message": {"text": "x" * 300_000}}
    assert await tg.post(None, data=json.dumps(big).encode()) == 413
    for depth in (50, 500, 5_000, 100_000):
        nested = b'{"update_id": 1, "message": ' + b'{"a": ' * depth + b"1" + b"}" * (depth + 1)
        assert await tg.post(None, data=nested) in OK
        arr = b'{"update_id": 2, "message": {"text": ' + b"[" * depth + b"]" * depth + b"}}"
        assert await tg.post(None, data=arr) in OK
    for raw in (b"\xff\xfe", b'{"update_id": 3, "message": {"text": "\xc3\x28"}}', b"\x00" * 10):
        assert await tg.post(None, data=raw) in OK
    assert not unhandled(caplog_records(errors))


async def test_forged_callback_data_changes_nothing(bench: Bench, errors: Any) -> None:
    """Another question's id, another bank, another person's card, overlong, garbage."""
    tg = bench.tg
    victim = await start_and_consent(bench, "graduate")
    stranger = tg.user()  # never started: has nothing to answer
    state = await bench.survey.load_state(bench.subject(victim))
    bank, pos = state["bank"], state["pos"]
    other_qids = [q.id for q in bench.survey.engine.bank_for(state).questions if q.id != pos]
    other_banks = [t for t in bench.survey.engine.banks if t != bank]
    forged = [
        *(callback.encode(bank, q, "4") for q in other_qids),  # another question
        *(f"1|{b}|{pos}|4" for b in other_banks),  # another bank's tag
        f"2|{bank}|{pos}|4",  # another version
        f"1|{bank}|{pos}|9",  # out of range
        f"1|{bank}|{pos}|-1",
        f"1|{bank}|{pos}|c:nope",
        f"1|{bank}|{pos}|" + "4" * 80,  # overlong
        f"1|{bank}|!x|yes",
        f"1|{bank}|!d|yes",  # a delete confirmation nobody asked for
        f"1|{bank}|!l|lang:xx",
        "1|-|!c|maybe",
        "",
        "|||",
        "1|" + "\ud800" + "|x|y",  # not UTF-8 encodable
        "\x00\x01",
    ]
    forged += examples(st.text(max_size=80), 40)
    forged += examples(
        st.builds(
            lambda b, q, c: f"1|{b}|{q}|{c}",
            st.sampled_from([bank, *other_banks, "-", ""]),
            st.sampled_from([*other_qids, "!c", "!q", ""]),
            st.text(max_size=10),
        ),
        40,
    )
    # The stranger taps the victim's real buttons: nobody to answer for.
    card = bench.fake.card(victim.id)
    stranger_taps = card.callback_data()
    await tg.settle()
    before = await dump_storage(bench)
    for data in forged:
        assert await tg.post(tg.tap_update(victim, 1, data)) == 200, data
    for data in stranger_taps:
        assert await tg.post(tg.tap_update(stranger, 1, data)) == 200, data
    await tg.settle()
    # Card memory (tgcard) may be rewritten by re-sent cards; answers, sessions: no.
    after = await dump_storage(bench)
    strip = [line for line in before.splitlines() if "tgcard" not in line]
    assert [line for line in after.splitlines() if "tgcard" not in line] == strip
    assert (await bench.survey.load_state(bench.subject(victim))) == state
    assert not caplog_records(errors), [r.getMessage() for r in caplog_records(errors)]
    # Every tap was answered (the button stops spinning), none waited on a send.
    answered = bench.fake.called("answerCallbackQuery")
    assert len(answered) >= len(forged) + len(stranger_taps)


# -- the web chat and the Mini App -----------------------------------------------------------

FIELD_NAMES = st.sampled_from(
    ["choice", "text", "question_id", "action", "csrf", "lang", "x", "choice[]", ""]
)
FIELD_VALUES = st.sampled_from(
    ["back", "skip", "yes", "no", "na", "4", "9", "lang:xx", "stop", "delete", "c:work"]
) | st.text(max_size=60)
FORMS = st.dictionaries(FIELD_NAMES, FIELD_VALUES, max_size=5)


async def test_web_chat_post_with_arbitrary_fields(bench: Bench, errors: Any) -> None:
    client = bench.client
    base = str(client.make_url(""))
    # The app is https by its PUBLIC_URL, so its cookies are Secure: as a browser on https.
    jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=base)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        async with session.get(f"{base}/s/{bench.seeded.invites['graduate']}") as r:
            assert r.status == 200
        cookie = next(c.value for c in jar if c.key == webchat.COOKIE)
        token = webchat.csrf_token(bench.app[keys.SECRET_KEY], cookie)
        async with session.post(f"{base}/chat", data={"csrf": token, "choice": "yes"}) as r:
            assert r.status == 200
        for i, form in enumerate(examples(FORMS, 80)):
            data = dict(form)
            if i % 4:
                data["csrf"] = token
            headers = {"Accept": "application/json"} if i % 2 else {}
            async with session.post(f"{base}/chat", data=data, headers=headers) as r:
                assert r.status in (200, 403), (form, r.status)
        for raw, ctype in (
            (b"\xff\xfe\x00", "application/x-www-form-urlencoded"),
            (b"--x\r\n", "multipart/form-data; boundary=x"),
            (json.dumps({"choice": "4"}).encode(), "application/json"),
            (
                b"choice=" + b"4" * 70_000 + b"&csrf=" + token.encode(),
                "application/x-www-form-urlencoded",
            ),
        ):
            async with session.post(f"{base}/chat", data=raw, headers={"Content-Type": ctype}) as r:
                assert r.status < 500, (raw[:20], r.status)
    assert not unhandled(caplog_records(errors))


def init_data(user_id: Any, **extra: str) -> str:
    from urllib.parse import urlencode

    fields = {
        "auth_date": str(int(time.time())),
        "query_id": "AAH",
        "user": json.dumps({"id": user_id, "first_name": "Ada"}),
        **extra,
    }
    fields["hash"] = sign_init_data(fields, TOKEN)
    return urlencode(fields)


async def test_mini_app_with_arbitrary_json_and_init_data(bench: Bench, errors: Any) -> None:
    client = bench.client
    good = init_data(7_300_000_123, start_param=bench.seeded.invites["parent"])
    hdr = {webchat.INIT_DATA_HEADER: good}
    r = await client.post("/app/api/state", headers=hdr)
    assert r.status == 200
    for body in examples(JSON | FORMS, 80):
        r = await client.post("/app/api/answer", data=json.dumps(body), headers=hdr)
        assert r.status in (200, 400), (body, r.status)
    for raw in (b"{", b"\xff", b"[" * 10_000, b'"x"', b"x" * 70_000):
        r = await client.post("/app/api/answer", data=raw, headers=hdr)
        assert r.status in (400, 413), (raw[:10], r.status)
    headers = [
        *examples(st.text(max_size=200), 30),
        init_data("7"),
        init_data(True),
        init_data(10**30),
        init_data(1, start_param="../../etc"),
        init_data(2, start_param="x" * 500),
        "hash=" + "0" * 64,
        good + "&hash=00",
    ]
    for value in headers:
        try:
            hdrs = {webchat.INIT_DATA_HEADER: value}
            r = await client.post("/app/api/state", headers=hdrs)
        except ValueError:  # a header aiohttp will not send (newlines): not our concern
            continue
        assert r.status in (200, 400, 401, 403), (value[:40], r.status)
    assert not unhandled(caplog_records(errors))
