"""The coordinator dashboard and its JSON API: `setup(app)` registers routes and middlewares.

Pages under /login and /dashboard (signed-cookie session, CSRF on every form), the API
under /api (Bearer token), static files under /static/dashboard.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from backend.dashboard import (
    api,
    api_rounds,
    auth,
    exports_glue,
    views_account,
    views_actions,
    views_agency,
    views_cluster,
    views_comments,
    views_compare,
    views_cycles,
    views_home,
    views_results,
    views_review,
    views_self,
)
from backend.dashboard.web import (
    error_middleware,
    session_middleware,
)
from backend.web import keys

STATIC = Path(__file__).resolve().parent.parent / "static" / "dashboard"


async def _login_limiter(app: web.Application) -> AsyncIterator[None]:
    """The login limiter: in Redis if the app has a client (made by `_stores`), else memory."""
    settings = app[keys.SETTINGS]
    app[keys.LIMITER] = auth.make_login_limiter(
        app[keys.REDIS], app[keys.SECRET_KEY], settings.redis_prefix
    )
    yield  # the Redis client is the app's: `_stores` closes it


def setup(app: web.Application) -> None:
    """Register the dashboard's routes, middlewares and resources on the app.

    Called by `create_app` after its own cleanup_ctx entries: the limiter's entry runs
    after `_stores`, which opens the Redis client the limiter shares.
    """
    app.cleanup_ctx.append(_login_limiter)
    app[keys.CODEC] = auth.SessionCodec(app[keys.SECRET_KEY])
    app[keys.DEVICES] = auth.DeviceCodec(app[keys.SECRET_KEY])
    app.middlewares.append(error_middleware)
    app.middlewares.append(session_middleware)
    for module in (
        views_home,
        views_account,
        views_cycles,
        views_self,
        views_results,
        views_comments,
        views_actions,
        views_compare,
        views_cluster,
        views_agency,
        views_review,
        exports_glue,
        api,
        api_rounds,
    ):
        for method, path, handler, name in module.routes():
            app.router.add_route(method, path, handler, name=name)
    app.router.add_static("/static/dashboard/", STATIC, name="dash:static")
