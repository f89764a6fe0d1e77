"""Respondent identity: a keyed hash of the channel user id. Raw ids are never stored (and
not kept in any state either: the hash is the subject of every session and row)."""

from __future__ import annotations

import hashlib
import hmac


def subject_hash(secret_key: str, channel: str, user_id: str | int) -> str:
    """HMAC-SHA256 (hex, 64 chars) of `"{channel}:{user_id}"` keyed with `secret_key`."""
    if not secret_key:
        raise ValueError("subject_hash needs a non-empty secret key")
    if not channel or ":" in channel:
        raise ValueError(f"bad channel name {channel!r}")
    message = f"{channel}:{user_id}".encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()
