"""Callback data of the inline buttons: a short versioned format that fits Telegram's 64 bytes.

    1|<bank_tag>|<target>|<choice>

`target` is the question id for a question card, or a marker for the other cards:
`!c` consent, `!d` delete confirmation, `!l` language, `!o` the reminder opt-in, `!r` a
reminder's buttons (`go`: continue, `off`: no more reminders). `bank_tag` is `-` when there is
no bank yet (a language picker before any invite). Anything else (another version, a
bank that is not the respondent's, garbage) decodes to None or to a tap the engine
refuses with a notice: a tap from an old message is never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass

VERSION = "1"
MAX_BYTES = 64
CONSENT = "!c"
CONFIRM = "!d"
LANGUAGE = "!l"
OPTIN = "!o"
REMIND = "!r"
REMIND_GO = "go"
REMIND_OFF = "off"
NO_BANK = "-"
_MARKERS = {"consent": CONSENT, "confirm": CONFIRM, "language": LANGUAGE, "optin": OPTIN}


@dataclass(frozen=True, slots=True)
class Tap:
    bank: str  # bank tag, or NO_BANK
    target: str  # question id, or one of the markers
    choice: str

    @property
    def question_id(self) -> str | None:
        return None if self.target.startswith("!") else self.target


def target_for(kind: str, question_id: str | None) -> str | None:
    """The target field for a prompt of this kind (None: the prompt takes no taps)."""
    if kind == "question":
        return question_id
    return _MARKERS.get(kind)


def encode(bank: str | None, target: str, choice: str) -> str:
    data = "|".join((VERSION, bank or NO_BANK, target, choice))
    if len(data.encode()) > MAX_BYTES or any("|" in p for p in (bank or "", target, choice)):
        raise ValueError(f"callback data does not fit: {data!r}")
    return data


def decode(data: str | None) -> Tap | None:
    """The tap, or None if the data is not ours (old format, truncated, garbage)."""
    try:
        if not data or len(data.encode()) > MAX_BYTES:
            return None
    except UnicodeEncodeError:  # a lone surrogate: not something we ever sent
        return None
    parts = data.split("|")
    if len(parts) != 4 or parts[0] != VERSION or not all(parts[1:3]):
        return None
    return Tap(parts[1], parts[2], parts[3])
