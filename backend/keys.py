"""Every `web.AppKey` of the application, in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from backend.settings import Settings
from conversations.engine import Engine

if TYPE_CHECKING:
    from backend.metrics import Metrics
    from backend.runner import SurveyRunner
    from storage.dedup import UpdateDeduplicator
    from storage.sessions import SessionStore

SETTINGS = web.AppKey("settings", Settings)
DB_ENGINE = web.AppKey("db_engine", AsyncEngine)
SESSIONMAKER = web.AppKey("sessionmaker", async_sessionmaker)
REDIS = web.AppKey("redis", object)  # redis.asyncio.Redis, or None for the embedded default
SESSION_STORE = web.AppKey("session_store", "SessionStore")
DEDUP = web.AppKey("dedup", "UpdateDeduplicator")
SURVEY_ENGINE = web.AppKey("survey_engine", Engine)
RUNNER = web.AppKey("runner", "SurveyRunner")
METRICS = web.AppKey("metrics", "Metrics")
SECRET_KEY = web.AppKey("secret_key", str)
BOT = web.AppKey("bot", object)  # bot.application.BotChannel, or None without a token
BOT_USERNAME = web.AppKey("bot_username", str)
EXTRA: web.AppKey[dict[str, Any]] = web.AppKey("extra", dict)
