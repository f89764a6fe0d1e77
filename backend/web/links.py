"""Where respondents and Telegram reach us: the public base URL and an invite's two links."""

from __future__ import annotations

from backend.web.settings import Settings


def public_base(settings: Settings) -> str:
    """PUBLIC_URL, or this server's own address for a local run."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = "localhost" if settings.host in ("127.0.0.1", "0.0.0.0", "::") else settings.host  # noqa: S104
    return f"http://{host}:{settings.port}"


def invite_links(code: str, *, username: str, base: str) -> dict[str, str | None]:
    """The Telegram deep link (with the bot's username) and the web link of an invite."""
    return {
        "telegram_link": f"https://t.me/{username}?start={code}" if username else None,
        "web_link": f"{base}/s/{code}",
    }
