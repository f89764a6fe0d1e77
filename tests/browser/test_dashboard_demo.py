"""The dashboard on the demo school (two cycles, twelve groups, some below the threshold), as a
coordinator meets it: on a 390 px phone and a 1366 px laptop, in English and Armenian.

Screenshots land in tests/browser/screenshots/demo-*.png (gitignored) for a human look.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from backend.demo import ADMIN_EMAIL, DEMO_EMAIL, DEMO_PASSWORD, DEMO_SLUG
from backend.web import keys
from storage import schools
from tests.browser.a11y import assert_clean, check_a11y
from tests.browser.conftest import PHONE, serve_demo
from tests.browser.support import log_in, too_wide

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

LAPTOP = {"width": 1366, "height": 768}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def demo(tmp_path_factory) -> AsyncIterator[tuple[str, dict[str, int]]]:
    """The demo school served on a port: (base URL, {"current": id, "previous": id})."""
    async with serve_demo(tmp_path_factory.mktemp("demo")) as (base, app, school):
        async with app[keys.SESSIONMAKER]() as s:
            cycles = await schools.list_cycles(s, school.id)
        ids = {("current" if c.status == "open" else "previous"): c.id for c in cycles}
        yield base, ids


async def login(
    browser: Any, base: str, viewport: dict[str, int], *, email: str = DEMO_EMAIL, lang: str = "en"
):
    """A logged-in page in `lang` (chosen every time: the account keeps the last choice)."""
    ctx = await browser.new_context(viewport=viewport, locale="en-GB")
    ctx.set_default_timeout(30000)
    page = await ctx.new_page()
    await log_in(page, base, email, DEMO_PASSWORD)
    await set_language(page, lang)
    return ctx, page


async def set_language(page: Any, lang: str) -> None:
    await page.select_option(".lang-picker select", lang)
    async with page.expect_navigation(wait_until="domcontentloaded"):
        await page.click(".lang-picker button")
    assert await page.get_attribute("html", "lang") == lang


def coordinator_pages(ids: dict[str, int]) -> list[str]:
    c = f"/dashboard/cycles/{ids['current']}"
    return [
        "/dashboard/home",
        f"/dashboard/schools/{DEMO_SLUG}",
        c,
        c + "/self-assessment",
        c + "/invites",
        c + "/invites/print",
        c + "/actions",
        c + "/compare",
        c + "/comments",
        c + "/indicators/ME-5",
        c + "/indicators/VL-14",
        c + "/indicators/FL-1",
        "/dashboard/account",
        "/dashboard/account/password",
        "/dashboard/clusters",
    ]


@pytest.mark.parametrize("lang", ["en", "hy"])
async def test_every_dashboard_page_fits_a_phone(browser, demo, screenshots, lang):
    """At 390 px no page is wider than the phone: wide tables scroll inside their own box
    (the response-rate table reflows), nothing pushes the page sideways."""
    base, ids = demo
    ctx, page = await login(browser, base, PHONE, lang=lang)
    wide: dict[str, Any] = {}
    for path in coordinator_pages(ids):
        await page.goto(base + path, wait_until="domcontentloaded")
        width = await page.evaluate("document.documentElement.scrollWidth")
        if width > PHONE["width"]:
            wide[path] = (width, await too_wide(page))
    # The response rates: every group's figures readable without scrolling sideways.
    await page.goto(f"{base}/dashboard/cycles/{ids['current']}", wait_until="domcontentloaded")
    row = page.locator('table.rates tr[data-role="learner"]')
    box = await row.locator('[data-f="completed"]').bounding_box()
    assert box is not None and box["x"] + box["width"] <= PHONE["width"]
    name = f"demo-phone-overview-{lang}.png"
    await page.screenshot(path=str(screenshots / name), full_page=True)
    await ctx.close()

    ctx, page = await login(browser, base, PHONE, email=ADMIN_EMAIL, lang=lang)
    for path in (
        "/dashboard/admin",
        "/dashboard/admin/clusters",
        f"/dashboard/schools/{DEMO_SLUG}",
    ):
        await page.goto(base + path, wait_until="domcontentloaded")
        width = await page.evaluate("document.documentElement.scrollWidth")
        if width > PHONE["width"]:
            wide["admin " + path] = (width, await too_wide(page))
    await ctx.close()
    assert wide == {}


async def test_phone_overview_has_no_serious_violations(browser, demo, screenshots):
    base, ids = demo
    ctx, page = await login(browser, base, PHONE)
    found: list[str] = []
    await page.goto(f"{base}/dashboard/cycles/{ids['current']}", wait_until="domcontentloaded")
    await check_a11y(page, "demo-phone-overview", screenshots, found)
    await ctx.close()
    assert_clean(found)


SVG_FONT = re.compile(r"font-size:\s*([\d.]+)px")


@pytest.mark.parametrize(
    ("lang", "viewport"),
    [("en", LAPTOP), ("hy", LAPTOP), ("en", PHONE), ("hy", PHONE)],
    ids=["en-1366", "hy-1366", "en-390", "hy-390"],
)
async def test_charts_are_readable_at_laptop_and_phone_width(
    browser, demo, screenshots, lang, viewport
):
    """Every chart on the overview (the profiles first) and on an indicator page is drawn
    with text of 11 px or more at the size the page shows it, the page stays as wide as
    the screen (a phone scrolls a chart in its own box), and the screenshots are kept."""
    base, ids = demo
    ctx, page = await login(browser, base, viewport, lang=lang)
    c = f"/dashboard/cycles/{ids['current']}"
    for path, least in ((c, 5), (c + "/indicators/VL-1", 1)):
        await page.goto(base + path, wait_until="domcontentloaded")
        await page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        imgs = page.locator(".chart-scroll img")
        assert await imgs.count() >= least, path
        if least > 1:
            assert "/charts/profile.svg" in (await imgs.first.get_attribute("src") or "")
        for i in range(await imgs.count()):
            img = imgs.nth(i)
            await img.scroll_into_view_if_needed()
            await page.wait_for_function(
                "i => i.complete && i.naturalWidth > 0",
                arg=await img.element_handle(),
                timeout=90000,  # each chart is drawn on request; the machine may be busy
            )
            src, width = await img.evaluate(
                "i => [i.getAttribute('src'), i.getBoundingClientRect().width]"
            )
            body = await (await page.request.get(base + src)).text()
            units = float(re.search(r'viewBox="0 0 ([\d.]+)', body).group(1))
            smallest = min(float(x) for x in SVG_FONT.findall(body)) * width / units
            assert smallest >= 11, (path, src, round(smallest, 1))
        scroll = await page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= viewport["width"], (path, scroll)
        name = "overview" if path == c else "indicator"
        await page.evaluate("window.scrollTo(0, 0)")
        await page.screenshot(
            path=str(screenshots / f"demo-charts-{name}-{lang}-{viewport['width']}.png"),
            full_page=True,
        )
    await ctx.close()


async def test_a_saved_draft_says_so_where_the_coordinator_looks(browser, demo, screenshots):
    """Changing one indicator and saving its theme as a draft: the message is at the top of
    that theme's form, in view, and names the one indicator drafted (issue 15.3)."""
    base, ids = demo
    for lang, viewport in (("en", LAPTOP), ("hy", PHONE)):
        ctx, page = await login(browser, base, viewport, lang=lang)
        url = f"{base}/dashboard/cycles/{ids['current']}/self-assessment"
        await page.goto(url, wait_until="domcontentloaded")
        form = page.locator('form[id="theme-1.2.3"]')
        name = "v:VL-14@1.2.3"
        now = await form.locator(f'input[name="{name}"]:checked').get_attribute("value")
        other = "1" if now != "1" else "2"
        await form.locator(f'input[name="{name}"][value="{other}"]').check()
        async with page.expect_navigation(wait_until="domcontentloaded"):
            await form.locator("button[value=draft]").click()
        message = page.locator('form[id="theme-1.2.3"] .flash-ok')
        await message.wait_for()
        assert "(VL-14 (1.2.3))" in await message.inner_text()  # which VL-14: the model has two
        assert await page.locator("main > .flash").count() == 0  # not at the top of the page
        await page.wait_for_timeout(300)  # the jump to the anchor
        box = await message.bounding_box()
        assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"]
        await page.screenshot(path=str(screenshots / f"demo-self-draft-{lang}.png"))
        await ctx.close()
