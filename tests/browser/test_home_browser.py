"""The school's home as the demo's coordinator meets it after logging in, at 1366 px and on a
390 px phone, in English and Armenian; the cycle's close confirmation; one top bar everywhere.

Screenshots land in tests/browser/screenshots/home-*.png (gitignored) for a human look.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from backend.demo import DEMO_SLUG
from backend.web import keys
from storage import responses, schools
from tests.browser.a11y import assert_clean, check_a11y
from tests.browser.conftest import PHONE, serve_demo
from tests.browser.support import demo_coordinator, too_wide

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

LAPTOP = {"width": 1366, "height": 768}
APP: dict[str, Any] = {}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def demo(tmp_path_factory) -> AsyncIterator[tuple[str, int]]:
    """The demo school served on a port: (base URL, the open cycle's id); the app in APP."""
    async with serve_demo(tmp_path_factory.mktemp("home")) as (base, app, school):
        async with app[keys.SESSIONMAKER]() as s:
            cycle = await schools.current_cycle(s, school.id)
        assert cycle is not None
        APP["app"] = app
        yield base, cycle.id


@pytest.mark.parametrize("lang", ["en", "hy"])
@pytest.mark.parametrize("size", ["laptop", "phone"])
async def test_after_login_the_home_says_where_the_cycle_stands(
    browser, demo, screenshots, lang, size
):
    base, cycle_id = demo
    viewport = LAPTOP if size == "laptop" else PHONE
    ctx, page = await demo_coordinator(browser, base, viewport, lang)
    found: list[str] = []
    # One clear call to action: the demo's unions, providers and local government are below
    # the threshold, so the next step is to get answers from them.
    step = page.locator(".next-step a.button.primary")
    assert await step.count() == 1
    assert (await step.get_attribute("href")) == f"/dashboard/cycles/{cycle_id}/invites"
    # Rates against targets, per group; the groups whose results are hidden are named.
    assert await page.locator(".group-rate").count() >= 10
    assert await page.locator(".group-rate.state-hidden").count() >= 2
    assert await page.locator(".checklist li.todo").count() >= 2  # groups, evidence
    await page.screenshot(path=str(screenshots / f"home-{size}-{lang}.png"), full_page=True)
    for part in ("home-rates", "home-missing"):  # closer looks, for a phone's long page
        await page.locator(f"#{part}").screenshot(
            path=str(screenshots / f"{part}-{size}-{lang}.png")
        )
    assert await too_wide(page) == []
    await check_a11y(page, f"home-{size}-{lang}", screenshots, found)
    # The cycle's close confirmation (from the overview's button).
    await page.goto(f"{base}/dashboard/cycles/{cycle_id}")
    await page.click(".page-head a.button.danger")
    await page.wait_for_url(f"**/dashboard/cycles/{cycle_id}/close")
    await page.screenshot(path=str(screenshots / f"home-close-{size}-{lang}.png"), full_page=True)
    assert await too_wide(page) == []
    await check_a11y(page, f"home-close-{size}-{lang}", screenshots, found)
    await ctx.close()
    assert_clean(found)


async def test_the_top_bar_is_the_same_on_every_page(browser, demo):
    base, cycle_id = demo
    ctx, page = await demo_coordinator(browser, base, LAPTOP, "en")
    c = f"/dashboard/cycles/{cycle_id}"
    bars = {}
    for path in (
        "/dashboard/home",
        f"/dashboard/schools/{DEMO_SLUG}",
        c,
        c + "/invites",
        c + "/indicators/FL-1",
        "/dashboard/account",
        "/dashboard/clusters",
        "/dashboard/cycles/999999",  # the not-found page too
    ):
        await page.goto(base + path)
        bars[path] = await page.eval_on_selector_all(
            ".topbar nav a", "as => as.map(a => [a.textContent.trim(), a.getAttribute('href')])"
        )
    first = bars["/dashboard/home"]
    assert [text for text, _ in first] == ["Home", "Cycles", "Certification", "Clusters"]
    assert all(bar == first for bar in bars.values()), bars
    await ctx.close()


async def test_back_and_send_again_makes_no_second_batch(browser, demo):
    """Create invites, go Back, press "Create invites" again: the form's one-time token comes
    back with the page (forms.js), so the server does it once and says so."""
    base, cycle_id = demo
    ctx, page = await demo_coordinator(browser, base, LAPTOP, "en")
    await page.goto(f"{base}/dashboard/cycles/{cycle_id}/invites")
    await page.select_option("select[name=role]", "graduate")
    await page.fill("input[name=count]", "2")
    await page.fill("input[name=label]", "Back and again")
    sel = "form[action$='/invites'] input[name=submission]"
    token = await page.get_attribute(sel, "value")
    await page.click("text=Create invites")
    await page.get_by_text("2 invites for").wait_for()
    await page.go_back()
    await page.wait_for_load_state()
    assert await page.input_value("input[name=label]") == "Back and again"  # as it was
    assert await page.input_value(sel) == token, (token, await page.input_value(sel))
    await page.click("text=Create invites")
    await page.get_by_text("This form had been sent already").wait_for()
    async with APP["app"][keys.SESSIONMAKER]() as s:
        made = [i for i in await responses.list_invites(s, cycle_id) if i.label == "Back and again"]
    assert len(made) == 2
    await ctx.close()
