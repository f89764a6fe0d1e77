"""Every `web.AppKey` of the application, in one place, each with its type.

The types are imported for the type checker only: the modules that define them import
this one (a web shell's parts find each other through the app).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

    from backend.certification.notices import Notifier
    from backend.dashboard.auth import DeviceCodec, LoginLimiter, SessionCodec
    from backend.web.metrics import Metrics
    from backend.web.settings import Settings
    from backend.web.webchat import Fragments
    from bot.channel import BotChannel
    from bot.reminders import ReminderScheduler
    from conversations.engine import Engine
    from conversations.survey import Survey
    from storage.dedup import UpdateDeduplicator
    from storage.sessions import SessionStore


@dataclass(frozen=True, slots=True)
class AppOptions:
    """How the app runs beyond its Settings: what `serve` and `demo` ask for, and what the
    tests tune (`create_app(settings, **options)`)."""

    set_webhook: bool = False  # register the webhook with Telegram at start (`serve`)
    polling: bool = False  # getUpdates instead of the webhook (`demo`)
    poll_timeout: int = 30
    bot_username: str = ""  # known without asking the Bot API
    bot_rates: dict[str, float] = field(default_factory=dict)  # bot.ratelimit.RateLimiter
    bot_backoff: float = 0.5  # seconds before a Bot API call is tried again
    drain_timeout: float = 10.0  # seconds the outbox may take to empty at shutdown
    clock: Callable[[], datetime] | None = None  # the reminders' clock (tests)
    reminder_loop: bool = True  # False: the tests call the scheduler's `tick` themselves
    mail_loop: bool = True  # False: the tests call the coordinators' notifier's `tick`


SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
OPTIONS: web.AppKey[AppOptions] = web.AppKey("options")
SECRET_KEY: web.AppKey[str] = web.AppKey("secret_key")
DB_ENGINE: web.AppKey[AsyncEngine] = web.AppKey("db_engine")
SESSIONMAKER: web.AppKey[async_sessionmaker] = web.AppKey("sessionmaker")
REDIS: web.AppKey[Redis | None] = web.AppKey("redis")  # None: the embedded default
SESSION_STORE: web.AppKey[SessionStore] = web.AppKey("session_store")
DEDUP: web.AppKey[UpdateDeduplicator] = web.AppKey("dedup")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
SURVEY_ENGINE: web.AppKey[Engine] = web.AppKey("survey_engine")
SURVEY: web.AppKey[Survey] = web.AppKey("survey")  # the use case: one respondent event at a time
BOT: web.AppKey[BotChannel | None] = web.AppKey("bot")  # None without a token
BOT_USERNAME: web.AppKey[str] = web.AppKey("bot_username")
SCHEDULER: web.AppKey[ReminderScheduler | None] = web.AppKey("reminder_scheduler")
# The coordinators' e-mail about rounds (it does nothing without SMTP_HOST).
NOTIFIER: web.AppKey[Notifier] = web.AppKey("coordinator_notifier")
# The dashboard's login limiter, session cookie codec and device cookie codec.
LIMITER: web.AppKey[LoginLimiter] = web.AppKey("dashboard_login_limiter")
CODEC: web.AppKey[SessionCodec] = web.AppKey("dashboard_session_codec")
DEVICES: web.AppKey[DeviceCodec] = web.AppKey("dashboard_device_codec")
# The web chat's static files' versioned URLs by file name, hashed once at setup.
WEBCHAT_STATIC: web.AppKey[dict[str, str]] = web.AppKey("webchat_static_urls")
# The Mini App's rendered cards by their context (`backend.web.webchat.Fragments`).
WEBCHAT_FRAGMENTS: web.AppKey[Fragments] = web.AppKey("webchat_fragments")
