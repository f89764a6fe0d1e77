"""Contacts of opted-in respondents: the channel address, encrypted, and the reminder count.

We store no raw Telegram user id; a reminder needs a chat id, so a respondent who says
yes to reminders has it kept ENCRYPTED (Fernet: AES-128-CBC + HMAC-SHA256) with a key
derived from SECRET_KEY by HKDF-SHA256 (its own `info`, so it is independent of the
subject-hash key). The address is decrypted only to send, and never logged.

A contact row is deleted on opt-out, on erasure (`repo.erase_respondent`), and by the
retention command once the cycle has closed (`delete_contacts_of_closed_cycles`).
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import and_, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Contact, Cycle, Response, utcnow

_INFO = b"guidance-survey/contact-address/v1"
_SALT = b"guidance-survey"


@lru_cache(maxsize=8)
def fernet_for(secret_key: str) -> Fernet:
    """The Fernet of this deployment (32 bytes of HKDF-SHA256 output from SECRET_KEY)."""
    if not secret_key:
        raise ValueError("SECRET_KEY is required to encrypt contact addresses")
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=_INFO).derive(
        secret_key.encode()
    )

    return Fernet(base64.urlsafe_b64encode(key))


def encrypt_address(secret_key: str, address: str | int) -> str:
    return fernet_for(secret_key).encrypt(str(address).encode()).decode("ascii")


def decrypt_address(secret_key: str, token: str) -> str | None:
    """The address, or None if it cannot be read (another SECRET_KEY, a damaged row)."""
    try:
        return fernet_for(secret_key).decrypt(token.encode("ascii")).decode()
    except (InvalidToken, ValueError):
        return None


async def set_opt_in(
    s: AsyncSession,
    response_id: int,
    *,
    given: bool,
    channel: str,
    address: str | int | None,
    secret_key: str,
    now: datetime | None = None,
) -> bool:
    """Keep (given) or forget the contact of one response; True if a row was written/deleted.

    Saying yes again keeps the counters (a second opt-in does not restart the reminders).
    A yes without an address (a channel that cannot remind, e.g. the Mini App) changes
    nothing.
    """
    if not given:
        result = await s.execute(delete(Contact).where(Contact.response_id == response_id))
        return result.rowcount > 0
    if address is None:
        return False
    existing = await s.scalar(select(Contact).where(Contact.response_id == response_id))
    token = encrypt_address(secret_key, address)
    if existing is not None:
        existing.address = token
        existing.channel = channel
        return True
    s.add(
        Contact(
            response_id=response_id,
            channel=channel,
            address=token,
            opted_in_at=now or utcnow(),
            reminders_sent=0,
        )
    )
    await s.flush()
    return True


async def delete_contacts_of_closed_cycles(
    s: AsyncSession, now: datetime | None = None, grace: timedelta = timedelta(days=30)
) -> int:
    """Delete contacts of cycles closed at least `grace` ago (the announcement window)."""
    cutoff = (now or utcnow()) - grace
    closed = select(Response.id).join(Cycle, Cycle.id == Response.cycle_id)
    closed = closed.where(
        and_(Cycle.status == "closed", Cycle.closes_at.is_not(None), Cycle.closes_at <= cutoff)
    )
    result = await s.execute(delete(Contact).where(Contact.response_id.in_(closed)))
    return result.rowcount or 0
