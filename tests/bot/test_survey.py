"""Whole surveys through the webhook: every role, answers stored once, one edit per tap."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from conversations.i18n import Translator
from conversations.roles import Role
from storage.models import Cycle, Response
from tests.bot.walker import dump_storage, stored, walk_survey

T = Translator()


async def test_every_role_answers_a_whole_survey_at_once(bench):
    """15 people, one per role, answer at the same time; each answer lands once."""
    people = {role.value: bench.tg.user() for role in Role}
    walks = await asyncio.gather(
        *(walk_survey(bench, user, role, seed=n) for n, (role, user) in enumerate(people.items()))
    )
    fake = bench.fake
    for (role, user), w in zip(people.items(), walks, strict=True):
        status, answers = await stored(bench, user)
        assert status == "completed", role
        assert sorted(answers) == sorted(w.answered), role
        # One Bot API message call per answered question: the tapped card is edited.
        assert len(fake.called("editMessageText", user.id)) == w.taps, role
        assert len(fake.called("sendMessage", user.id)) == 1 + w.typed, role
    assert len(fake.called("answerCallbackQuery")) == sum(w.taps for w in walks)
    assert not [c for c in fake.calls if c.status != 200]
    # Nobody's Telegram id or username is stored anywhere: database, sessions, card ids.
    dump = await dump_storage(bench)
    for user in people.values():
        assert str(user.id) not in dump
        assert user.username not in dump


async def test_an_invite_of_a_cycle_that_opens_later_is_refused_at_once(bench):
    """The one invite rule (storage.responses.invite_refusal) decides at /start as at consent:
    no consent card for a cycle that opens tomorrow, only the reason."""
    async with bench.sm.begin() as s:
        await s.execute(
            update(Cycle)
            .where(Cycle.id == bench.seeded.cycle_id)
            .values(opens_at=datetime.now(UTC) + timedelta(days=1))
        )
    user = bench.tg.user()
    assert await bench.tg.send(user, f"/start {bench.seeded.invites['learner']}") == [200]
    await bench.tg.settle(user)
    shown = list(bench.fake.chats.get(user.id, {}).values())
    assert [m.text for m in shown] == [T("invite.not_open")]
    assert not shown[0].callback_data()  # no consent button to tap
    async with bench.sm() as s:
        assert await s.scalar(select(func.count()).select_from(Response)) == 0
