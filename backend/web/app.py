"""`create_app(settings)`: the aiohttp application, used by `serve`, `demo` and the tests.

Each resource is opened and closed by its own `cleanup_ctx` entry, in dependency order
(database, then Redis-backed stores, then the bot); a cleanup runs only if its start did.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from sqlalchemy.exc import DBAPIError

from backend import dashboard
from backend.certification.notices import Notifier, mail_config
from backend.dashboard.auth import request_is_https
from backend.dashboard.web import _
from backend.i18n import install_jinja
from backend.reporting import releases, summaries
from backend.web import input_guard, keys, webchat, webhook
from backend.web.keys import AppOptions
from backend.web.links import public_base
from backend.web.logs import install_redaction, request_id_middleware
from backend.web.metrics import Metrics
from backend.web.settings import Settings
from bot.reminders import ReminderScheduler, utc_now
from conversations.banks import load_banks
from conversations.engine import Engine
from conversations.model import load_model
from conversations.survey import Survey
from storage import responses
from storage.admission import MemoryAdmissionLimit, RedisAdmissionLimit
from storage.db import create_engine, make_sessionmaker, ping
from storage.dedup import MemoryUpdateDeduplicator, RedisUpdateDeduplicator
from storage.sessions import MemorySessionStore, RedisSessionStore, redis_client
from storage.survey import SqlSurveyStore

log = logging.getLogger(__name__)


async def _database(app: web.Application) -> AsyncIterator[None]:
    engine = create_engine(app[keys.SETTINGS].database_url)
    app[keys.DB_ENGINE] = engine
    app[keys.SESSIONMAKER] = make_sessionmaker(engine)
    await _sync_question_map(app)
    yield
    await engine.dispose()


async def _sync_question_map(app: web.Application) -> None:
    """Keep the table analytics join on (bank question -> indicators) in step with the banks."""
    try:
        async with app[keys.SESSIONMAKER].begin() as s:
            await responses.sync_question_map(s, load_banks().values())
    except DBAPIError as exc:
        if (
            "question_map" in str(exc)
            or "no such table" in str(exc)
            or "does not exist" in str(exc)
        ):
            raise RuntimeError(
                "The database has no schema yet: run `guidance-survey db upgrade` first."
            ) from exc
        raise


async def _stores(app: web.Application) -> AsyncIterator[None]:
    """Session store and update de-duplication: Redis if REDIS_URL is set, else in memory."""
    settings = app[keys.SETTINGS]
    client: Any = None
    if settings.redis_url:
        client = redis_client(settings.redis_url)
        store: Any = RedisSessionStore(client, settings.redis_prefix)
        dedup: Any = RedisUpdateDeduplicator(client, settings.redis_prefix)
    else:
        store = MemorySessionStore()
        dedup = MemoryUpdateDeduplicator()
    app[keys.REDIS] = client
    app[keys.SESSION_STORE] = store
    app[keys.DEDUP] = dedup
    yield
    await dedup.close()
    await store.close()
    if client is not None:
        await client.aclose()


async def _survey(app: web.Application) -> AsyncIterator[None]:
    """The use case, wired to its stores (`conversations.survey.Survey`)."""
    settings = app[keys.SETTINGS]
    limit, window = settings.shared_code_limit, settings.shared_code_window_seconds
    admission = (
        RedisAdmissionLimit(app[keys.REDIS], limit, window, settings.redis_prefix)
        if app[keys.REDIS] is not None
        else MemoryAdmissionLimit(limit, window)
    )
    app[keys.SURVEY] = Survey(
        engine=app[keys.SURVEY_ENGINE],
        store=SqlSurveyStore(app[keys.SESSIONMAKER], app[keys.SECRET_KEY]),
        sessions=app[keys.SESSION_STORE],
        secret_key=app[keys.SECRET_KEY],
        ttl=app[keys.SETTINGS].session_ttl_seconds,
        metrics=app[keys.METRICS],
        reminders=app[keys.SETTINGS].reminders_enabled,
        admission=admission,
    )
    yield


async def _reminders(app: web.Application) -> AsyncIterator[None]:
    """The reminder scheduler (`bot.reminders`), after the bot: it queues in the bot's outbox."""
    settings = app[keys.SETTINGS]
    options = app[keys.OPTIONS]
    channel = app[keys.BOT]
    scheduler = ReminderScheduler(
        sessionmaker=app[keys.SESSIONMAKER],
        secret_key=app[keys.SECRET_KEY],
        engine=app[keys.SURVEY_ENGINE],
        submit=channel.outbox.submit,
        delays_hours=settings.reminder_delays,
        quiet=settings.quiet_range,
        batch=settings.reminder_batch,
        interval=settings.reminder_interval_seconds,
        clock=options.clock or utc_now,
    )
    app[keys.SCHEDULER] = scheduler
    if not options.reminder_loop:  # tests call `tick` themselves
        yield
        return
    async with _every("reminder scheduler", scheduler.interval, scheduler.tick, "queued"):
        yield


@asynccontextmanager
async def _every(
    name: str, interval: float, one_round: Callable[[], Awaitable[int]], counted: str
) -> AsyncIterator[None]:
    """`one_round()` every `interval` seconds, in the background for as long as the app runs
    (cancelled at its cleanup); a failing round is logged only, the next one tries again."""

    async def repeat() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                n = await one_round()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("%s: a round failed (%s)", name, type(exc).__name__)
                continue
            if n:
                log.info("%s: %d %s", name, n, counted)

    task = asyncio.create_task(repeat(), name=name)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _coordinator_mail(app: web.Application) -> AsyncIterator[None]:
    """The coordinators' e-mail (`backend.certification.notices`): deadline reminders and
    the queued decisions, every MAIL_INTERVAL_SECONDS, when SMTP_HOST is set."""
    settings = app[keys.SETTINGS]
    options = app[keys.OPTIONS]
    notifier = Notifier(
        app[keys.SESSIONMAKER],
        mail_config(settings),
        public_base(settings),
        days=settings.deadline_days,
        interval=settings.mail_interval_seconds,
        clock=options.clock or utc_now,
    )
    app[keys.NOTIFIER] = notifier
    try:
        if not (notifier.enabled and options.mail_loop):
            yield
            return
        async with _every("coordinator mail", notifier.interval, notifier.tick, "sent"):
            yield
    finally:
        await notifier.close()


async def _releases(app: web.Application) -> AsyncIterator[None]:
    """Release new figures in the background, so that they move on when nobody reads."""
    interval = app[keys.SETTINGS].release_refresh_seconds
    sm = app[keys.SESSIONMAKER]
    async with _every("releases", interval, lambda: releases.refresh(sm), "question states"):
        yield


async def _cluster_summaries(app: web.Application) -> AsyncIterator[None]:
    """Keep the cluster views' school summaries up to date in the background."""
    interval = app[keys.SETTINGS].cluster_refresh_seconds
    sm, model = app[keys.SESSIONMAKER], load_model()
    async with _every("cluster summaries", interval, lambda: summaries.refresh(sm, model), "built"):
        yield


async def _refuse_bad_input(request: web.Request) -> web.StreamResponse:
    """The 400 answer to a NUL character (`input_guard`): the area's own, in the reader's
    language."""
    name = input_guard.route_name(request)
    if name.startswith("webchat."):
        return await webchat.bad_input(request)
    if name.startswith("api:") or request.path.startswith("/api/"):
        raise web.HTTPBadRequest(text=input_guard.API_MESSAGE)  # JSON, by the error middleware
    unmatched = isinstance(request.match_info.http_exception, web.HTTPException)
    if name.startswith("dash:") or (unmatched and not request.path.startswith("/telegram")):
        raise web.HTTPBadRequest(text=_(request, input_guard.MESSAGE))  # the dashboard's page
    return web.Response(status=400, text="400: " + input_guard.API_MESSAGE)


async def index(request: web.Request) -> web.Response:
    """The site root: coordinators go to their dashboard (which asks them to log in)."""
    raise web.HTTPFound("/dashboard")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when the database (and Redis, if configured) answer."""
    checks: dict[str, str] = {}
    try:
        await ping(request.app[keys.DB_ENGINE])
        checks["database"] = "ok"
    except Exception as exc:  # any failure means not ready
        checks["database"] = f"error: {type(exc).__name__}"
    redis_client = request.app[keys.REDIS]
    if redis_client is not None:
        try:
            await redis_client.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"error: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    return web.json_response(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503
    )


HSTS = "max-age=31536000"  # a year; no includeSubDomains: the other hosts of a domain are not ours


async def _strict_transport_security(request: web.Request, response: web.StreamResponse) -> None:
    """Browsers that reached us over https come back only over https (every page)."""
    if request_is_https(request):
        response.headers.setdefault("Strict-Transport-Security", HSTS)


# Headers a reverse proxy adds: a request that carries one came from elsewhere, even if
# the proxy's connection to us is a loopback one.
_FORWARDED = ("Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-IP")


def _from_this_machine(request: web.Request) -> bool:
    """A loopback peer that no proxy forwarded for (a same-host proxy's peer is loopback too)."""
    try:
        peer = ipaddress.ip_address((request.remote or "").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
        peer = peer.ipv4_mapped
    return peer.is_loopback and not any(h in request.headers for h in (*_FORWARDED, "Via"))


async def metrics_view(request: web.Request) -> web.Response:
    """Prometheus text. METRICS_TOKEN set: `Authorization: Bearer <token>` (401 otherwise);
    unset: only for a client on this machine, 404 (as if absent) for anyone else."""
    token = request.app[keys.SETTINGS].metrics_token
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode("utf-8", "surrogatepass"), token.encode()
        ):
            raise web.HTTPUnauthorized(
                text="Send Authorization: Bearer <METRICS_TOKEN>",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
    elif not _from_this_machine(request):
        raise web.HTTPNotFound()
    body, content_type = request.app[keys.METRICS].render()
    return web.Response(
        body=body, headers={"Content-Type": content_type, "Cache-Control": "no-store"}
    )


def create_app(settings: Settings, **overrides: Any) -> web.Application:
    """Assemble the application; `overrides` are `keys.AppOptions` (what `serve` and `demo`
    ask for, and what tests tune)."""
    install_redaction()  # no database error's text (respondents' words) in any log line

    app = web.Application(
        client_max_size=settings.webhook_max_body_bytes * 4 + 16 * 1024 * 1024,
        middlewares=[request_id_middleware],
    )
    app[keys.SETTINGS] = settings
    app[keys.SECRET_KEY] = settings.resolved_secret_key()
    app[keys.METRICS] = Metrics()
    app[keys.OPTIONS] = options = AppOptions(**overrides)
    model = load_model()
    app[keys.SURVEY_ENGINE] = Engine.from_banks(load_banks().values(), model.version)
    app[keys.BOT] = None
    app[keys.BOT_USERNAME] = options.bot_username

    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(Path(__file__).resolve().parent.parent / "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        # Templates ship with the code: no stat() of each template file on every render
        # (the Mini App renders a card per answer).
        auto_reload=False,
    )
    install_jinja(env)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_stores)
    app.cleanup_ctx.append(_survey)
    app.cleanup_ctx.append(_coordinator_mail)
    if settings.release_refresh_seconds:
        app.cleanup_ctx.append(_releases)
    if settings.cluster_refresh_seconds:
        app.cleanup_ctx.append(_cluster_summaries)

    app.router.add_get("/", index, name="index")
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_get("/readyz", readyz, name="readyz")
    app.router.add_get("/metrics", metrics_view, name="metrics")
    webhook.setup(app)
    app[keys.SCHEDULER] = None
    if settings.telegram_bot_token and settings.reminders_enabled:
        app.cleanup_ctx.append(_reminders)  # after the bot: it queues in the bot's outbox
    webchat.setup(app)
    dashboard.setup(app)
    app.on_response_prepare.append(_strict_transport_security)
    # Last, so innermost: after the dashboard's session (the reader, their language, CSRF),
    # before every view. A NUL in a path, query or form field: 400, nothing stored.
    app.middlewares.append(input_guard.nul_middleware(_refuse_bad_input))
    return app
