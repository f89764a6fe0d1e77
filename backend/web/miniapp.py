"""Telegram Mini App identity: validate the signed `initData` the Telegram client hands the page.

Exactly as Telegram documents it ("Validating data received via the Mini App"):
    data_check_string = "\n".join(sorted(f"{key}={value}" for every field except hash))
    secret_key        = HMAC_SHA256(key="WebAppData", msg=bot_token)
    hash              = hex(HMAC_SHA256(key=secret_key, msg=data_check_string))
and `auth_date` must be recent. Pure: no I/O, the clock is a parameter.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any
from urllib.parse import parse_qsl

MAX_INIT_DATA = 8192  # bytes; real initData is well under 1 KB
FUTURE_SKEW = 300  # seconds an auth_date may lie ahead of our clock


class InitDataError(ValueError):
    """initData that does not prove a Telegram user: `reason` says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason  # missing | malformed | no_hash | bad_hash | stale | no_user


def secret_key(bot_token: str) -> bytes:
    return hmac.new(b"WebAppData", bot_token.encode(), hashlib.sha256).digest()


def data_check_string(fields: dict[str, str]) -> str:
    return "\n".join(f"{k}={v}" for k, v in sorted(fields.items()) if k != "hash")


def sign_init_data(fields: dict[str, str], bot_token: str) -> str:
    """The hash Telegram would put beside `fields` (for tests and local tools)."""
    return hmac.new(
        secret_key(bot_token), data_check_string(fields).encode(), hashlib.sha256
    ).hexdigest()


def validate_init_data(
    init_data: str, bot_token: str, *, max_age: int, now: float
) -> dict[str, Any]:
    """The fields of valid initData (`user` parsed from JSON), or raise InitDataError."""
    if not bot_token:
        raise InitDataError("missing", "no bot token configured")
    if not init_data:
        raise InitDataError("missing", "no initData")
    if len(init_data) > MAX_INIT_DATA:
        raise InitDataError("malformed", "initData too long")
    try:
        pairs = parse_qsl(init_data, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise InitDataError("malformed", "initData is not a query string") from None
    fields: dict[str, str] = {}
    for k, v in pairs:
        if k in fields:
            raise InitDataError("malformed", f"field {k!r} appears twice")
        fields[k] = v
    received = fields.get("hash")
    if not received:
        raise InitDataError("no_hash", "initData has no hash")
    expected = sign_init_data(fields, bot_token)
    # As bytes: compare_digest raises TypeError for a str with non-ASCII characters.
    if not hmac.compare_digest(
        expected.encode(), received.lower().encode("utf-8", "surrogatepass")
    ):
        raise InitDataError("bad_hash", "initData signature does not match")
    try:
        auth_date = int(fields.get("auth_date", ""))
    except ValueError:
        raise InitDataError("malformed", "auth_date is not a number") from None
    if now - auth_date > max_age:
        raise InitDataError("stale", "initData is too old")
    if auth_date - now > FUTURE_SKEW:
        raise InitDataError("stale", "auth_date lies in the future")
    out: dict[str, Any] = dict(fields)
    out["auth_date"] = auth_date
    try:
        user = json.loads(fields["user"]) if "user" in fields else None
    except ValueError:
        raise InitDataError("malformed", "user is not JSON") from None
    if not isinstance(user, dict) or not isinstance(user.get("id"), int):
        raise InitDataError("no_user", "initData names no user")
    out["user"] = user
    return out
