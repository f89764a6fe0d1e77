"""Every `web.AppKey` of the application, in one place."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from backend.settings import Settings
from conversations.engine import Engine
from conversations.survey import Survey

SETTINGS = web.AppKey("settings", Settings)
DB_ENGINE = web.AppKey("db_engine", AsyncEngine)
SESSIONMAKER = web.AppKey("sessionmaker", async_sessionmaker)
REDIS = web.AppKey("redis", object)  # redis.asyncio.Redis, or None for the embedded default
SESSION_STORE = web.AppKey("session_store", object)  # SessionStore
DEDUP = web.AppKey("dedup", object)  # UpdateDeduplicator
SURVEY_ENGINE = web.AppKey("survey_engine", Engine)
SURVEY = web.AppKey("survey", Survey)  # the use case: one respondent event at a time
METRICS = web.AppKey("metrics", object)  # Metrics
SECRET_KEY = web.AppKey("secret_key", str)
BOT = web.AppKey("bot", object)  # bot.application.BotChannel, or None without a token
BOT_USERNAME = web.AppKey("bot_username", str)
SCHEDULER = web.AppKey("reminder_scheduler", object)  # bot.reminders.ReminderScheduler, or None
EXTRA: web.AppKey[dict[str, Any]] = web.AppKey("extra", dict)
