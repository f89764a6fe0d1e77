"""The statements of reminders and announcements (the scheduler and the sending are
`bot.reminders`). Only respondents who said yes to the opt-in card have a `contact` row:
their chat id, encrypted (`storage.contacts`).

Each look claims what is due in one transaction, safe with any number of processes:

    SELECT due contacts ... FOR UPDATE OF contact SKIP LOCKED   (PostgreSQL; SQLite has
                                                                one writer at a time)
    UPDATE contact SET reminders_sent = k + 1, last_reminded_at = now
           WHERE id = ? AND reminders_sent = k                  (compare-and-set: a row
                                                                another process claimed
                                                                first is not claimed twice)

Announcements: `create_announcement` stores the cycle's one text (a second is refused by
a unique constraint); `claim_announcements` hands it out to the contacts of that cycle that
opted in before it was written, each once (`contact.announced_at`, compare-and-set likewise).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

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

MAX_ANNOUNCEMENT_CHARS = 3500  # with the "A message from ..." line it fits Telegram's 4096
CHANNEL = "telegram"


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


async def school_timezones(s: AsyncSession) -> set[str]:
    """Every school's time zone (a look skips the schools in their quiet hours)."""
    return set(await s.scalars(select(School.timezone).distinct()))


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


def _due_conditions(now: datetime, delays: tuple[float, ...]) -> Any:
    """reminders_sent == k and quiet for delays[k] hours (and the gap since the last)."""
    conds = []
    for k, hours in enumerate(delays):
        cutoff = now - timedelta(hours=hours)
        cond = and_(
            Contact.reminders_sent == k,
            Response.updated_at <= cutoff,
            ~exists().where(Answer.response_id == Response.id, Answer.answered_at > cutoff),
            ~exists().where(Comment.response_id == Response.id, Comment.created_at > cutoff),
        )
        if k > 0:
            gap = now - timedelta(hours=hours - delays[k - 1])
            cond = and_(
                cond,
                or_(Contact.last_reminded_at.is_(None), Contact.last_reminded_at <= gap),
            )
        conds.append(cond)
    return or_(*conds)


def _contacts(*columns: Any) -> Select[Any]:
    """`columns` of the contacts joined with their response, respondent, cycle and school."""
    return (
        select(*columns)
        .join(Response, Response.id == Contact.response_id)
        .join(Respondent, Respondent.id == Response.respondent_id)
        .join(Cycle, Cycle.id == Response.cycle_id)
        .join(School, School.id == Cycle.school_id)
    )


async def claim_reminders(
    s: AsyncSession, now: datetime, awake: list[str], delays: tuple[float, ...], batch: int
) -> list[Due]:
    if not delays:
        return []
    rows = (
        await s.execute(
            _contacts(
                Contact.id,
                Contact.reminders_sent,
                Contact.address,
                Respondent.subject_hash,
                Response.language,
                Response.bank_tag,
                School.name,
            )
            .where(
                Contact.channel == CHANNEL,
                Contact.reminders_sent < len(delays),
                Response.status == "in_progress",
                Respondent.blocked_at.is_(None),
                Cycle.status == "open",
                or_(Cycle.closes_at.is_(None), Cycle.closes_at > now),
                School.timezone.in_(awake),
                _due_conditions(now, delays),
            )
            .order_by(Contact.id)
            .limit(batch)
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
            claimed.append(Due(cid, "reminder", address, subject, lang, school, bank_tag, sent + 1))
    return claimed


async def claim_announcements(
    s: AsyncSession, now: datetime, awake: list[str], limit: int
) -> list[Due]:
    rows = (
        await s.execute(
            _contacts(
                Contact.id,
                Contact.address,
                Respondent.subject_hash,
                Response.language,
                School.name,
                Announcement.text,
            )
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
