"""What the school is told about its rounds, as the demo's coordinator sees it on a laptop and
a 390 px phone, in English and Armenian: the deadlines counted down (one overdue) and the
board's recent decision, on the home and the certification page; no page wider than the
screen, nothing serious for axe.

Screenshots land in tests/browser/screenshots/notices-*.png (gitignored).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import date, timedelta

import pytest
import pytest_asyncio

from backend.demo import DEMO_SLUG
from backend.web import keys
from storage import certification as store
from tests.browser.a11y import assert_clean, check_a11y
from tests.browser.conftest import PHONE, serve_demo
from tests.browser.support import demo_coordinator, too_wide

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

LAPTOP = {"width": 1366, "height": 768}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def demo(tmp_path_factory) -> AsyncIterator[str]:
    """The demo, its school listed in two accreditation rounds it has not submitted to (due
    in 5 days, and overdue since 2 days), and the board's decision in the demo's round."""
    async with serve_demo(tmp_path_factory.mktemp("notices")) as (base, app, school):
        today = date.today()
        async with app[keys.SESSIONMAKER].begin() as s:
            (agency, *_) = await store.list_agencies(s)
            for name, days in (("Accreditation of the Ararat region", 5), ("Missed round", -2)):
                await store.create_round(
                    s,
                    agency.id,
                    name,
                    "accreditation",
                    today + timedelta(days),
                    False,
                    [school.id],
                )
            demo_round = next(
                r for r in await store.list_rounds(s, agency.id) if r.kind == "certification"
            )
            await store.add_decision(
                s,
                demo_round.id,
                school.id,
                "conditions",
                "Document the workshops",
                today,
                today + timedelta(days=3 * 365),
                secrets.token_urlsafe(24),
                None,
            )
        yield base


@pytest.mark.parametrize(("size", "lang"), [("laptop", "en"), ("phone", "hy")])
async def test_the_school_sees_its_deadlines_and_the_decision(
    browser, demo, screenshots, size, lang
):
    base = demo
    ctx, page = await demo_coordinator(browser, base, LAPTOP if size == "laptop" else PHONE, lang)
    found: list[str] = []
    for name, path in (
        ("home", "/dashboard/home"),
        ("certification", f"/dashboard/schools/{DEMO_SLUG}/certification"),
    ):
        await page.goto(base + path)
        notices = page.locator(".deadline-notice")
        assert await notices.count() == 2, name
        text = " ".join(await notices.all_inner_texts())
        assert "Accreditation of the Ararat region" in text and "Missed round" in text
        if lang == "en":
            assert "5 days left" in text and "overdue by 2 days" in text
        else:
            assert "մնացել է 5 օր" in text and "ուշանում է 2 օրով" in text
        assert await page.locator(".deadline-notice.flash-error").count() == 1  # the overdue
        if name == "home":
            assert await page.locator(".decision-notice").count() == 1
        await page.screenshot(
            path=str(screenshots / f"notices-{name}-{size}-{lang}.png"), full_page=True
        )
        assert await too_wide(page) == [], name
        await check_a11y(page, f"notices-{name}-{size}-{lang}", screenshots, found)
    await ctx.close()
    assert_clean(found)
