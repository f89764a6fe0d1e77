"""The webhook's edges: secrets, sizes, garbage, duplicates, retries, Telegram's faults."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import select

from backend.web import keys
from bot import callback
from storage.models import Answer, Respondent
from tests.apptools import redis_commands
from tests.bot.conftest import open_bench
from tests.bot.walker import (
    button,
    count_rows,
    first_choice,
    start_and_consent,
    stored,
    walk_to_text_question,
)


def metric(bench, name: str, **labels: str) -> float:
    value = bench.app[keys.METRICS].registry.get_sample_value(name, labels or None)
    return value or 0.0


# -- bad input never reaches the bot and never answers 5xx ----------------------------------


async def test_secret_type_size_and_json_are_checked(bench):
    tg = bench.tg
    user = tg.user()
    update = tg.message(user, "/start")
    assert await tg.post(update, secret="") == 403
    assert await tg.post(update, secret="forged-secret") == 403
    assert await tg.post(update, headers={"Content-Type": "text/plain"}) == 415
    huge = b'{"update_id": 1, "message": {"text": "' + b"x" * 300_000 + b'"}}'
    assert await tg.post(None, data=huge) == 413
    assert await tg.post(None, data=b"{not json") == 400
    assert await tg.post(None, data=b"[1, 2, 3]") == 400
    assert await tg.post(None, data=b'{"message": {}}') == 400
    assert await tg.post(None, data=b"\xff\xfe\x00") == 400
    assert await tg.post(None, data=b"[" * 100_000) == 400
    # Shapes Telegram never sends still answer 200 (an error in our code, logged).
    assert await tg.post({"update_id": 5, "message": {"chat": "x"}}) == 200
    assert bench.fake.called("sendMessage") == []


async def test_the_webhooks_access_lines_say_only_what_metrics_do_not(bench, caplog):
    """An update answered 200 at once is counted by /metrics; its access line is DEBUG
    (a JSON line costs about 16 us of CPU, 1% of a tap). A refused request stays INFO."""
    caplog.set_level(logging.DEBUG, logger="backend.http")
    tg = bench.tg
    update = tg.message(tg.user(), "/start")
    assert await tg.post(update) == 200
    assert await tg.post(update, secret="forged-secret") == 403
    lines = [
        (r.levelno, r.getMessage().rsplit(" ", 2)[0])
        for r in caplog.records
        if r.name == "backend.http"
    ]
    assert lines == [
        (logging.DEBUG, "POST /telegram/webhook 200"),
        (logging.INFO, "POST /telegram/webhook 403"),
    ]


async def test_a_secret_header_that_is_not_ascii_is_refused_like_any_wrong_one(bench):
    """Non-ASCII in the secret header (as UTF-8, and as bytes that are no UTF-8 at all,
    which the server keeps as surrogates): 403, nothing processed, never a 500."""
    tg = bench.tg
    update = tg.message(tg.user(), "/start")
    for secret in ("ü", tg.secret + "ü", "секрет", "ü" + tg.secret[1:]):
        assert await tg.post(update, secret=secret) == 403, secret
    body = json.dumps(update).encode()
    host, port = bench.client.server.host, bench.client.server.port
    for raw in (b"\xff\xfe", "ü".encode("latin-1"), tg.secret.encode() + b"\xfc", b"\x80" * 8):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            b"POST /telegram/webhook HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/json\r\n"
            b"X-Telegram-Bot-Api-Secret-Token: " + raw + b"\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body
        )
        await writer.drain()
        status_line = (await reader.readline()).decode("latin-1")
        writer.close()
        await writer.wait_closed()
        assert status_line.split()[1] == "403", (raw, status_line)
    assert metric(bench, "gs_updates_total", outcome="forbidden") >= 8
    assert bench.fake.called("sendMessage") == []


async def test_huge_chunked_body_is_refused_while_reading(bench):
    async def chunks():
        for _ in range(40):
            yield b"x" * 10_000

    hdrs = {
        "Content-Type": "application/json",
        "X-Telegram-Bot-Api-Secret-Token": bench.tg.secret,
    }
    async with bench.client.post("/telegram/webhook", data=chunks(), headers=hdrs) as resp:
        assert resp.status == 413


async def test_unknown_updates_edits_and_channel_posts_are_ignored(bench):
    tg = bench.tg
    user = tg.user()
    for update in (
        tg.unknown("poll"),
        tg.unknown("some_future_update"),
        tg.unknown("channel_post"),
        tg.edited_message(user, "/start"),
    ):
        assert await tg.post(update) == 200
    await tg.settle()
    assert [c.method for c in bench.fake.calls if c.method not in ("getMe", "setMyCommands")] == []


async def test_groups_get_one_short_refusal(bench):
    tg, fake = bench.tg, bench.fake
    user = tg.user()
    assert await tg.send(user, "hello class") == [200]  # private, no survey: the no-code text
    assert await tg.deliver(tg.group_message(user, "/start abc")) == [200]
    assert await tg.deliver(tg.group_message(user, "what is this bot?")) == [200]
    await tg.settle()
    group = fake.called("sendMessage", -1001234567890)
    assert len(group) == 1 and "private chat" in group[0].params["text"]
    assert await count_rows(bench, Respondent) == 0


# -- exactly once --------------------------------------------------------------------------


async def test_duplicate_updates_are_processed_once(bench):
    tg, fake = bench.tg, bench.fake
    user = await start_and_consent(bench, "learner")
    card = fake.card(user.id)
    update = tg.tap_update(user, card, first_choice(card))
    # Five copies at once: one is processed; the others arrive while it is in flight and
    # get 503 (a lease, not a done mark: were the first to die, Telegram's retry must run).
    # The one that claimed the update (with the respondent's lock) stays in its step until
    # the other four have been refused (processing is faster than five requests' arrival).
    survey = bench.channel.survey
    apply = survey._apply
    refused: list[int] = []
    all_refused = asyncio.Event()

    async def held_apply(*args, **kwargs):
        await all_refused.wait()
        return await apply(*args, **kwargs)

    async def post():
        status = await tg.post(update)
        if status == 503:
            refused.append(status)
            if len(refused) == 4:
                all_refused.set()
        return status

    survey._apply = held_apply
    try:
        statuses = await asyncio.wait_for(asyncio.gather(*(post() for _ in range(5))), 10)
    finally:
        survey._apply = apply
    assert sorted(statuses) == [200, 503, 503, 503, 503]
    # Telegram retries those later: by then the update is done, so they are duplicates.
    for _ in range(4):
        assert await tg.post(update) == 200
    assert await tg.post(update) == 200  # and once more, later still
    await tg.settle(user)
    _, answers = await stored(bench, user)
    assert len(answers) == 1
    assert len(fake.called("editMessageText", user.id)) == 2  # consent + this answer
    assert len(fake.called("answerCallbackQuery")) == 2
    assert metric(bench, "gs_updates_total", outcome="duplicate") == 5


async def test_a_tap_claims_and_finishes_its_update_in_the_locks_two_round_trips(bench):
    """On Redis, the update's de-duplication mark rides on the respondent's lock: the tap's
    processing costs two Redis round trips (take + read, write + let go), and a copy of it
    later is still a duplicate."""
    if bench.app[keys.REDIS] is None:
        pytest.skip("the embedded default keeps sessions and update ids in memory")
    tg, fake = bench.tg, bench.fake
    user = await start_and_consent(bench, "learner")
    await tg.settle(user)
    card = fake.card(user.id)
    update = tg.tap_update(user, card, first_choice(card))
    with redis_commands(bench.app[keys.REDIS]) as calls:
        assert await tg.post(update) == 200
    # (the outbox notes the new card's id under its own key once it is delivered)
    processing = [c[0] for c in calls if "tgcard" not in " ".join(map(str, c[:3]))]
    assert processing == ["EVALSHA", "EVALSHA"], calls
    assert await tg.post(update) == 200
    await tg.settle(user)
    _, answers = await stored(bench, user)
    assert len(answers) == 1
    assert metric(bench, "gs_updates_total", outcome="duplicate") == 1


class FailOnce:
    """The use case store's sessionmaker and its PostgreSQL engine for asyncpg (one scored answer),
    failing their next use, together, with a transient database error."""

    def __init__(self, real, left: list[int]):
        self.real = real
        self.left = left  # shared by both wrappers: one failure in all

    def _maybe_fail(self):
        if self.left[0]:
            self.left[0] -= 1
            raise sa_exc.OperationalError("INSERT", {}, ConnectionRefusedError("db down"))

    def __call__(self, *args, **kwargs):
        self._maybe_fail()
        return self.real(*args, **kwargs)

    def begin(self):
        self._maybe_fail()
        return self.real.begin()

    def raw_connection(self):
        self._maybe_fail()
        return self.real.raw_connection()


async def test_transient_failure_answers_503_and_the_retry_lands_once(bench):
    tg, fake = bench.tg, bench.fake
    user = await start_and_consent(bench, "learner")
    store = bench.survey.answers  # the use case's SQL store
    real, real_driven = store.sessionmaker, store.driven
    left = [1]
    store.sessionmaker = FailOnce(real, left)
    if real_driven is not None:
        store.driven = FailOnce(real_driven, left)
    try:
        card = fake.card(user.id)
        assert await tg.tap(user, card, first_choice(card)) == [503, 200]
        assert left == [0]
    finally:
        store.sessionmaker, store.driven = real, real_driven
    await tg.settle(user)
    _, answers = await stored(bench, user)
    assert len(answers) == 1
    assert len(fake.called("editMessageText", user.id)) == 2
    assert len(fake.called("answerCallbackQuery")) == 2  # the failed try did not answer
    assert metric(bench, "gs_updates_total", outcome="transient") == 1


async def test_two_interleaved_taps_of_one_person(bench):
    """Two taps on the same card at once: one answers, the other is told it is stale."""
    tg, fake = bench.tg, bench.fake
    user = await start_and_consent(bench, "learner")
    card = fake.card(user.id)
    datas = [d for d in card.callback_data() if callback.decode(d).choice in ("4", "0")]
    statuses = await asyncio.gather(*(tg.tap(user, card, d) for d in datas))
    assert statuses == [[200], [200]]
    await tg.settle(user)
    _, answers = await stored(bench, user)
    assert len(answers) == 1
    state = await bench.survey.load_state(bench.subject(user))
    assert len(state["ans"]) == 1
    toasts = [c.params.get("text") for c in fake.called("answerCallbackQuery")]
    assert sum(1 for t in toasts if t and "another question" in t) == 1


# -- old buttons ------------------------------------------------------------------------------


async def test_taps_from_old_or_foreign_messages_are_refused_gracefully(bench):
    tg, fake = bench.tg, bench.fake
    user = await start_and_consent(bench, "learner")
    first = fake.card(user.id)
    old_data = first_choice(first)
    assert await tg.tap(user, first, old_data) == [200]
    await tg.settle(user)
    _, before = await stored(bench, user)
    card = fake.card(user.id)
    q = callback.decode(old_data)
    for data in (
        old_data,  # the question already answered
        f"1|{q.bank.split('@')[0]}@9|{q.target}|4",  # another bank version
        "0|learner@1|l01|4",  # an older format
        "garbage",
        "1|x",
        "",
    ):
        assert await tg.tap(user, card, data) == [200]
        assert await tg.tap(user, 424242, data) == [200]  # a message we never knew
    await tg.settle(user)
    _, after = await stored(bench, user)
    assert after == before
    assert len(fake.called("answerCallbackQuery")) == 2 + 12
    assert all(c.status == 200 for c in fake.calls)


async def test_delete_erases_and_a_later_tap_changes_nothing(bench):
    tg, fake = bench.tg, bench.fake
    user = await start_and_consent(bench, "learner")
    card = fake.card(user.id)
    assert await tg.tap(user, card, first_choice(card)) == [200]
    await tg.settle(user)
    question_card = fake.card(user.id)
    old = first_choice(question_card)
    assert await tg.send(user, "/delete") == [200]
    await tg.settle(user)
    confirm = fake.card(user.id)
    yes = button(confirm, "!d", "yes")
    assert await tg.tap(user, confirm, yes) == [200]
    await tg.settle(user)
    assert "erased" in fake.last(user.id).text
    assert await count_rows(bench, Respondent) == 0
    assert await count_rows(bench, Answer) == 0
    # The old question card is still on the phone: tapping it stores nothing.
    assert await tg.tap(user, question_card, old) == [200]
    assert await tg.tap(user, confirm, yes) == [200]
    await tg.settle(user)
    assert await count_rows(bench, Respondent) == 0
    assert await count_rows(bench, Answer) == 0
    key = bench.channel.card_key(bench.subject(user))
    assert await bench.survey.store.load(key) is None


# -- Telegram's faults ------------------------------------------------------------------------


async def test_429_is_honoured(bench):
    tg, fake = bench.tg, bench.fake
    user = await start_and_consent(bench, "learner")
    fake.fail("editMessageText", 429, "Too Many Requests: retry after 1", retry_after=1)
    card = fake.card(user.id)
    assert await tg.tap(user, card, first_choice(card)) == [200]
    await tg.settle(user)
    edits = fake.called("editMessageText", user.id, status=None)
    assert [c.status for c in edits[-2:]] == [429, 200]
    assert edits[-1].at - edits[-2].at >= 0.95
    assert metric(bench, "gs_bot_api_429_total") == 1


async def test_server_errors_are_retried_with_backoff(bench):
    tg, fake = bench.tg, bench.fake
    user = tg.user()
    fake.fail("sendMessage", 502, "Bad Gateway", times=2)
    assert await tg.send(user, f"/start {bench.seeded.invites['parent']}") == [200]
    await tg.settle(user)
    assert [c.status for c in fake.called("sendMessage", user.id, status=None)] == [502, 502, 200]
    fake.fail("sendMessage", 500, "Internal Server Error", times=50)
    assert await tg.send(user, "/help") == [200]
    await tg.settle(user)
    assert metric(bench, "gs_bot_api_calls_total", method="sendMessage", outcome="gave_up") == 2


async def test_403_marks_the_respondent_and_is_not_retried(bench):
    tg, fake = bench.tg, bench.fake
    user = await start_and_consent(bench, "learner")
    fake.fail("sendMessage", 403, "Forbidden: bot was blocked by the user", chat_id=user.id)
    sent_before = len(fake.called("sendMessage", user.id, status=None))
    assert await tg.send(user, "/help") == [200]  # help text + the card: two messages
    await tg.settle(user)
    calls = fake.called("sendMessage", user.id, status=None)[sent_before:]
    assert [c.status for c in calls] == [403]
    async with bench.sm() as s:
        blocked = await s.scalar(
            select(Respondent.blocked_at).where(Respondent.subject_hash == bench.subject(user))
        )
    assert blocked is not None


async def test_message_not_modified_is_tolerated(bench):
    tg, fake = bench.tg, bench.fake
    user = await start_and_consent(bench, "learner")
    fake.fail("editMessageText", 400, "Bad Request: message is not modified: same content")
    card = fake.card(user.id)
    assert await tg.tap(user, card, first_choice(card)) == [200]
    await tg.settle(user)
    assert len(fake.called("sendMessage", user.id)) == 1  # no fallback message
    assert (
        metric(bench, "gs_bot_api_calls_total", method="editMessageText", outcome="not_modified")
        == 1
    )
    assert metric(bench, "gs_errors_total", kind="update") == 0


async def test_a_slow_bot_api_does_not_hold_the_webhook(bench):
    tg, fake = bench.tg, bench.fake
    user = await start_and_consent(bench, "learner")
    fake.slow("editMessageText", 1.0)
    card = fake.card(user.id)
    started = time.monotonic()
    assert await tg.tap(user, card, first_choice(card)) == [200]
    assert time.monotonic() - started < 0.5
    # ... and answerCallbackQuery did not wait behind the slow edit.
    assert len(fake.called("answerCallbackQuery")) == 2
    await tg.settle(user)
    assert len(fake.called("editMessageText", user.id)) == 2


# -- startup, polling, the Mini App button --------------------------------------------------


async def test_set_webhook_commands_and_mini_app_button(storage, fake_api):
    settings = {
        "public_url": "https://survey.example.org",
        "telegram_api_base_url": fake_api.url + "/bot/",
    }
    async with open_bench(storage, fake_api, settings=settings, set_webhook=True) as bench:
        hook = fake_api.webhook
        assert hook["url"] == "https://survey.example.org/telegram/webhook"
        assert hook["secret_token"] == bench.tg.secret
        assert hook["allowed_updates"] == ["message", "callback_query", "my_chat_member"]
        assert hook["max_connections"] == 40
        commands = fake_api.called("setMyCommands")[0].params["commands"]
        assert {c["command"] for c in commands} >= {"start", "delete", "privacy", "language"}
        assert bench.app[keys.BOT_USERNAME] == "guidance_test_bot"
        user = bench.tg.user()
        await bench.tg.send(user, f"/start {bench.seeded.invites['employer']}")
        await bench.tg.settle(user)
        buttons = fake_api.card(user.id).buttons()
        assert {
            "text": "Answer in one screen",
            "web_app": {"url": "https://survey.example.org/app"},
        } in buttons


async def test_polling_mode_feeds_the_same_dispatch(storage, fake_api):
    async with open_bench(storage, fake_api, polling=True, poll_timeout=1) as bench:
        assert fake_api.called("deleteWebhook")
        user = bench.tg.user()
        fake_api.push_update(bench.tg.message(user, f"/start {bench.seeded.invites['teacher']}"))
        for _ in range(200):
            if fake_api.called("sendMessage", user.id):
                break
            await asyncio.sleep(0.02)
        assert "Do you agree" in fake_api.called("sendMessage", user.id)[0].params["text"]
    # Shutdown stopped the loop: no getUpdates after the app closed.
    n = len(fake_api.called("getUpdates"))
    await asyncio.sleep(0.2)
    assert len(fake_api.called("getUpdates")) == n


async def test_shutdown_drains_pending_sends(storage, fake_api):
    async with open_bench(storage, fake_api) as bench:
        fake_api.slow("sendMessage", 0.3, times=3)
        users = [bench.tg.user() for _ in range(3)]
        for user in users:
            assert await bench.tg.send(user, "/help") == [200]
    for user in users:
        assert len(fake_api.called("sendMessage", user.id)) == 1


async def test_commands_at_any_point_and_blocking_via_member_updates(bench):
    tg, fake = bench.tg, bench.fake
    user = await start_and_consent(bench, "learner")
    for command in (
        "/help",
        "/privacy",
        "/language",
        "/stop",
        "/resume",
        "/start",
        "/restart",
        "/nonsense",
        "/delete@guidance_test_bot",
    ):
        assert await tg.send(user, command) == [200], command
        await tg.settle(user)
    assert "Erase all your answers?" in fake.card(user.id).text
    assert metric(bench, "gs_errors_total", kind="update") == 0
    texts = [c.params["text"] for c in fake.called("sendMessage", user.id)]
    assert any("What we store" in t for t in texts)
    assert any(t.startswith("Question 1 of") for t in texts)  # /start alone resumes
    # Blocking and unblocking arrive as my_chat_member updates.
    subject = bench.subject(user)

    async def blocked_at():
        async with bench.sm() as s:
            return await s.scalar(
                select(Respondent.blocked_at).where(Respondent.subject_hash == subject)
            )

    def member(status: str) -> dict:
        return tg._update(
            my_chat_member={
                "chat": {"id": user.id, "type": "private", "first_name": user.first_name},
                "from": user.as_dict(),
                "date": int(time.time()),
                "old_chat_member": {
                    "user": {"id": 1, "is_bot": True, "first_name": "b"},
                    "status": "member",
                },
                "new_chat_member": {
                    "user": {"id": 1, "is_bot": True, "first_name": "b"},
                    "status": status,
                    "until_date": 0,
                },
            }
        )

    assert await tg.deliver(member("kicked")) == [200]
    assert await blocked_at() is not None
    assert await tg.deliver(member("member")) == [200]
    assert await blocked_at() is None


async def test_a_nul_in_a_typed_answer_is_dropped_not_an_error(bench):
    """Telegram delivers what was typed; a NUL (PostgreSQL cannot store one) must neither
    fail the update nor be stored: the answer is kept without it."""
    tg = bench.tg
    user, qid = await walk_to_text_question(bench)
    assert await tg.send(user, "More\x00 visits\x00") == [200]
    await tg.settle(user)
    _status, given = await stored(bench, user)
    assert given.get(qid) == "More visits"
    state = await bench.survey.load_state(bench.subject(user))
    assert state.get("pos") != qid


async def test_a_too_long_message_gets_a_clear_reply_and_nothing_is_taken(bench):
    """A message longer than the answer may be (Telegram takes 4,096 characters in one
    message): a reply says it was not saved, the limit and what to do; the card comes back
    below it, at the same question; nothing is stored. A shorter one then goes through."""
    tg, fake = bench.tg, bench.fake
    user, qid = await walk_to_text_question(bench)
    long_text = ("Work placements in real companies, please. " * 100)[:4_095] + "!"
    assert await tg.send(user, long_text) == [200]
    await tg.settle(user)
    reply = fake.last(user.id).text
    assert reply.startswith(
        "⚠️ Not saved: your answer has 4,096 characters, and this question takes at most "
        "1,000. Please shorten it and send it again."
    )
    state = await bench.survey.load_state(bench.subject(user))
    assert state["pos"] == qid and qid not in state["ans"]
    _status, given = await stored(bench, user)
    assert qid not in given
    assert await tg.send(user, long_text[:900]) == [200]
    await tg.settle(user)
    _status, given = await stored(bench, user)
    assert given.get(qid) == long_text[:900].strip()


async def test_a_crowd_is_offered_the_mini_app_on_the_question_card(storage, fake_api):
    """When the bot's outbound queue holds seconds of Telegram's 30 messages/s (a classroom
    tapping at once), the next question card also offers the Mini App; once it drains, not."""
    from bot.channel import BUSY_QUEUE
    from bot.outbox import Outgoing

    settings = {"public_url": "https://survey.example.org"}
    busy_button = {
        "text": "Many are answering now: quicker in one screen",
        "web_app": {"url": "https://survey.example.org/app"},
    }
    async with open_bench(storage, fake_api, settings=settings) as bench:
        tg, outbox = bench.tg, bench.channel.outbox
        user = await start_and_consent(bench, "learner")
        assert busy_button not in fake_api.card(user.id).buttons()
        # Other people's messages, each delivered slowly: the queue stays deep for a while.
        fake_api.slow("sendMessage", 1.0, times=BUSY_QUEUE)
        outbox.submit([Outgoing(-5000 - i, f"message {i}") for i in range(BUSY_QUEUE)])
        assert outbox.depth >= BUSY_QUEUE
        card = fake_api.card(user.id)
        assert await tg.tap(user, card, first_choice(card)) == [200]
        await tg.settle(user)
        assert busy_button in fake_api.card(user.id).buttons()
        await outbox.join()
        assert outbox.depth == 0
        card = fake_api.card(user.id)
        assert await tg.tap(user, card, first_choice(card)) == [200]
        await tg.settle(user)
        assert busy_button not in fake_api.card(user.id).buttons()
