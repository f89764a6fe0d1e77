"""Coordinator passwords: the rules a new password must meet, and argon2id hashes (argon2-cffi).

The rules (NIST SP 800-63B's, short of a breach-corpus lookup service): at least
MIN_LENGTH characters (at most MAX_LENGTH, what the login form reads); not one of the
30,000 most common passwords (data/common_passwords.txt), compared case-insensitively, nor
one of them with only digits and symbols around it ("Dragon2024!"); not a run of one or two
characters; not the account's e-mail address or its local part. Every place that sets a
password goes through `hash_password` (the CLI, the admin page, the change-password page).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
MIN_LENGTH = 10
MAX_LENGTH = 1024  # the login form reads no more than this
COMMON_PASSWORDS = Path(__file__).parent / "data" / "common_passwords.txt"

# Why a password is refused (the dashboard shows each in the reader's language).
TOO_SHORT, TOO_LONG, GUESSABLE, IS_EMAIL = "short", "long", "guessable", "email"
_MESSAGES = {
    TOO_SHORT: f"a password needs at least {MIN_LENGTH} characters",
    TOO_LONG: f"a password may have at most {MAX_LENGTH} characters",
    GUESSABLE: "this password is too easy to guess: it is one of the most common passwords, "
    "or one with only digits or symbols added; choose another (a few unrelated words make "
    "a good one)",
    IS_EMAIL: "a password may not be the account's e-mail address or the part before the @",
}
_AROUND = re.compile(r"^[\W\d_]+|[\W\d_]+$")  # digits, symbols and spaces at either end


class PasswordRefused(ValueError):
    """A password that breaks a rule; `reason` is one of the constants above."""

    def __init__(self, reason: str) -> None:
        super().__init__(_MESSAGES[reason])
        self.reason = reason


@functools.cache
def common_passwords() -> frozenset[str]:
    text = COMMON_PASSWORDS.read_text(encoding="utf-8")
    return frozenset(
        line.strip().casefold() for line in text.splitlines() if line and not line.startswith("#")
    )


def _email_forms(email: str) -> set[str]:
    """The address, its local part, and the local part without separators ("jane.doe")."""
    email = email.strip().casefold()
    if not email:
        return set()
    local = email.split("@", 1)[0]
    return {f for f in (email, local, re.sub(r"[._+-]", "", local)) if len(f) >= 3}


def check_password(password: str, email: str = "") -> None:
    """Raise PasswordRefused if `password` may not be set (for the account `email`)."""
    if len(password) < MIN_LENGTH:
        raise PasswordRefused(TOO_SHORT)
    if len(password) > MAX_LENGTH:
        raise PasswordRefused(TOO_LONG)
    folded = password.casefold()
    core = _AROUND.sub("", folded)  # "Dragon2024!" -> "dragon"
    forms = {folded, folded.strip()} | ({core} if len(core) >= 3 else set())
    if forms & _email_forms(email):
        raise PasswordRefused(IS_EMAIL)
    if forms & common_passwords() or len(set(folded)) <= 2:
        raise PasswordRefused(GUESSABLE)


def hash_password(password: str, email: str = "") -> str:
    """The argon2id hash of a password that meets the rules (else PasswordRefused)."""
    check_password(password, email)
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)
