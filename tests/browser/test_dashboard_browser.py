"""The coordinator dashboard in a real Chromium at laptop size (1366x768).

Log in, create and open a cycle, make invites, rate part of the self-assessment, then
watch the overview fill as answers arrive. Screenshots land in tests/browser/screenshots/
(gitignored) for a human look.
"""

from __future__ import annotations

from typing import Any

import pytest

from backend.dashboard.passwords import hash_password
from backend.web import keys
from conversations.banks import load_banks
from conversations.model import load_model
from storage import responses, schools
from tests.apptools import add_responses
from tests.browser.conftest import serve_app
from tests.browser.support import Watch, fill_inputs

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

LAPTOP = {"width": 1366, "height": 768}
EMAIL = "coordinator@school.example"
PASSWORD = "a long enough password"


async def wait_images(page: Any, selector: str) -> None:
    """Every image under `selector` loaded (not broken)."""
    await page.locator(selector).first.scroll_into_view_if_needed()
    await page.wait_for_function(
        """sel => [...document.querySelectorAll(sel)].every(i => i.complete)""",
        arg=selector,
        timeout=30000,
    )
    ok = await page.eval_on_selector_all(selector, "imgs => imgs.map(i => i.naturalWidth > 0)")
    assert ok and all(ok), (selector, ok)


async def test_coordinator_runs_a_cycle(browser, sqlite_settings, screenshots):
    model = load_model()
    bank = load_banks()["learner"]
    async with serve_app(sqlite_settings) as (base, app):
        sm = app[keys.SESSIONMAKER]
        async with sm.begin() as s:
            school = await schools.create_school(s, "ogre-tech", "Ogre Technical School")
            await schools.create_user(s, school.id, EMAIL, hash_password(PASSWORD))
            await responses.sync_question_map(s, load_banks().values())
            qmap = await responses.question_map(s, bank.tag)
        # Learner questions on the first theme that learners speak to.
        index = model.index()
        by_theme: dict[str, dict[str, list[str]]] = {}
        for qid, inds in qmap.items():
            for key in inds:
                if key in index:
                    by_theme.setdefault(index[key].theme_id, {})[qid] = inds
        theme_id = min(by_theme, key=lambda t: [int(x) for x in t.split(".")])
        questions = by_theme[theme_id]

        ctx = await browser.new_context(viewport=LAPTOP, locale="en-GB")
        ctx.set_default_timeout(10000)
        page = await ctx.new_page()
        watch = Watch(page, base)

        # Log in.
        await page.goto(base + "/dashboard")
        assert "/login" in page.url
        await page.screenshot(path=str(screenshots / "dashboard-01-login.png"))
        await page.fill("input[name=email]", EMAIL)
        await page.fill("input[name=password]", PASSWORD)
        await page.click("main button[type=submit]")
        # The home: no cycle yet, so its one call to action starts one.
        await page.wait_for_url("**/dashboard/home")
        await page.click(".next-step a.button")
        await page.wait_for_url("**/dashboard/schools/ogre-tech")

        # Create a cycle with a target, then open it.
        await fill_inputs(
            page,
            name="2026/27",
            opens_at="2026-09-01",
            closes_at="2027-06-30",
            target_learner="10",
            target_parent="20",
        )
        await page.screenshot(path=str(screenshots / "dashboard-02-school.png"), full_page=True)
        await page.click("text=Create cycle")
        await page.wait_for_selector("text=created as a draft")
        await page.click("text=Open the cycle")
        await page.wait_for_selector(".subnav .badge-open")
        cycle_id = int(page.url.rstrip("/").rsplit("/", 1)[1])

        # Invites: five single-use learner codes and one shared code for parents.
        await page.click(".subnav >> text=Invites")
        await page.select_option("select[name=role]", "learner")
        await fill_inputs(page, count="5")
        await page.click("text=Create invites")
        await page.wait_for_selector("text=5 invites for Learners created")
        await page.select_option("select[name=role]", "parent")
        await fill_inputs(page, count="1")
        await page.select_option("select[name=kind]", "shared")
        await fill_inputs(page, max_uses="60", label="Parents' evening")
        await page.click("text=Create invites")
        await page.wait_for_selector("text=1 invite for Parents/guardians created")
        assert await page.locator("table.invites tbody tr").count() == 6
        # Every QR thumbnail loads (lazily: as the table scrolls into view).
        for img in await page.locator("img.qr-thumb").all():
            await img.scroll_into_view_if_needed()
        await page.wait_for_function(
            "() => [...document.querySelectorAll('img.qr-thumb')]"
            ".every(i => i.complete && i.naturalWidth > 0)",
            timeout=15000,
        )
        await page.evaluate("window.scrollTo(0, 0)")
        await page.screenshot(path=str(screenshots / "dashboard-03-invites.png"), full_page=True)
        sheet = await ctx.new_page()
        await sheet.goto(f"{base}/dashboard/cycles/{cycle_id}/invites/print")
        assert await sheet.locator("article.card").count() == 6
        await sheet.screenshot(path=str(screenshots / "dashboard-04-print.png"), full_page=True)
        await sheet.close()

        # Self-assessment: rate the chosen theme (4 on every scale indicator) as a draft.
        await page.click(".subnav >> text=Self-assessment")
        form = page.locator(f'form[id="theme-{theme_id}"]')
        for ind in [p.indicator for p in model.placed() if p.theme_id == theme_id]:
            if ind.number:
                await form.locator(f'input[name="n:{ind.key}"]').fill("3")
            else:
                await form.locator(f'input[name="v:{ind.key}"][value="4"]').check()
        await form.locator("button[value=draft]").click()
        await page.wait_for_selector(f"text=Theme {theme_id}:")
        await page.wait_for_selector(".dim-card >> text=submitted")
        await page.screenshot(path=str(screenshots / "dashboard-05-self.png"))

        # The overview: no answers yet.
        await page.click(".subnav >> text=Overview")
        await page.wait_for_selector("text=No answers yet")
        row = page.locator('tr[data-role="learner"]')
        assert (await row.locator('[data-f="completed"]').inner_text()) == "0"

        # Answers arrive: the rates update by themselves, then the results on refresh.
        await add_responses(sm, cycle_id, "learner", bank.tag, 7, {qid: 1 for qid in questions})
        await page.wait_for_function(
            """() => document.querySelector('tr[data-role="learner"] [data-f="completed"]')
                       .textContent === '7'""",
            timeout=15000,
        )
        assert (await row.locator('[data-f="percent"]').inner_text()) == "70%"
        await page.wait_for_selector("#new-answers:not([hidden])")
        await page.click("#new-answers a")
        await page.wait_for_selector("table.heat td.cell")
        assert await page.locator("table.heat td.cell.blind_spot").count() >= 1
        assert await page.locator("h2", has_text="Biggest gaps").count() == 1
        assert await page.locator("text=blind spot").count() >= 1
        await wait_images(page, ".charts img")
        await page.screenshot(path=str(screenshots / "dashboard-06-overview.png"))
        await page.screenshot(
            path=str(screenshots / "dashboard-07-overview-full.png"), full_page=True
        )

        # Drill down into the first flagged indicator.
        await page.locator("table.heat td.cell.blind_spot").first.locator("xpath=../th/a").click()
        await page.wait_for_selector("text=What each group says")
        assert await page.locator(".stack-bar").count() == 1
        await page.click("text=As a chart")
        await wait_images(page, "figure.chart img")
        await page.screenshot(path=str(screenshots / "dashboard-08-indicator.png"), full_page=True)

        watch.check()
        await ctx.close()
