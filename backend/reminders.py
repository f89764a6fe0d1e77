"""Reminders for respondents who stopped halfway, and one announcement per cycle.

Only respondents who said yes to the opt-in card (Telegram, after consent) have a
`contact` row: their chat id, encrypted (see `storage.contacts`).

The scheduler is a background task in every server process (started with a bot token
and REMINDERS_ENABLED). Each look (`tick`) works from the database alone, so it survives
restarts and runs once with any number of processes:

    in one transaction:
      SELECT due contacts ... FOR UPDATE OF contact SKIP LOCKED   (PostgreSQL; SQLite has
                                                                  one writer at a time)
      UPDATE contact SET reminders_sent = k + 1, last_reminded_at = now
             WHERE id = ? AND reminders_sent = k                  (compare-and-set: a row
                                                                  another process claimed
                                                                  first is not sent twice)
    then: queue the messages in the bot's outbox (its rate limiter keeps ~30/s in all).

A reminder is due when the response is in progress, the cycle open (and not past
`closes_at`), the respondent has not blocked the bot, fewer than len(delays) (at most 2)
were sent, nothing was answered for `delays[k]` hours, and (for the second) the gap since
the first has passed; never in the quiet hours of the school's time zone. /stop (status
stopped), completion, /delete (the row is gone), opt-out (the row is gone) all end it.
A claimed reminder is sent at most once: a crash between commit and send loses it rather
than sending it twice.

Announcements: `create_announcement` stores the cycle's one text (a second is refused by
a unique constraint); the scheduler delivers it to the contacts of that cycle that opted
in before it was written, each once (`contact.announced_at`, compare-and-set likewise).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web
from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend import keys
from storage.contacts import decrypt_address
from storage.models import (
    Announcement,
    Answer,
    Comment,
    Contact,
    Cycle,
    Respondent,
    Response,
    School,
    utcnow,
)

log = logging.getLogger(__name__)

SCHEDULER: web.AppKey[Any] = web.AppKey("reminder_scheduler", object)
MAX_REMINDERS = 2
MAX_ANNOUNCEMENT_CHARS = 3500  # with the "A message from ..." line it fits Telegram's 4096
CHANNEL = "telegram"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


# -- announcements ----------------------------------------------------------------------


class AnnouncementRefused(ValueError):
    """No announcement: the cycle already has one, it does not exist, or the text is unfit."""


async def create_announcement(
    s: AsyncSession,
    cycle_id: int,
    text: str,
    *,
    created_by: int | None = None,
    now: datetime | None = None,
) -> int:
    """Store the cycle's one announcement (the caller owns the transaction).

    Returns how many opted-in respondents it will reach; raises AnnouncementRefused.
    A concurrent second one fails on the unique constraint at flush (IntegrityError is
    turned into AnnouncementRefused here).
    """
    text = (text or "").strip()
    if not text:
        raise AnnouncementRefused("the announcement is empty")
    if len(text) > MAX_ANNOUNCEMENT_CHARS:
        raise AnnouncementRefused(f"the announcement is longer than {MAX_ANNOUNCEMENT_CHARS}")
    if await s.get(Cycle, cycle_id) is None:
        raise AnnouncementRefused(f"no cycle {cycle_id}")
    if await s.scalar(select(Announcement.id).where(Announcement.cycle_id == cycle_id)):
        raise AnnouncementRefused("this cycle already had its announcement")
    try:
        async with s.begin_nested():
            s.add(
                Announcement(
                    cycle_id=cycle_id, text=text, created_by=created_by, created_at=now or utcnow()
                )
            )
            await s.flush()
    except IntegrityError:
        raise AnnouncementRefused("this cycle already had its announcement") from None
    return await announcement_audience(s, cycle_id)


async def send_announcement(
    sessionmaker: async_sessionmaker,
    cycle_id: int,
    text: str,
    *,
    created_by: int | None = None,
) -> int:
    """Announce to the cycle's opted-in respondents (delivered by the running scheduler)."""
    try:
        async with sessionmaker.begin() as s:
            return await create_announcement(s, cycle_id, text, created_by=created_by)
    except IntegrityError:  # the other writer committed first
        raise AnnouncementRefused("this cycle already had its announcement") from None


async def get_announcement(s: AsyncSession, cycle_id: int) -> Announcement | None:
    return await s.scalar(select(Announcement).where(Announcement.cycle_id == cycle_id))


async def announcement_audience(s: AsyncSession, cycle_id: int) -> int:
    """How many respondents of the cycle opted in (and did not /stop or block the bot)."""
    return int(
        await s.scalar(
            select(func.count(Contact.id))
            .join(Response, Response.id == Contact.response_id)
            .join(Respondent, Respondent.id == Response.respondent_id)
            .where(
                Response.cycle_id == cycle_id,
                Response.status != "stopped",
                Respondent.blocked_at.is_(None),
            )
        )
        or 0
    )


# -- quiet hours --------------------------------------------------------------------------


def is_quiet(now: datetime, timezone: str, quiet: tuple[int, int] | None) -> bool:
    """Whether `now` falls in the quiet hours [start, end) of the school's local time."""
    if quiet is None:
        return False
    try:
        tz = ZoneInfo(timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo("UTC")
    hour = now.astimezone(tz).hour
    start, end = quiet
    return start <= hour < end if start < end else (hour >= start or hour < end)


# -- the scheduler ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Due:
    contact_id: int
    kind: str  # reminder | announcement
    address: str  # the encrypted token
    subject: str
    lang: str
    school: str
    bank_tag: str = ""
    number: int = 0  # which reminder (1, 2)
    text: str = ""  # the announcement


class ReminderScheduler:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker,
        secret_key: str,
        engine: Any,
        submit: Callable[[list[Any]], None],
        delays_hours: Iterable[float] = (24.0, 72.0),
        quiet: tuple[int, int] | None = (20, 8),
        batch: int = 20,
        interval: float = 60.0,
        clock: Clock = utc_now,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.secret_key = secret_key
        self.engine = engine
        self.submit = submit
        self.delays = tuple(float(h) for h in delays_hours)[:MAX_REMINDERS]
        self.quiet = quiet
        self.batch = batch
        self.interval = interval
        self.clock = clock
        self.sent = 0  # messages queued so far (for tests and logs)

    async def run(self) -> None:
        """Look every `interval` seconds until cancelled; a failing look is logged, not fatal."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("reminder scheduler: look failed (%s)", type(exc).__name__)

    async def tick(self) -> int:
        """Claim what is due now and queue it; how many messages were queued."""
        now = self.clock()
        async with self.sessionmaker.begin() as s:
            awake = await self._awake_timezones(s, now)
            due: list[Due] = []
            if awake:
                due = await self._claim_reminders(s, now, awake)
                if len(due) < self.batch:
                    due += await self._claim_announcements(s, now, awake, self.batch - len(due))
        items = [item for d in due if (item := self._message(d)) is not None]
        if items:
            self.submit(items)
            self.sent += len(items)
            log.info("reminder scheduler: queued %d message(s)", len(items))
        return len(items)

    async def _awake_timezones(self, s: AsyncSession, now: datetime) -> list[str]:
        zones = set(await s.scalars(select(School.timezone).distinct()))
        return sorted(z for z in zones if not is_quiet(now, z, self.quiet))

    def _due_conditions(self, now: datetime) -> Any:
        """reminders_sent == k and quiet for delays[k] hours (and the gap since the last)."""
        conds = []
        for k, hours in enumerate(self.delays):
            cutoff = now - timedelta(hours=hours)
            cond = and_(
                Contact.reminders_sent == k,
                Response.updated_at <= cutoff,
                ~exists().where(Answer.response_id == Response.id, Answer.answered_at > cutoff),
                ~exists().where(Comment.response_id == Response.id, Comment.created_at > cutoff),
            )
            if k > 0:
                gap = now - timedelta(hours=hours - self.delays[k - 1])
                cond = and_(
                    cond,
                    or_(Contact.last_reminded_at.is_(None), Contact.last_reminded_at <= gap),
                )
            conds.append(cond)
        return or_(*conds)

    async def _claim_reminders(self, s: AsyncSession, now: datetime, awake: list[str]) -> list[Due]:
        if not self.delays:
            return []
        rows = (
            await s.execute(
                select(
                    Contact.id,
                    Contact.reminders_sent,
                    Contact.address,
                    Respondent.subject_hash,
                    Response.language,
                    Response.bank_tag,
                    School.name,
                )
                .join(Response, Response.id == Contact.response_id)
                .join(Respondent, Respondent.id == Response.respondent_id)
                .join(Cycle, Cycle.id == Response.cycle_id)
                .join(School, School.id == Cycle.school_id)
                .where(
                    Contact.channel == CHANNEL,
                    Contact.reminders_sent < len(self.delays),
                    Response.status == "in_progress",
                    Respondent.blocked_at.is_(None),
                    Cycle.status == "open",
                    or_(Cycle.closes_at.is_(None), Cycle.closes_at > now),
                    School.timezone.in_(awake),
                    self._due_conditions(now),
                )
                .order_by(Contact.id)
                .limit(self.batch)
                .with_for_update(of=Contact, skip_locked=True)
            )
        ).all()
        claimed = []
        for cid, sent, address, subject, lang, bank_tag, school in rows:
            result = await s.execute(
                update(Contact)
                .where(Contact.id == cid, Contact.reminders_sent == sent)
                .values(reminders_sent=sent + 1, last_reminded_at=now)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 1:
                claimed.append(
                    Due(cid, "reminder", address, subject, lang, school, bank_tag, sent + 1)
                )
        return claimed

    async def _claim_announcements(
        self, s: AsyncSession, now: datetime, awake: list[str], limit: int
    ) -> list[Due]:
        rows = (
            await s.execute(
                select(
                    Contact.id,
                    Contact.address,
                    Respondent.subject_hash,
                    Response.language,
                    School.name,
                    Announcement.text,
                )
                .join(Response, Response.id == Contact.response_id)
                .join(Respondent, Respondent.id == Response.respondent_id)
                .join(Cycle, Cycle.id == Response.cycle_id)
                .join(School, School.id == Cycle.school_id)
                .join(Announcement, Announcement.cycle_id == Response.cycle_id)
                .where(
                    Contact.channel == CHANNEL,
                    Contact.announced_at.is_(None),
                    Contact.opted_in_at <= Announcement.created_at,
                    Response.status != "stopped",
                    Respondent.blocked_at.is_(None),
                    School.timezone.in_(awake),
                )
                .order_by(Contact.id)
                .limit(limit)
                .with_for_update(of=Contact, skip_locked=True)
            )
        ).all()
        claimed = []
        for cid, address, subject, lang, school, text in rows:
            result = await s.execute(
                update(Contact)
                .where(Contact.id == cid, Contact.announced_at.is_(None))
                .values(announced_at=now)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 1:
                claimed.append(Due(cid, "announcement", address, subject, lang, school, text=text))
        return claimed

    def _message(self, due: Due) -> Any:
        from telegram import InlineKeyboardButton, InlineKeyboardMarkup

        from bot import callback
        from bot.channel import card_hash
        from bot.outbox import Outgoing

        address = decrypt_address(self.secret_key, due.address)
        if address is None or not address.lstrip("-").isdigit():
            log.warning(
                "contact %d: the address cannot be read (SECRET_KEY changed?)", due.contact_id
            )
            return None
        t = self.engine.t({"lang": due.lang})
        chat_id = int(address)
        if due.kind == "announcement":
            text = t("announce.text", school=due.school, text=due.text)
            return Outgoing(chat_id, text, None, subject=due.subject)
        text = t("reminders.text", school=due.school, number=due.number, total=len(self.delays))
        markup = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(
                        t("reminders.continue"),
                        callback_data=callback.encode(
                            due.bank_tag, callback.REMIND, callback.REMIND_GO
                        ),
                    )
                ],
                [
                    InlineKeyboardButton(
                        t("reminders.stop_button"),
                        callback_data=callback.encode(
                            due.bank_tag, callback.REMIND, callback.REMIND_OFF
                        ),
                    )
                ],
            ]
        )
        # The reminder becomes the survey card: "Continue" edits it into the current question.
        return Outgoing(
            chat_id,
            text,
            markup,
            subject=due.subject,
            card=True,
            card_hash=card_hash(text, markup),
        )


# -- the application's part ---------------------------------------------------------------


def setup(app: web.Application) -> None:
    """Register the scheduler's cleanup_ctx entry (with a bot token and REMINDERS_ENABLED)."""
    app[SCHEDULER] = None
    settings = app[keys.SETTINGS]
    if settings.telegram_bot_token and settings.reminders_enabled:
        app.cleanup_ctx.append(_scheduler)


async def _scheduler(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    extra = app[keys.EXTRA]
    channel = app[keys.BOT]
    scheduler = ReminderScheduler(
        sessionmaker=app[keys.SESSIONMAKER],
        secret_key=app[keys.SECRET_KEY],
        engine=app[keys.SURVEY_ENGINE],
        submit=channel.outbox.submit,
        delays_hours=settings.reminder_delays,
        quiet=settings.quiet_range,
        batch=settings.reminder_batch,
        interval=settings.reminder_interval_seconds,
        clock=extra.get("clock") or utc_now,
    )
    app[SCHEDULER] = scheduler
    task = None
    if extra.get("reminder_loop", True):
        task = asyncio.create_task(scheduler.run(), name="reminder-scheduler")
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
