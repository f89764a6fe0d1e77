"""An SMTP server inside the test's event loop (aiosmtpd): what the app sends is kept in
`SmtpSink.messages`, parsed. No mail leaves the machine.

    async with smtp_sink() as sink:
        settings = make_settings(..., smtp_host="127.0.0.1", smtp_port=sink.port, ...)
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP


@dataclass
class SmtpSink:
    port: int = 0
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)  # (from, to)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(msg)  # type: ignore[arg-type]
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        async with self.arrived:
            self.arrived.notify_all()
        return "250 OK"

    async def wait_for(self, n: int, seconds: float = 10.0) -> list[EmailMessage]:
        """The messages, once at least `n` have arrived."""
        async with asyncio.timeout(seconds), self.arrived:
            await self.arrived.wait_for(lambda: len(self.messages) >= n)
        return self.messages


def mail_settings(port: int, **more: Any) -> dict[str, Any]:
    """The settings that send mail to the sink (no TLS: a local relay)."""
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_starttls": False,
        "mail_from": "rounds@guidance.example",
        "public_url": "http://guidance.example",  # http: the test client's cookies
        **more,
    }


@asynccontextmanager
async def smtp_sink() -> AsyncIterator[SmtpSink]:
    sink = SmtpSink()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(sink, hostname="sink.test", loop=loop), "127.0.0.1", 0
    )
    sink.port = server.sockets[0].getsockname()[1]
    try:
        yield sink
    finally:
        server.close()
        await server.wait_closed()
