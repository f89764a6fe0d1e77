"""Helpers shared by the browser tests: what a page may not do, logging in, the Mini App's
signed launch fragment."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote, urlencode

from backend.demo import DEMO_EMAIL, DEMO_PASSWORD
from backend.web.miniapp import sign_init_data
from tests.apptools import TOKEN


class Watch:
    """Requests and console errors of one page: nothing may leave the app's origin."""

    def __init__(self, page: Any, base: str) -> None:
        self.base = base
        self.foreign: list[str] = []
        self.errors: list[str] = []
        page.on("request", self._request)
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _request(self, req: Any) -> None:
        if not req.url.startswith((self.base, "data:", "about:")):
            self.foreign.append(req.url)

    def check(self) -> None:
        assert not self.foreign, self.foreign
        assert not self.errors, self.errors


async def fill_inputs(page: Any, **values: str) -> None:
    """Type each value into the page's `<input name=...>` of its name, in the order given."""
    for name, value in values.items():
        await page.fill(f"input[name={name}]", value)


async def log_in(page: Any, base: str, email: str, password: str) -> None:
    """The login form, filled and sent; waits for a dashboard page."""
    await page.goto(base + "/login")
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", password)
    await page.click("main button[type=submit]")
    await page.wait_for_url("**/dashboard/**")


async def demo_coordinator(
    browser: Any, base: str, viewport: dict[str, int], lang: str
) -> tuple[Any, Any]:
    """The demo's coordinator logged in (choosing `lang` on the login page), at the home."""
    ctx = await browser.new_context(viewport=viewport, locale="en-GB")
    ctx.set_default_timeout(20000)
    page = await ctx.new_page()
    await page.goto(base + "/login")
    if lang != "en":
        await page.select_option(".lang-picker select", lang)
        await page.click(".lang-picker button")
        await page.wait_for_load_state()
    await page.fill("input[name=email]", DEMO_EMAIL)
    await page.fill("input[name=password]", DEMO_PASSWORD)
    await page.click("main button[type=submit]")
    await page.wait_for_url("**/dashboard/home")
    return ctx, page


async def to_the_comment(page: Any) -> None:
    """Tap the first choice of each card until the web chat shows a free-text question."""
    for _ in range(60):
        if await page.locator("#card textarea").count():
            return
        label = await page.locator("#progress-label").inner_text()
        await page.locator("#card form.choices button").first.click()
        await page.locator("#progress-label", has_text=label).wait_for(state="detached")
    raise AssertionError("no free-text question")


async def too_wide(page: Any) -> list[str]:
    """The page's width beyond the viewport, and the elements that reach past its right edge
    outside any scroll box (none: no page is wider than the screen)."""
    return await page.evaluate(
        """() => {
          const w = document.documentElement.clientWidth, out = [];
          if (document.documentElement.scrollWidth > w)
            out.push('page ' + document.documentElement.scrollWidth + ' > ' + w);
          const scrolls = e => { for (let p = e.parentElement; p; p = p.parentElement) {
            const o = getComputedStyle(p).overflowX; if (o === 'auto' || o === 'scroll') return true; }
            return false; };
          for (const e of document.querySelectorAll('body *')) {
            const r = e.getBoundingClientRect();
            if (r.right > w + 1 && !scrolls(e)) out.push(e.tagName + '.' + e.className + ' ' + Math.round(r.right));
          }
          return out.slice(0, 10);
        }"""
    )


def mini_app_fragment(start_param: str, user_id: int = 5150) -> str:
    """The URL fragment a Telegram client opens the Mini App with: signed initData."""
    fields = {
        "user": json.dumps({"id": user_id, "first_name": "Ana"}),
        "auth_date": str(int(time.time())),
        "start_param": start_param,
    }
    fields["hash"] = sign_init_data(fields, TOKEN)
    return "tgWebAppData=" + quote(urlencode(fields)) + "&tgWebAppVersion=8.0"
