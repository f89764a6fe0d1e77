"""What respondents wrote, in a real Chromium: the comments page and an indicator page's
comments, at 1366 px and on a 390 px phone, in English and Armenian; searched with the form
(a GET that works without JavaScript); axe clean; no page wider than the screen.

Screenshots: tests/browser/screenshots/comments-<lang>-<width>.png and
indicator-comments-<lang>-<width>.png (gitignored) for a human look.
"""

from __future__ import annotations

import pytest

from backend.dashboard.passwords import hash_password
from backend.demo import COMMENTS
from backend.i18n import texts
from backend.web import keys
from conversations.model import load_model
from storage import schools
from tests.apptools import add_response
from tests.browser.a11y import assert_clean, check_a11y
from tests.browser.conftest import serve_app
from tests.browser.support import log_in

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

EMAIL = "coordinator@school.example"
PASSWORD = "a long enough password"
LONG = (
    "The guidance counsellor met me three times this year and helped me compare two "
    "apprenticeships, one in a big car plant and one in a small electrical firm near home; "
    "without her I would have signed the first offer without reading it."
)


async def seed(sm) -> int:
    async with sm.begin() as s:
        school = await schools.create_school(s, "ogre-tech", "Ogre Technical School")
        await schools.create_user(s, school.id, EMAIL, hash_password(PASSWORD))
        cycle = await schools.create_cycle(s, school.id, "2026/27", load_model().version)
        for text in [*COMMENTS, LONG]:
            await add_response(s, cycle.id, "learner", "learner@1", comment=("l22", text))
    return cycle.id


@pytest.mark.parametrize("lang", ["en", "hy"])
async def test_comments_page_reads_well_everywhere(browser, sqlite_settings, screenshots, lang):
    tx = texts(lang)
    found: list[str] = []
    async with serve_app(sqlite_settings) as (base, app):
        cycle_id = await seed(app[keys.SESSIONMAKER])
        c = f"{base}/dashboard/cycles/{cycle_id}"
        for width, height in ((1366, 768), (390, 844)):
            ctx = await browser.new_context(
                viewport={"width": width, "height": height},
                locale="hy-AM" if lang == "hy" else "en-GB",
                is_mobile=width < 500,
                has_touch=width < 500,
            )
            ctx.set_default_timeout(15000)
            page = await ctx.new_page()
            await log_in(page, base, EMAIL, PASSWORD)
            await page.goto(c)
            # From the cycle's navigation to the page.
            await page.locator(".subnav").get_by_role("link", name=tx.gettext("Comments")).click()
            await page.wait_for_url(f"{c}/comments")
            assert await page.get_attribute("html", "lang") == lang
            await page.get_by_role("heading", name=tx.gettext("What respondents wrote")).wait_for()
            assert await page.locator("ul.texts blockquote").count() == len(COMMENTS) + 1
            assert await page.locator(".evidenced .ind-id", has_text="ME-5").count() == 1
            assert await page.evaluate("document.documentElement.scrollWidth <= innerWidth + 1")
            await check_a11y(page, f"comments-{lang}-{width}", screenshots, found)
            await page.screenshot(path=str(screenshots / f"comments-{lang}-{width}.png"))

            # Search with the form: the server filters, the words are marked.
            await page.get_by_label(tx.gettext("Search the comments")).fill("apprenticeships")
            await page.get_by_role("button", name=tx.gettext("Search"), exact=True).click()
            await page.wait_for_url("**/comments?q=apprenticeships*")
            assert await page.locator("ul.texts blockquote").count() == 2
            assert await page.locator("ul.texts mark").count() == 2
            assert await page.evaluate("document.documentElement.scrollWidth <= innerWidth + 1")
            await check_a11y(page, f"comments-search-{lang}-{width}", screenshots, found)
            await page.screenshot(
                path=str(screenshots / f"comments-search-{lang}-{width}.png"), full_page=True
            )

            # The indicator the question evidences carries the comments too.
            await page.locator(".evidenced a").first.click()
            await page.wait_for_url(f"{c}/indicators/ME-5")
            await page.locator("#comments").scroll_into_view_if_needed()
            assert await page.locator("#comments blockquote").count() == len(COMMENTS) + 1
            assert await page.evaluate("document.documentElement.scrollWidth <= innerWidth + 1")
            await check_a11y(page, f"indicator-comments-{lang}-{width}", screenshots, found)
            await page.locator("#comments").screenshot(
                path=str(screenshots / f"indicator-comments-{lang}-{width}.png")
            )
            await ctx.close()
    assert_clean(found)
