"""Telling a school's coordinators about its rounds: the board's decision or revocation and
reminders before a deadline, by e-mail where SMTP is configured (the dashboard shows the
same without mail: `deadline_notices` here, the decisions on the school's pages).

The mail goes through a queue in the database (`storage.mail`): a decision's mail is queued
in the decision's own transaction and sent after the commit in the background (`kick`), so
the board's step neither waits for nor fails with the mail server; a failed attempt is
logged and tried again after a backoff, up to MAX_ATTEMPTS. The server's periodic loop
(`tick`, every MAIL_INTERVAL_SECONDS) queues the deadline reminders that are due and sends
whatever is pending; `guidance-survey mail` does one such round.

A deadline reminder goes DEADLINE_REMINDER_DAYS days before the deadline (14, 7, 1) to the
schools listed in an open round that have not submitted, once per (round, school, days):
the rows stay, so a restart or a second process does not send it again. A server that
starts late sends only the nearest reminder due (3 days before: the 7-day one) and records
the earlier ones as skipped.

Each coordinator gets the mail in their dashboard language, else the school's first
language the dashboard has, else English; coordinators sharing a language share one mail.
A mail says the school's, round's and agency's names, the outcome and dates, and links:
never anything a respondent gave.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import aiosmtplib
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.i18n import DEFAULT, Texts, dashboard_languages, texts
from storage import certification as cert_store
from storage import mail as store
from storage.mail import DueMail
from storage.models import CertRound

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
DASHBOARD_PATH = "/dashboard/schools/{slug}/certification"  # dash:school_certification
VERIFY_PATH = "/verify/{token}"  # dash:verify, the certificate's QR code's target

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def backoff(attempt: int) -> float:
    """Seconds after the attempt-th before the next: 1 min, 4 min, 16 min, 64 min."""
    return min(60.0 * 4 ** (attempt - 1), 6 * 3600.0)


@dataclass(frozen=True, slots=True)
class MailConfig:
    """How to reach the mail server (from the SMTP_* settings)."""

    host: str
    port: int = 587
    username: str = ""
    password: str = ""
    starttls: bool = True
    ssl: bool = False
    sender: str = ""
    timeout: float = 30.0


def mail_config(settings: Any) -> MailConfig | None:
    """The SMTP_* settings (`backend.web.settings.Settings`) as a MailConfig; None without
    SMTP_HOST (then no mail is queued or attempted)."""
    if not settings.smtp_host:
        return None
    return MailConfig(
        host=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username,
        password=settings.smtp_password,
        starttls=settings.smtp_starttls,
        ssl=settings.smtp_ssl,
        sender=settings.mail_from,
        timeout=settings.smtp_timeout_seconds,
    )


async def smtp_send(config: MailConfig, message: EmailMessage) -> None:
    await aiosmtplib.send(
        message,
        hostname=config.host,
        port=config.port,
        username=config.username or None,
        password=config.password or None,
        use_tls=config.ssl,
        start_tls=config.starttls and not config.ssl,
        timeout=config.timeout,
    )


def mail_language(own: str | None, school_languages: Sequence[str]) -> str:
    known = dashboard_languages()
    for lang in (own, *school_languages):
        if lang and lang in known:
            return lang
    return DEFAULT


# --- what a mail says --------------------------------------------------------------------


def compose(due: DueMail, tx: Texts, base_url: str, today: date) -> tuple[str, str]:
    """(subject, plain-text body) of a mail in the language of `tx`."""
    base = base_url.rstrip("/")
    page = base + DASHBOARD_PATH.format(slug=due.school_slug) + f"#round-{due.round_id}"
    names = {"school": due.school_name, "round": due.round_name, "agency": due.agency}
    lines: list[str] = []
    if due.kind == "decision":
        outcome = tx.label("outcome", due.outcome)
        subject = tx.gettext(
            "Decision on %(school)s in %(round)s: %(outcome)s", outcome=outcome, **names
        )
        lines.append(
            tx.gettext(
                "The board of %(agency)s has recorded its decision on %(school)s in the "
                "round %(round)s: %(outcome)s.",
                outcome=outcome,
                **names,
            )
        )
        if due.valid_from and due.valid_until:
            lines.append(
                tx.gettext(
                    "Valid from %(start)s to %(end)s.",
                    start=tx.date(due.valid_from),
                    end=tx.date(due.valid_until),
                )
            )
        if due.has_conditions:
            lines.append(tx.gettext("The conditions are on the school's certification page."))
        lines.append("")
        lines.append(tx.gettext("See it in the dashboard: %(link)s", link=page))
        if due.outcome != "not_yet" and due.token:
            verify = base + VERIFY_PATH.format(token=due.token)
            lines.append(tx.gettext("Anyone can check the certificate at %(link)s", link=verify))
    elif due.kind == "revocation":
        subject = tx.gettext("The certificate of %(school)s is revoked (%(round)s)", **names)
        lines.append(
            tx.gettext(
                "The board of %(agency)s has revoked the certificate of %(school)s from the "
                "round %(round)s.",
                **names,
            )
        )
        if due.token:
            verify = base + VERIFY_PATH.format(token=due.token)
            lines.append(
                tx.gettext("Its public verification page now says so: %(link)s", link=verify)
            )
        lines.append("")
        lines.append(tx.gettext("See it in the dashboard: %(link)s", link=page))
    else:
        left = max((due.deadline - today).days, 0)
        subject = tx.ngettext(
            "%(round)s: %(num)s day left to submit",
            "%(round)s: %(num)s days left to submit",
            left,
            round=due.round_name,
        )
        lines.append(
            tx.ngettext(
                "The deadline of the round %(round)s (%(agency)s) is %(date)s, in %(num)s "
                "day, and %(school)s has not submitted to it yet.",
                "The deadline of the round %(round)s (%(agency)s) is %(date)s, in %(num)s "
                "days, and %(school)s has not submitted to it yet.",
                left,
                date=tx.date(due.deadline),
                **names,
            )
        )
        lines.append("")
        lines.append(tx.gettext("Submit a cycle on the certification page: %(link)s", link=page))
    lines += [
        "",
        "-- ",
        tx.gettext("Sent by guidance-survey. You are a coordinator of %(school)s.", **names),
    ]
    return subject, "\n".join(lines) + "\n"


def messages(
    due: DueMail, sender: str, base_url: str, today: date
) -> list[tuple[str, EmailMessage]]:
    """One message per language among the recipients: (language, message)."""
    groups: dict[str, list[str]] = {}
    for r in due.recipients:
        groups.setdefault(mail_language(r.language, due.school_languages), []).append(r.email)
    out = []
    for lang, emails in groups.items():
        subject, body = compose(due, texts(lang), base_url, today)
        msg = EmailMessage()
        msg["From"] = sender
        msg["To"] = ", ".join(emails)
        msg["Subject"] = subject
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(body)
        msg["Content-Language"] = lang  # after set_content, which drops Content-* headers
        out.append((lang, msg))
    return out


# --- the dashboard's notices ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeadlineNotice:
    round: CertRound
    agency: str
    days_left: int  # negative: overdue by that many days

    @property
    def overdue(self) -> bool:
        return self.days_left < 0


async def deadline_notices(
    s: AsyncSession, school_id: int, today: date, horizon: int
) -> list[DeadlineNotice]:
    """The open rounds listing the school, not submitted to, whose deadline is at most
    `horizon` days away or past (overdue)."""
    pending = await store.unsubmitted(s, date.fromordinal(today.toordinal() + horizon), school_id)
    out = []
    for p in pending:
        rnd = await cert_store.get_round(s, p.round_id)
        agency = await cert_store.get_agency(s, rnd.agency_id) if rnd else None
        if rnd is not None:
            out.append(
                DeadlineNotice(rnd, agency.name if agency else "", (p.deadline - today).days)
            )
    return out


# --- the sender ----------------------------------------------------------------------------


class Notifier:
    """Queues and sends the coordinators' mail; does nothing at all without `config`."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker,
        config: MailConfig | None,
        base_url: str,
        *,
        days: Sequence[int] = (14, 7, 1),
        batch: int = 20,
        interval: float = 60.0,
        clock: Clock = utc_now,
        send: Callable[[MailConfig, EmailMessage], Awaitable[None]] = smtp_send,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.config = config
        self.base_url = base_url
        self.days = tuple(sorted(set(days), reverse=True))
        self.batch = batch
        self.interval = interval
        self.clock = clock
        self.send = send
        self.sent = 0  # messages handed to the mail server so far (tests, logs)
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def enabled(self) -> bool:
        return self.config is not None

    # -- queueing (inside the caller's transaction) -----------------------------------------

    async def queue_decision(
        self,
        s: AsyncSession,
        round_id: int,
        school_id: int,
        decision_id: int,
        kind: str = "decision",
    ) -> None:
        """The board's decision (or revocation) on a school: tell its coordinators."""
        if self.enabled:
            await store.queue(
                s, round_id, school_id, kind, decision_id=decision_id, now=self.clock()
            )

    async def queue_deadlines(self) -> int:
        """Queue the deadline reminders due today; how many will be sent."""
        if not self.enabled or not self.days:
            return 0
        now = self.clock()
        today = now.date()
        queued = 0
        async with self.sessionmaker.begin() as s:
            pending = [
                p
                for p in await store.unsubmitted(
                    s, date.fromordinal(today.toordinal() + self.days[0])
                )
                if p.deadline >= today
            ]
            done = await store.reminded_days(s, [(p.round_id, p.school_id) for p in pending])
            for p in pending:
                left = (p.deadline - today).days
                due = [
                    d for d in self.days if d >= left and d not in done[(p.round_id, p.school_id)]
                ]
                if not due:
                    continue
                nearest = min(due)
                for d in due:
                    if (
                        await store.queue(
                            s,
                            p.round_id,
                            p.school_id,
                            "deadline",
                            days_before=d,
                            now=now,
                            status="pending" if d == nearest else "skipped",
                        )
                        and d == nearest
                    ):
                        queued += 1
        if queued:
            log.info("coordinator mail: %d deadline reminder(s) queued", queued)
        return queued

    # -- sending ----------------------------------------------------------------------------

    async def send_due(self) -> int:
        """Send what is pending and due; how many messages the mail server took."""
        if self.config is None:
            return 0
        now = self.clock()
        async with self.sessionmaker.begin() as s:
            claimed = await store.claim(s, now, self.batch, backoff)
        sent = 0
        for due in claimed:
            sent += await self._deliver(due, now)
        return sent

    async def _deliver(self, due: DueMail, now: datetime) -> int:
        assert self.config is not None
        if not due.recipients:
            async with self.sessionmaker.begin() as s:
                await store.mark_failed(s, due.id, "no coordinator", final=True)
            log.warning("coordinator mail %d: the school has no coordinator to tell", due.id)
            return 0
        n = 0
        try:
            for _lang, msg in messages(due, self.config.sender, self.base_url, now.date()):
                await self.send(self.config, msg)
                n += 1
        except Exception as exc:  # the mail server's trouble is logged, never raised
            final = due.attempt >= MAX_ATTEMPTS
            async with self.sessionmaker.begin() as s:
                await store.mark_failed(s, due.id, type(exc).__name__, final=final)
            if final:
                log.error(
                    "coordinator mail %d (%s): attempt %d failed (%s); giving up",
                    due.id,
                    due.kind,
                    due.attempt,
                    type(exc).__name__,
                )
            else:
                log.warning(
                    "coordinator mail %d (%s): attempt %d failed (%s); trying again in %d s",
                    due.id,
                    due.kind,
                    due.attempt,
                    type(exc).__name__,
                    backoff(due.attempt),
                )
            self.sent += n
            return n
        async with self.sessionmaker.begin() as s:
            await store.mark_sent(s, due.id, self.clock())
        self.sent += n
        return n

    async def tick(self) -> int:
        """One round of the periodic loop: queue the due reminders, send what is pending."""
        await self.queue_deadlines()
        return await self.send_due()

    def kick(self) -> None:
        """Send what is pending now, in the background (after a commit that queued mail)."""
        if not self.enabled:
            return
        task = asyncio.get_running_loop().create_task(self._quietly(), name="coordinator mail")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _quietly(self) -> None:
        try:
            await self.send_due()
        except Exception as exc:  # the periodic loop tries again
            log.warning("coordinator mail: sending failed (%s)", type(exc).__name__)

    async def idle(self) -> None:
        """Wait for the background sending started by `kick` (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self, grace: float = 10.0) -> None:
        """At shutdown: let the background sending finish for `grace` seconds, then cancel
        it (what was not sent stays pending and is sent after the restart)."""
        try:
            await asyncio.wait_for(self.idle(), grace)
        except TimeoutError:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
