"""A respondent who answers a whole survey through Telegram, as a person would:
reads the card the fake Bot API shows, taps one of its buttons or types a reply."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select

from backend.web import keys
from bot import callback
from storage import responses
from storage.models import Respondent, Response
from tests.bot.fakebot import Shown, User


@dataclass
class Walk:
    user: User
    taps: int = 0
    typed: int = 0
    answered: list[str] = field(default_factory=list)


def button(card: Shown, target: str, choice: str | None = None) -> str:
    """The callback data of a button on `card` for `target` (and `choice`, else the first)."""
    for data in card.callback_data():
        tap = callback.decode(data)
        if tap and tap.target == target and (choice is None or tap.choice == choice):
            return data
    raise AssertionError(f"no button {target}/{choice} on the card: {card.callback_data()}")


def first_choice(card: Shown) -> str:
    """The callback data of the card's first answer button (not Back, not Skip)."""
    for data in card.callback_data():
        tap = callback.decode(data)
        if tap and tap.question_id and tap.choice not in ("back", "skip"):
            return data
    raise AssertionError(card.callback_data())


async def start_and_consent(bench, role: str) -> User:
    """A new Telegram user who opened `role`'s invite and tapped "yes" to consent."""
    tg, fake = bench.tg, bench.fake
    user = tg.user()
    assert await tg.send(user, f"/start {bench.seeded.invites[role]}") == [200]
    await tg.settle(user)
    card = fake.card(user.id)
    assert await tg.tap(user, card, button(card, callback.CONSENT, "yes")) == [200]
    await tg.settle(user)
    return user


async def walk_survey(bench, user: User, role: str, *, seed: int = 0) -> Walk:
    """/start <code>, consent, then answer every question until done."""
    tg, fake = bench.tg, bench.fake
    w = Walk(user)
    assert await tg.send(user, f"/start {bench.seeded.invites[role]}") == [200]
    await tg.settle(user)
    card = fake.card(user.id)
    assert card is not None, "no consent card"
    assert await tg.tap(user, card, button(card, callback.CONSENT, "yes")) == [200]
    w.taps += 1
    engine = bench.survey.engine
    subject = bench.subject(user)
    for i in range(200):
        await tg.settle(user)
        state = await bench.survey.load_state(subject)
        if state.get("stage") == "done":
            return w
        assert state.get("stage") == "question", state.get("stage")
        q = engine.bank_for(state).question(state["pos"])
        if q.kind in ("scale", "choice"):
            card = fake.card(user.id)
            assert card is not None
            choices = [
                t.choice
                for t in map(callback.decode, card.callback_data())
                if t and t.target == q.id and t.choice not in ("back", "skip")
            ]
            assert choices, f"card does not show {q.id}"
            assert await tg.tap(
                user, card, button(card, q.id, choices[(i + seed) % len(choices)])
            ) == [200]
            w.taps += 1
        elif q.kind == "number":
            assert await tg.send(user, str(int(q.number.min))) == [200]
            w.typed += 1
        else:
            assert await tg.send(user, "Good support, more visits please.") == [200]
            w.typed += 1
        w.answered.append(q.id)
    raise AssertionError("survey did not end")


async def walk_to_text_question(bench, role: str = "learner") -> tuple[User, str]:
    """A Telegram user who consented and answered (first choices) up to a text question."""
    tg, fake = bench.tg, bench.fake
    user = await start_and_consent(bench, role)
    engine = bench.survey.engine
    for _ in range(100):
        await tg.settle(user)
        state = await bench.survey.load_state(bench.subject(user))
        q = engine.bank_for(state).question(state["pos"])
        if q.kind == "text":
            return user, q.id
        card = fake.card(user.id)
        choice = next(
            t.choice
            for t in map(callback.decode, card.callback_data())
            if t and t.target == q.id and t.choice not in ("back", "skip")
        )
        assert await tg.tap(user, card, button(card, q.id, choice)) == [200]
    raise AssertionError("no text question")


async def stored(bench, user: User) -> tuple[str | None, dict[str, object]]:
    """(response status, answers and comments by question id) of this person, from the DB."""
    async with bench.sm() as s:
        rid = await s.scalar(
            select(Response.id)
            .join(Respondent, Respondent.id == Response.respondent_id)
            .where(Respondent.subject_hash == bench.subject(user))
        )
        if rid is None:
            return None, {}
        status = await s.scalar(select(Response.status).where(Response.id == rid))
        given: dict[str, object] = dict(await responses.load_answers(s, rid))
        given.update(await responses.load_comments(s, rid))
        return status, given


async def count_rows(bench, model) -> int:
    async with bench.sm() as s:
        return await s.scalar(select(func.count()).select_from(model))


async def dump_storage(bench) -> str:
    """Every row of every table, and every Redis key and value of this test, as text."""
    from sqlalchemy import text

    from storage.models import Base

    parts: list[str] = []
    async with bench.sm() as s:
        for table in Base.metadata.sorted_tables:
            rows = (await s.execute(text(f'SELECT * FROM "{table.name}"'))).all()  # noqa: S608
            parts.extend(repr(tuple(r)) for r in rows)
    redis = bench.app[keys.REDIS]
    if redis is not None:
        prefix = bench.app[keys.SETTINGS].redis_prefix
        async for key in redis.scan_iter(match=prefix + "*"):
            parts.append(repr(key))
            if await redis.type(key) == b"string":
                parts.append(repr(await redis.get(key)))
    return "\n".join(parts)
