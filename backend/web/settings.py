"""Configuration from environment variables (and an optional `.env` file).

The variable names are an outward interface (see the design): keep them stable.
"""

from __future__ import annotations

import functools
import ipaddress
import secrets
from pathlib import Path
from typing import TypeVar

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_TELEGRAM_API = "https://api.telegram.org/bot"


_N = TypeVar("_N", int, float)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./guidance.db"
    redis_url: str = ""
    redis_prefix: str = "gs:"  # key prefix, so several deployments can share one Redis
    telegram_bot_token: str = ""
    telegram_api_base_url: str = DEFAULT_TELEGRAM_API
    telegram_webhook_secret: str = ""
    public_url: str = ""
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    secret_key: str = ""
    data_dir: Path = Path("./data")
    # Minimum group size for any figure shown (never below 3) and for free text.
    anonymity_threshold: int = Field(default=5, ge=3)
    free_text_threshold: int = Field(default=10, ge=3)
    session_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    # How long a web-chat browser keeps its place after the last visit (the respondent
    # cookie, renewed on every page and answer). 72 h: a survey takes minutes, but one that
    # is paused at the bell or at the end of the day is picked up the next day or after a
    # weekend; a shared device does not keep someone's survey open longer than that.
    webchat_cookie_hours: int = Field(default=72, ge=1, le=400 * 24)
    webhook_max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    log_level: str = "INFO"
    # How often each server process builds the cluster views' out-of-date school summaries
    # ahead of the next view (backend.reporting.summaries); 0: only when a view needs one.
    cluster_refresh_seconds: int = Field(default=300, ge=0)
    # How often each server process releases what the anonymity rule allows of every cycle
    # whose responses changed (backend.reporting.releases); 0: only when figures are read.
    release_refresh_seconds: int = Field(default=60, ge=0)
    # New web respondents one network may start through one shared code per window
    # (storage.admission): a bound on answering many times to pad a small group.
    shared_code_limit: int = Field(default=10, ge=1)
    shared_code_window_seconds: int = Field(default=600, ge=1)
    # Reminders (Telegram only, after an opt-in): off unless REMINDERS_ENABLED is set.
    reminders_enabled: bool = False
    reminder_delays_hours: str = "24,72"  # since the last answer; at most two reminders
    quiet_hours: str = "20-8"  # local hours of the school's time zone; empty: none
    reminder_interval_seconds: int = Field(default=60, ge=1)  # how often the scheduler looks
    reminder_batch: int = Field(default=20, ge=1, le=1000)  # most messages one look sends
    # E-mail to school coordinators about certification rounds (the board's decisions, deadline
    # reminders): off while SMTP_HOST is empty (the dashboard still shows everything).
    smtp_host: str = ""
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = True  # upgrade a plain connection (port 587); off for a local relay
    smtp_ssl: bool = False  # TLS from the first byte (port 465); then STARTTLS is not used
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    mail_from: str = ""  # the From address; required with SMTP_HOST
    mail_interval_seconds: int = Field(default=60, ge=1)  # how often queued mail is looked at
    # Reminders to coordinators of schools that have not submitted to a round with a deadline,
    # this many days before it (each once); empty: none.
    deadline_reminder_days: str = "14,7,1"
    # Reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed: a comma-separated
    # list of addresses or networks (CIDR). Empty: nobody's (the TCP peer is the client).
    trusted_proxies: str = ""
    # GET /metrics: with a token, only `Authorization: Bearer <token>` reads it; without
    # one, only a client on this machine (loopback, not through a proxy) does, others 404.
    metrics_token: str = ""

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, v: str) -> str:
        if v.startswith("postgres://"):
            v = "postgresql://" + v.removeprefix("postgres://")
        if v.startswith("postgresql://"):
            v = "postgresql+asyncpg://" + v.removeprefix("postgresql://")
        if v.startswith("sqlite://") and not v.startswith("sqlite+aiosqlite://"):
            v = "sqlite+aiosqlite://" + v.removeprefix("sqlite://")
        if not (v.startswith("postgresql+asyncpg://") or v.startswith("sqlite+aiosqlite://")):
            raise ValueError(
                "DATABASE_URL must be a PostgreSQL (postgresql+asyncpg://...) "
                "or SQLite (sqlite+aiosqlite:///...) URL"
            )
        return v

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, v: str) -> str:
        if v and not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                "REDIS_URL must start with redis://, rediss:// or unix:// (or be empty)"
            )
        return v

    @field_validator("reminder_delays_hours")
    @classmethod
    def _delays(cls, v: str) -> str:
        hours = _numbers(v, float, "REMINDER_DELAYS_HOURS is a list of hours, e.g. 24,72")
        if not 1 <= len(hours) <= 2 or any(h <= 0 for h in hours) or hours != sorted(set(hours)):
            raise ValueError("REMINDER_DELAYS_HOURS: one or two increasing positive hours")
        return v

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, v: str) -> str:
        v = v.strip()
        if v:
            start, sep, end = v.partition("-")
            if not (
                sep and start.isdigit() and end.isdigit() and 0 <= int(start) <= 23 >= int(end)
            ):
                raise ValueError("QUIET_HOURS is START-END in whole local hours, e.g. 20-8")
        return v

    @field_validator("deadline_reminder_days")
    @classmethod
    def _deadline_days(cls, v: str) -> str:
        days = _numbers(v, int, "DEADLINE_REMINDER_DAYS is a list of whole days, e.g. 14,7,1")
        if any(d < 0 or d > 366 for d in days) or len(days) != len(set(days)):
            raise ValueError("DEADLINE_REMINDER_DAYS: distinct whole days from 0 to 366")
        return v

    @property
    def deadline_days(self) -> tuple[int, ...]:
        """DEADLINE_REMINDER_DAYS, largest first, e.g. (14, 7, 1)."""
        return tuple(sorted(set(_numbers(self.deadline_reminder_days, int)), reverse=True))

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, v: str) -> str:
        for item in (x.strip() for x in v.split(",")):
            if not item:
                continue
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"TRUSTED_PROXIES: {item!r} is not an IP address or network; give a "
                    "comma-separated list such as 127.0.0.1,10.0.0.0/8"
                ) from None
        return v

    @field_validator("metrics_token")
    @classmethod
    def _metrics_token(cls, v: str) -> str:
        if v and (len(v) < 16 or not all(33 <= ord(c) <= 126 for c in v)):
            raise ValueError(
                "METRICS_TOKEN needs at least 16 visible ASCII characters, e.g. "
                "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return v

    @property
    def trusted_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """TRUSTED_PROXIES as networks (a bare address is a network of one)."""
        return _networks(self.trusted_proxies)

    @property
    def reminder_delays(self) -> tuple[float, ...]:
        """The delays in hours (since the respondent's last answer), e.g. (24.0, 72.0)."""
        return tuple(_numbers(self.reminder_delays_hours, float))

    @property
    def quiet_range(self) -> tuple[int, int] | None:
        """(start, end) local hours when no reminder is sent, or None."""
        if not self.quiet_hours:
            return None
        start, _, end = self.quiet_hours.partition("-")
        return (int(start), int(end)) if start != end else None

    @field_validator("telegram_webhook_secret")
    @classmethod
    def _secret_chars(cls, v: str) -> str:
        # Telegram allows 1-256 characters A-Z, a-z, 0-9, _ and -.
        if v and (len(v) > 256 or not all(c.isalnum() or c in "_-" for c in v)):
            raise ValueError(
                "TELEGRAM_WEBHOOK_SECRET may hold only A-Z, a-z, 0-9, _ and - (1-256 characters)"
            )
        return v

    @model_validator(mode="after")
    def _token_needs_secret(self) -> Settings:
        if self.telegram_bot_token and not self.telegram_webhook_secret:
            raise ValueError("TELEGRAM_WEBHOOK_SECRET is required when TELEGRAM_BOT_TOKEN is set")
        if self.smtp_host and "@" not in self.mail_from:
            raise ValueError("MAIL_FROM (an e-mail address) is required when SMTP_HOST is set")
        if self.free_text_threshold < self.anonymity_threshold:
            raise ValueError("FREE_TEXT_THRESHOLD may not be below ANONYMITY_THRESHOLD")
        return self

    @property
    def bot_id(self) -> str:
        return self.telegram_bot_token.split(":", 1)[0] if self.telegram_bot_token else ""

    def resolved_secret_key(self) -> str:
        """SECRET_KEY, or one generated once into the data dir and reused after."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret_key"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        path.write_text(key)
        path.chmod(0o600)
        return key


def _numbers(text: str, kind: type[_N], wrong: str = "") -> list[_N]:
    """The comma-separated numbers of a setting (`kind`: int or float), blanks skipped;
    ValueError(`wrong`) if one is not a number of that kind."""
    try:
        return [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(wrong) from None


@functools.cache
def _networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(
        ipaddress.ip_network(item.strip(), strict=False) for item in text.split(",") if item.strip()
    )
