"""Data retention: once a cycle has closed, respondents' keys are no longer needed.

`forget_respondent_keys` replaces the keyed hash of every respondent whose responses all
belong to cycles closed at least `grace` ago with a random value of the same shape: the
answers stay for the school's analysis, but nothing links them to a Telegram account or
a browser any more (and such a person can no longer be recognised, even by us).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.contacts import delete_contacts_of_closed_cycles
from storage.models import Cycle, Respondent, Response

FORGOTTEN_PREFIX = "forgotten:"


async def respondents_to_forget(
    s: AsyncSession, now: datetime | None = None, grace: timedelta = timedelta(days=30)
) -> list[int]:
    """Ids of respondents with no response in a cycle that is open or closed recently."""
    now = now or datetime.now(UTC)
    cutoff = now - grace
    still_needed = exists().where(
        and_(
            Response.respondent_id == Respondent.id,
            Response.cycle_id == Cycle.id,
            ~(
                (Cycle.status == "closed")
                & (Cycle.closes_at.is_not(None))
                & (Cycle.closes_at <= cutoff)
            ),
        )
    )
    has_any = exists().where(Response.respondent_id == Respondent.id)
    rows = await s.execute(
        select(Respondent.id).where(
            has_any,
            ~still_needed,
            ~Respondent.subject_hash.startswith(FORGOTTEN_PREFIX),
        )
    )
    return [r for (r,) in rows]


async def forget_respondent_keys(
    s: AsyncSession, now: datetime | None = None, grace: timedelta = timedelta(days=30)
) -> int:
    """Unlink respondents of long-closed cycles from their channel ids; returns how many.

    The encrypted chat addresses kept for reminders of those cycles are deleted too.
    """

    await delete_contacts_of_closed_cycles(s, now, grace)  # reminder/announcement addresses
    ids = await respondents_to_forget(s, now, grace)
    for rid in ids:
        await s.execute(
            update(Respondent)
            .where(Respondent.id == rid)
            .values(subject_hash=FORGOTTEN_PREFIX + secrets.token_hex(27))
        )
    return len(ids)
