"""Reminders for respondents who stopped halfway, and one announcement per cycle: the
scheduler that looks for what is due (`storage.reminders` claims it) and the Telegram
messages it queues in the bot's outbox (whose rate limiter keeps ~30/s in all).

The scheduler is a background task in every server process (started with a bot token
and REMINDERS_ENABLED). Each look (`tick`) works from the database alone, so it survives
restarts and runs once with any number of processes.

A reminder is due when the response is in progress, the cycle open (and not past
`closes_at`), the respondent has not blocked the bot, fewer than len(delays) (at most 2)
were sent, nothing was answered for `delays[k]` hours, and (for the second) the gap since
the first has passed; never in the quiet hours of the school's time zone. /stop (status
stopped), completion, /delete (the row is gone), opt-out (the row is gone) all end it.
A claimed reminder is sent at most once: a crash between commit and send loses it rather
than sending it twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.ext.asyncio import async_sessionmaker

from bot import callback
from bot.outbox import Outgoing
from bot.render import button, card_hash, keyboard, markup_json
from conversations.engine import Engine
from storage import reminders as stored
from storage.contacts import decrypt_address
from storage.reminders import Due

log = logging.getLogger(__name__)

MAX_REMINDERS = 2

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


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


class ReminderScheduler:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker,
        secret_key: str,
        engine: Engine,
        submit: Callable[[list[Outgoing]], None],
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
        self.interval = interval  # seconds between two looks (the app repeats `tick`)
        self.clock = clock
        self.sent = 0  # messages queued so far (for tests and logs)

    async def tick(self) -> int:
        """Claim what is due now and queue it; how many messages were queued."""
        now = self.clock()
        async with self.sessionmaker.begin() as s:
            zones = await stored.school_timezones(s)
            awake = sorted(z for z in zones if not is_quiet(now, z, self.quiet))
            due: list[Due] = []
            if awake and self.delays:
                due = await stored.claim_reminders(s, now, awake, self.delays, self.batch)
            if awake and len(due) < self.batch:
                due += await stored.claim_announcements(s, now, awake, self.batch - len(due))
        items = [item for d in due if (item := self._message(d)) is not None]
        if items:
            self.submit(items)
            self.sent += len(items)
            log.info("reminder scheduler: queued %d message(s)", len(items))
        return len(items)

    def _message(self, due: Due) -> Outgoing | None:
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
        markup = markup_json(
            keyboard(
                [
                    [
                        button(
                            t("reminders.continue"),
                            callback.encode(due.bank_tag, callback.REMIND, callback.REMIND_GO),
                        )
                    ],
                    [
                        button(
                            t("reminders.stop_button"),
                            callback.encode(due.bank_tag, callback.REMIND, callback.REMIND_OFF),
                        )
                    ],
                ]
            )
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
