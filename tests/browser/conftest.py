"""Browser test fixtures: Debian's Chromium driven by Playwright (async API), the app on a port.

- `browser`: one headless Chromium for the whole session. Async Playwright objects belong to
  the event loop that made them, so tests using it run in the session loop:
      pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]
- `serve_app(settings)`: the real app on 127.0.0.1:<free port>, yields its base URL and app.
- `sqlite_settings(tmp_path)`: settings on a fresh SQLite file with the schema created.
- `SCREENSHOTS`: where screenshots go (gitignored); `phone_context(browser, js=...)`: 390x844.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from backend.demo import DEMO_SLUG, prepare_demo
from backend.web import keys
from backend.web.app import create_app
from backend.web.settings import Settings
from storage import schools
from storage.models import School
from tests.apptools import (
    TOKEN,
    WEBHOOK_SECRET,
    Seeded,
    create_schema,
    make_settings,
    seed_school,
)
from tests.conftest import unavailable

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).parent / "screenshots"
PHONE = {"width": 390, "height": 844}
HAVE_CHROMIUM = Path(CHROMIUM).exists()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Any]:
    if not HAVE_CHROMIUM:
        unavailable(CHROMIUM, "is missing (`make system-deps` installs Debian's chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield b
        finally:
            await b.close()


async def phone_page(browser: Any, *, js: bool = True, **kw: Any) -> tuple[Any, Any]:
    """A page in a new phone-sized context: (context, page)."""
    ctx = await phone_context(browser, js=js, **kw)
    return ctx, await ctx.new_page()


@asynccontextmanager
async def phone_at(
    server: AbstractAsyncContextManager[tuple[str, web.Application]],
    browser: Any,
    role: str,
    *,
    js: bool = True,
) -> AsyncIterator[tuple[str, web.Application, Seeded, Any]]:
    """A school seeded with an invite for `role` on `server` (`serve_app(...)`,
    `serve_mini_app(...)` ...), and a page in a new phone-sized context (`page.context`):
    (base URL, app, seeded, page); the context is closed at the end."""
    async with server as (base, app):
        seeded = await seed_school(app[keys.SESSIONMAKER], roles=[role])
        ctx, page = await phone_page(browser, js=js)
        try:
            yield base, app, seeded, page
        finally:
            await ctx.close()


async def phone_context(browser: Any, *, js: bool = True, **kw: Any) -> Any:
    """A phone-sized browser context (390x844, touch), with or without JavaScript."""
    ctx = await browser.new_context(
        viewport=PHONE,
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        java_script_enabled=js,
        locale="en-GB",
        **kw,
    )
    ctx.set_default_timeout(8000)
    return ctx


@pytest_asyncio.fixture(loop_scope="session")
async def sqlite_settings(tmp_path: Path) -> Settings:
    url = f"sqlite+aiosqlite:///{tmp_path / 'browser.db'}"
    await create_schema(url)
    return make_settings(url, data_dir=tmp_path / "data")


@asynccontextmanager
async def serve_app(
    settings: Settings, **overrides: Any
) -> AsyncIterator[tuple[str, web.Application]]:
    """The real app on a real port of 127.0.0.1: (base URL without a trailing slash, app)."""
    async with serve(create_app(settings, **overrides)) as served:
        yield served


@asynccontextmanager
async def serve_demo(tmp: Path) -> AsyncIterator[tuple[str, web.Application, School]]:
    """The demo (`prepare_demo`, SQLite under `tmp`) on a port: (base URL, app, its school)."""
    settings = make_settings(f"sqlite+aiosqlite:///{tmp / 'demo.db'}", data_dir=tmp / "data")
    await prepare_demo(settings)
    async with serve_app(settings) as (base, app):
        async with app[keys.SESSIONMAKER]() as s:
            school = await schools.get_school_by_slug(s, DEMO_SLUG)
        assert school is not None
        yield base, app, school


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[tuple[str, web.Application]]:
    """`app` (made and adjusted by the caller) on a real port of 127.0.0.1."""
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/"), app
    finally:
        await server.close()


@asynccontextmanager
async def serve_mini_app(settings: Settings) -> AsyncIterator[tuple[str, web.Application]]:
    """The app with a bot token and a minimal Bot API behind it, as the Mini App needs."""
    api = await fake_bot_api()
    bot = settings.model_copy(
        update={
            "telegram_bot_token": TOKEN,
            "telegram_webhook_secret": WEBHOOK_SECRET,
            "telegram_api_base_url": str(api.make_url("/bot")),
        }
    )
    try:
        async with serve_app(bot) as served:
            yield served
    finally:
        await api.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    return SCREENSHOTS


async def fake_bot_api() -> TestServer:
    """A minimal Bot API on loopback (getMe and a yes to everything) for the Mini App pages."""

    async def method(request: web.Request) -> web.Response:
        result: object = True
        if request.match_info["method"] == "getMe":
            result = {"id": 123456, "is_bot": True, "first_name": "T", "username": "t_bot"}
        return web.json_response({"ok": True, "result": result})

    api = web.Application()
    api.router.add_route("*", "/bot{token}/{method}", method)
    server = TestServer(api, host="127.0.0.1")
    await server.start_server()
    return server
