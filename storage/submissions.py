"""One-time tokens of the dashboard's forms (`FormSubmission`). Each function takes an
`AsyncSession` first; the caller owns the transaction (one per call: a claim must be
committed before the form's work starts, so that a second request sees it)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import insert_for
from storage.models import FormSubmission, utcnow

KEEP = timedelta(days=2)  # a form left open longer than this may be sent once more


async def claim_submission(
    s: AsyncSession, token: str, user_id: int, now: datetime | None = None
) -> bool:
    """Record the token as being used by this user; False if it was recorded before.

    One INSERT ... ON CONFLICT DO NOTHING: of two concurrent claims exactly one inserts the
    row (the primary key decides), so a form is done at most once however fast it is resent.
    Tokens older than `KEEP` are forgotten on the way."""
    now = now or utcnow()
    await s.execute(delete(FormSubmission).where(FormSubmission.created_at < now - KEEP))
    result = await s.execute(
        insert_for(s, FormSubmission.__table__)
        .values(token=token, user_id=user_id, location=None, created_at=now)
        .on_conflict_do_nothing(index_elements=["token"])
    )
    return result.rowcount == 1


async def submission_location(s: AsyncSession, token: str) -> tuple[int, str | None] | None:
    """(whose token it is, where its first use led: None while it runs), None if unknown."""
    row = (
        await s.execute(
            select(FormSubmission.user_id, FormSubmission.location).where(
                FormSubmission.token == token
            )
        )
    ).first()
    return None if row is None else (row[0], row[1])


async def finish_submission(s: AsyncSession, token: str, location: str) -> None:
    """The first use is done and led to `location`."""
    await s.execute(
        update(FormSubmission).where(FormSubmission.token == token).values(location=location)
    )


async def release_submission(s: AsyncSession, token: str) -> None:
    """The first use changed nothing (refused, or failed): the form may be sent again."""
    await s.execute(delete(FormSubmission).where(FormSubmission.token == token))
