"""A typed answer sends the next card as a new message: the old card loses its buttons first.

A tap edits the card in place (one editMessageText). Typed input (a number, a comment, a
command that shows the card again) cannot edit it: the next card goes out as a new message
below the typed one. The old card, higher up, is then stripped of its keyboard
(editMessageReplyMarkup without a markup), queued before the new card, so only one card in
the chat has buttons. A 400 on that strip (deleted, too old, not modified) changes nothing. /stop strips the card
too (no card follows it), and when two typed messages cross (both handled before either
new card is out), the card sent first is stripped once the second is delivered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import select

from backend.web import keys
from backend.web.app import create_app
from bot import callback
from conversations.i18n import Translator
from storage.models import Answer
from tests.apptools import (
    TOKEN,
    WEBHOOK_SECRET,
    client_of,
    make_settings,
    seed_school,
    with_number_bank,
)
from tests.bot.conftest import FAST_RATES, Bench
from tests.bot.fakebot import Call, FakeBotAPI, Telegram, User
from tests.bot.walker import button, walk_survey

T = Translator("en")
STRIP = "editMessageReplyMarkup"


@asynccontextmanager
async def number_bench(storage: dict[str, Any], fake: FakeBotAPI) -> AsyncIterator[Bench]:
    """The real app whose employer bank asks an (optional) number question first."""
    values = dict(storage)
    values.update(
        telegram_bot_token=TOKEN,
        telegram_webhook_secret=WEBHOOK_SECRET,
        telegram_api_base_url=fake.url,
    )
    db_url = values.pop("database_url")
    app = create_app(make_settings(db_url, **values), bot_rates=FAST_RATES, bot_backoff=0.01)
    async with client_of(with_number_bank(app)) as client:
        seeded = await seed_school(app[keys.SESSIONMAKER], roles=["employer"])
        yield Bench(client, fake, Telegram(client, fake), seeded)


async def at_number_question(bench: Bench) -> User:
    """/start, consent tap: the card (with its Skip button) asks the number question n1."""
    tg, fake = bench.tg, bench.fake
    user = tg.user()
    assert await tg.send(user, f"/start {bench.seeded.invites['employer']}") == [200]
    await tg.settle(user)
    card = fake.card(user.id)
    assert card is not None
    assert await tg.tap(user, card, button(card, callback.CONSENT, "yes")) == [200]
    await tg.settle(user)
    card = fake.card(user.id)
    assert card is not None and callback.decode(card.callback_data()[0]).target == "n1"
    return user


def message_calls(fake: FakeBotAPI, user: User, mark: int) -> list[Call]:
    """The outbox's calls for this chat from call `mark` on (answerCallbackQuery has no chat)."""
    return [c for c in fake.calls[mark:] if c.params.get("chat_id") == user.id]


def metric(bench: Bench, name: str, **labels: str) -> float:
    return bench.app[keys.METRICS].registry.get_sample_value(name, labels or None) or 0.0


def cards_with_buttons(fake: FakeBotAPI, user: User) -> list[int]:
    return [m.message_id for m in fake.messages(user.id) if m.callback_data()]


async def send_and_watch(tg: Telegram, user: User, text: str) -> list[Call]:
    """Type `text`, wait for the outbox; the message calls it made for this chat."""
    mark = len(tg.fake.calls)
    assert await tg.send(user, text) == [200]
    await tg.settle(user)
    return message_calls(tg.fake, user, mark)


async def test_a_typed_number_strips_the_old_card_before_the_new_one(storage, fake_api):
    async with number_bench(storage, fake_api) as bench:
        tg, fake = bench.tg, bench.fake
        user = await at_number_question(bench)
        old = fake.card(user.id)
        assert old is not None

        # A bad number: the question comes again (a new card, with the notice): strip too.
        calls = await send_and_watch(tg, user, "lots")
        assert [c.method for c in calls] == [STRIP, "sendMessage"]
        assert calls[0].params["message_id"] == old.message_id
        assert "reply_markup" not in calls[0].params  # no markup: the keyboard is removed
        assert T("number.invalid", example="1") in calls[1].params["text"]
        again = fake.card(user.id)
        assert again is not None and again.message_id != old.message_id
        assert fake.messages(user.id)[0].text == old.text  # the text stays, the buttons go
        assert cards_with_buttons(fake, user) == [again.message_id]

        # The right number: the next question's card, after the strip of the re-sent one.
        calls = await send_and_watch(tg, user, "12")
        assert [c.method for c in calls] == [STRIP, "sendMessage"]
        assert calls[0].params["message_id"] == again.message_id
        assert calls[0].at <= calls[1].at
        new = fake.card(user.id)
        assert new is not None and callback.decode(new.callback_data()[0]).target == "e1"
        assert cards_with_buttons(fake, user) == [new.message_id]
        assert all(c.status == 200 for c in fake.calls)
        async with bench.sm() as s:
            assert (await s.execute(select(Answer.number))).scalar_one() == 12


async def test_a_tap_still_edits_in_place_with_no_extra_call(storage, fake_api):
    async with number_bench(storage, fake_api) as bench:
        tg, fake = bench.tg, bench.fake
        user = await at_number_question(bench)
        assert await tg.send(user, "12") == [200]
        await tg.settle(user)
        card = fake.card(user.id)
        assert card is not None
        mark = len(fake.calls)
        choice = next(
            d for d in card.callback_data() if callback.decode(d).choice not in ("back", "skip")
        )
        assert await tg.tap(user, card, choice) == [200]
        await tg.settle(user)
        # The toast (in the webhook's answer) and the edit, in either order; nothing else.
        calls = fake.calls[mark:]
        assert sorted(c.method for c in calls) == ["answerCallbackQuery", "editMessageText"]
        assert [c.params["message_id"] for c in calls if c.method == "editMessageText"] == [
            card.message_id
        ]
        # The survey is done; the done card shows no buttons: typing now strips nothing.
        calls = await send_and_watch(tg, user, "hello")
        assert [c.method for c in calls] == ["sendMessage"]
        assert all(c.status == 200 for c in fake.calls)


async def test_a_400_on_the_strip_is_tolerated_and_the_card_still_goes_out(storage, fake_api):
    async with number_bench(storage, fake_api) as bench:
        tg, fake = bench.tg, bench.fake
        user = await at_number_question(bench)
        fake.fail(STRIP, 400, "Bad Request: message to edit not found", chat_id=user.id)
        calls = await send_and_watch(tg, user, "lots")
        assert [(c.method, c.status) for c in calls] == [(STRIP, 400), ("sendMessage", 200)]

        fake.fail(
            STRIP,
            400,
            "Bad Request: message is not modified: specified new message content and reply "
            "markup are exactly the same as a current content and reply markup of the message",
            chat_id=user.id,
        )
        calls = await send_and_watch(tg, user, "12")
        assert [(c.method, c.status) for c in calls] == [(STRIP, 400), ("sendMessage", 200)]
        card = fake.card(user.id)
        assert card is not None and callback.decode(card.callback_data()[0]).target == "e1"

        # The old card deleted on the phone: the real answer of the fake is a 400 too.
        fake.chats[user.id].pop(card.message_id)
        calls = await send_and_watch(tg, user, "/resume")
        assert [(c.method, c.status) for c in calls] == [(STRIP, 400), ("sendMessage", 200)]
        resent = fake.card(user.id)
        assert resent is not None and resent.text == card.text

        # Nothing was given up, nothing sent twice; the flow goes on with a tap.
        assert metric(bench, "gs_bot_api_calls_total", method=STRIP, outcome="gave_up") == 0
        assert metric(bench, "gs_bot_api_calls_total", method=STRIP, outcome="not_modified") == 1
        assert metric(bench, "gs_bot_api_calls_total", method=STRIP, outcome="bad_request") == 2
        choice = next(
            d for d in resent.callback_data() if callback.decode(d).choice not in ("back", "skip")
        )
        assert await tg.tap(user, resent, choice) == [200]
        await tg.settle(user)
        state = await bench.survey.load_state(bench.subject(user))
        assert state["stage"] == "done"


async def test_no_strip_without_a_card_or_without_a_new_card(bench):
    tg, fake = bench.tg, bench.fake
    user = tg.user()
    # Before /start: no card yet, nothing to strip (the answers are info messages).
    assert await tg.send(user, "hello") == [200]
    assert await tg.send(user, "/help") == [200]
    await tg.settle(user)
    assert fake.called(STRIP, status=None) == []
    # /start: the first card; still nothing to strip.
    assert await tg.send(user, f"/start {bench.seeded.invites['learner']}") == [200]
    await tg.settle(user)
    assert fake.called(STRIP, status=None) == []
    consent = fake.card(user.id)
    assert consent is not None
    # /help on the card: the help, then the card anew; the strip comes just before it.
    calls = await send_and_watch(tg, user, "/help")
    assert [c.method for c in calls] == ["sendMessage", STRIP, "sendMessage"]
    assert "reply_markup" not in calls[0].params
    assert calls[1].params["message_id"] == consent.message_id
    card = fake.card(user.id)
    assert card is not None and cards_with_buttons(fake, user) == [card.message_id]
    # A tap on it: edited in place, nothing stripped.
    mark = len(fake.calls)
    assert await tg.tap(user, card, button(card, callback.CONSENT, "yes")) == [200]
    await tg.settle(user)
    assert [c.method for c in message_calls(fake, user, mark)] == ["editMessageText"]
    # /stop sends no card, only a note: the card loses its buttons first (a tap on it
    # would otherwise go on with a survey the person said they stopped).
    calls = await send_and_watch(tg, user, "/stop")
    assert [c.method for c in calls] == [STRIP, "sendMessage"]
    assert calls[0].params["message_id"] == card.message_id
    assert cards_with_buttons(fake, user) == []
    # /resume shows the card anew; the old one has no buttons left to strip.
    calls = await send_and_watch(tg, user, "/resume")
    assert [c.method for c in calls] == ["sendMessage"]
    assert cards_with_buttons(fake, user) == [fake.card(user.id).message_id]
    # /stop then /stop again: the second one has no card to strip.
    assert await tg.send(user, "/stop") == [200]
    await tg.settle(user)
    calls = await send_and_watch(tg, user, "/stop")
    assert [c.method for c in calls] == ["sendMessage"]
    assert await tg.send(user, "/resume") == [200]
    await tg.settle(user)
    assert cards_with_buttons(fake, user) == [fake.card(user.id).message_id]
    # /start again (the same link): the card anew, the old one stripped (read without `also`).
    calls = await send_and_watch(tg, user, f"/start {bench.seeded.invites['learner']}")
    assert [c.method for c in calls] == [STRIP, "sendMessage"]
    assert cards_with_buttons(fake, user) == [fake.card(user.id).message_id]
    assert all(c.status == 200 for c in fake.calls)


async def test_a_whole_survey_leaves_one_card_with_buttons(bench):
    """The learner survey: taps edit the card; the typed comment strips it once."""
    user = bench.tg.user()
    w = await walk_survey(bench, user, "learner")
    await bench.tg.settle(user)
    fake = bench.fake
    assert w.typed >= 1
    assert len(fake.called(STRIP, user.id)) == w.typed
    assert len(fake.called("sendMessage", user.id)) == 1 + w.typed
    assert len(fake.called("editMessageText", user.id)) == w.taps
    assert len(cards_with_buttons(fake, user)) <= 1
    assert all(c.status == 200 for c in fake.calls)


async def test_stop_before_consent_declines_and_strips_the_consent_card(bench):
    tg, fake = bench.tg, bench.fake
    user = tg.user()
    assert await tg.send(user, f"/start {bench.seeded.invites['learner']}") == [200]
    await tg.settle(user)
    consent = fake.card(user.id)
    assert consent is not None and consent.callback_data()
    calls = await send_and_watch(tg, user, "/stop")
    assert [c.method for c in calls] == [STRIP, "sendMessage"]
    assert calls[0].params["message_id"] == consent.message_id
    assert cards_with_buttons(fake, user) == []
    assert T("consent.declined") in calls[1].params["text"]
    # Declined: nothing is kept under the person's hash, not even the card id.
    assert await bench.survey.store.load(bench.channel.card_key(bench.subject(user))) is None


async def test_two_typed_messages_at_once_leave_only_the_newest_card_with_buttons(
    storage, fake_api
):
    """Both messages are handled before either new card goes out (the first strip is slow),
    so both read the same old card: the card sent first is stripped once the second is out."""
    async with number_bench(storage, fake_api) as bench:
        tg, fake = bench.tg, bench.fake
        user = await at_number_question(bench)
        old = fake.card(user.id)
        assert old is not None
        fake.slow(STRIP, 0.5)
        mark = len(fake.calls)
        assert await tg.send(user, "lots") == [200]
        assert await tg.send(user, "many") == [200]  # handled while the first strip waits
        await tg.settle(user)
        calls = message_calls(fake, user, mark)
        sent = [c for c in calls if c.method == "sendMessage"]
        assert len(sent) == 2
        first, second = (m.message_id for m in fake.messages(user.id)[-2:])
        assert [(c.method, c.params["message_id"]) for c in calls if c.method == STRIP] == [
            (STRIP, old.message_id),
            (STRIP, old.message_id),  # the second message read the same old card
            (STRIP, first),  # then the card sent first, once the second was out
        ]
        assert cards_with_buttons(fake, user) == [second]
        assert fake.card(user.id).message_id == second
        assert metric(bench, "gs_bot_api_calls_total", method=STRIP, outcome="gave_up") == 0
        # The newest card works: the right number goes on to the next question.
        assert await tg.send(user, "12") == [200]
        await tg.settle(user)
        card = fake.card(user.id)
        assert card is not None and callback.decode(card.callback_data()[0]).target == "e1"
        assert cards_with_buttons(fake, user) == [card.message_id]
