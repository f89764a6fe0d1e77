"""Accessibility: axe-core (axe-playwright-python) on every page state a person meets.

The web chat at phone size (390x844), the dashboard at laptop size (1366x768). Any
violation of impact "serious" or "critical" fails; a "minor"/"moderate" one fails too unless
it is listed in ALLOWED (tests/browser/a11y.py) with a reason. Then keyboard-only use: a few
web-chat answers and a dashboard form with Tab/Shift+Tab/Enter/Space alone.

Screenshots land in tests/browser/screenshots/a11y-*.png (gitignored) for a human look.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from backend.dashboard.passwords import hash_password
from backend.web import keys
from backend.web.app import create_app
from backend.web.settings import Settings
from conversations.banks import load_banks
from conversations.i18n import Translator
from conversations.model import load_model
from storage import responses, schools
from storage.models import Answer
from tests.apptools import add_responses, seed_school, with_number_bank
from tests.browser.a11y import assert_clean, check_a11y
from tests.browser.conftest import phone_at, phone_page, serve, serve_app, serve_mini_app
from tests.browser.support import log_in, mini_app_fragment, to_the_comment

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

LAPTOP = {"width": 1366, "height": 768}
EMAIL = "coordinator@school.example"
ADMIN = "admin@school.example"
PASSWORD = "a long enough password"


async def title_unique(page: Any, titles: dict[str, str], state: str, found: list[str]) -> None:
    """Each state a person meets has its own page title (WCAG 2.4.2)."""
    title = await page.title()
    if not title or title in titles:
        found.append(f"[{state}] page title {title!r} is empty or also that of {titles.get(title)}")
    titles[title] = state


async def audit(
    page: Any, shot: str, state: str, screenshots: Any, titles: dict[str, str], found: list[str]
) -> None:
    """One state a person meets: no serious axe violations (`shot` names its screenshot), and
    a page title of its own."""
    await check_a11y(page, shot, screenshots, found)
    await title_unique(page, titles, state, found)


# -- the web chat -----------------------------------------------------------------------


@asynccontextmanager
async def serve_number_app(settings: Settings) -> AsyncIterator[tuple[str, web.Application]]:
    """The app whose employer bank asks a number question first (no shipped bank does)."""
    async with serve(with_number_bank(create_app(settings))) as served:
        yield served


async def test_web_chat_has_no_serious_violations(browser, sqlite_settings, screenshots):
    found: list[str] = []
    titles: dict[str, str] = {}
    async with serve_app(sqlite_settings) as (base, app):
        seeded = await seed_school(
            app[keys.SESSIONMAKER], roles=["learner"], languages=["en", "hy", "uk"]
        )
        ctx, page = await phone_page(browser, js=True)
        await page.goto(f"{base}/s/{seeded.invites['learner']}")
        await check_a11y(page, "chat-language-first", screenshots, found)
        await page.get_by_role("button", name="English").click()
        await page.get_by_role("button", name="Yes, I agree").wait_for()
        await audit(page, "chat-consent", "consent", screenshots, titles, found)
        await page.get_by_role("button", name="Yes, I agree").click()
        await page.locator("#progress-label", has_text="Question 1 of").wait_for()
        await audit(page, "chat-scale-question", "question 1", screenshots, titles, found)
        # The choices are a labelled group of toggle buttons.
        group = page.get_by_role("group", name=await page.locator("h1").inner_text())
        assert await group.get_by_role("button").count() >= 5
        # The language picker from the footer, then Ukrainian: lang follows.
        await page.get_by_role("button", name="Language").click()
        await page.get_by_role("button", name="Українська").wait_for()
        await check_a11y(page, "chat-language-footer", screenshots, found)
        await page.get_by_role("button", name="Українська").click()
        await page.locator("#progress-label", has_text="1").wait_for()
        assert await page.evaluate("document.documentElement.lang") == "uk"
        # The page's words outside the card follow the card's language, without a reload.
        uk = Translator("uk")
        assert await page.locator(".skip-link").text_content() == uk("web.skip_to_card")
        assert await page.locator(".not-me").text_content() == uk("web.forget.link")
        assert await page.get_attribute("body", "data-leave") == uk("web.leave")
        assert await page.get_attribute("body", "data-network-error") == uk("web.network_error")
        await check_a11y(page, "chat-question-uk", screenshots, found)
        await page.locator("footer button[value=language]").click()
        await page.get_by_role("button", name="English").click()
        await page.locator("#progress-label", has_text="Question 1 of").wait_for()
        assert await page.evaluate("document.documentElement.lang") == "en"
        # Answer through to the comment (a text question).
        await to_the_comment(page)
        await page.locator("#card textarea").fill("More company visits")
        await check_a11y(page, "chat-text-question", screenshots, found)
        await page.get_by_role("button", name="Send").click()
        await page.get_by_text("Thank you! Your answers are saved.").wait_for()
        await audit(page, "chat-done", "done", screenshots, titles, found)
        await page.get_by_role("button", name="Erase my answers").click()
        await page.get_by_text("Erase all your answers?").wait_for()
        await audit(page, "chat-erase-confirm", "erase confirmation", screenshots, titles, found)
        await page.goto(f"{base}/privacy")
        await audit(page, "chat-privacy", "privacy", screenshots, titles, found)
        await page.goto(f"{base}/s/no-such-code-at-all")
        await check_a11y(page, "chat-bad-code", screenshots, found)
        await ctx.close()
    assert_clean(found)


async def test_web_chat_number_question_and_notice(browser, sqlite_settings, screenshots):
    found: list[str] = []
    server = serve_number_app(sqlite_settings)
    async with phone_at(server, browser, "employer") as (base, _, seeded, page):
        await page.goto(f"{base}/s/{seeded.invites['employer']}")
        await page.get_by_role("button", name="Yes, I agree").click()
        await page.get_by_label("Type a number").wait_for()
        await check_a11y(page, "chat-number-question", screenshots, found)
        await page.get_by_label("Type a number").fill("lots")
        await page.get_by_role("button", name="Send").click()
        notice = page.locator(".notice")
        await notice.wait_for()
        # The notice is announced, and the field points at it.
        assert await page.locator("[role=alert] .notice, .notice[role=alert]").count() == 1
        described = await page.get_by_label("Type a number").get_attribute("aria-describedby")
        assert described and "card-notice" in described.split()
        assert await page.get_by_label("Type a number").get_attribute("aria-invalid") == "true"
        await check_a11y(page, "chat-number-notice", screenshots, found)
    assert_clean(found)


async def test_mini_app_has_no_serious_violations(browser, sqlite_settings, screenshots):
    found: list[str] = []
    server = serve_mini_app(sqlite_settings)
    async with phone_at(server, browser, "graduate") as (base, _, seeded, page):
        ctx = page.context
        await page.goto(f"{base}/app")
        await page.get_by_text("It works only when opened from the survey bot").wait_for()
        await check_a11y(page, "app-outside-telegram", screenshots, found)
        fragment = mini_app_fragment(seeded.invites["graduate"])
        page = await ctx.new_page()
        await page.goto(f"{base}/app#{fragment}")
        await page.get_by_role("button", name="Yes, I agree").wait_for()
        await check_a11y(page, "app-consent", screenshots, found)
        await page.get_by_role("button", name="Yes, I agree").click()
        await page.locator("#progress-label").wait_for()
        await check_a11y(page, "app-question", screenshots, found)
    assert_clean(found)


async def test_web_chat_by_keyboard_only(browser, sqlite_settings, screenshots):
    """Consent and three answers with Tab/Shift+Tab/Enter/Space; focus lands on each new card."""
    server = serve_app(sqlite_settings)
    async with phone_at(server, browser, "learner") as (base, app, seeded, page):
        await page.goto(f"{base}/s/{seeded.invites['learner']}")
        # The first Tab reaches the skip link; Enter on it moves on to the card.
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.className") == "skip-link"
        await page.keyboard.press("Enter")
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.textContent") == "Yes, I agree"
        await page.keyboard.press("Enter")
        await page.locator("#progress-label", has_text="Question 1 of").wait_for()

        async def focused() -> dict[str, str]:
            return await page.evaluate(
                """() => ({id: document.activeElement.id,
                           tag: document.activeElement.tagName,
                           text: document.activeElement.textContent.trim()})"""
            )

        async def focus_visible() -> bool:
            return await page.evaluate(
                "() => getComputedStyle(document.activeElement).outlineStyle !== 'none'"
            )

        # Focus is on the new card's heading, the question itself.
        assert (await focused())["tag"] == "H1"
        # Question 1: Tab to the third choice, back with Shift+Tab to the second, Space.
        for _ in range(3):
            await page.keyboard.press("Tab")
        third = (await focused())["text"]
        assert await focus_visible()
        await page.keyboard.press("Shift+Tab")
        second = (await focused())["text"]
        assert second != third
        await page.keyboard.press("Space")
        await page.locator("#progress-label", has_text="Question 2 of").wait_for()
        assert (await focused())["tag"] == "H1"
        # Questions 2 and 3: the first choice, with Enter.
        for n in (2, 3):
            await page.keyboard.press("Tab")
            await page.keyboard.press("Enter")
            await page.locator("#progress-label", has_text=f"Question {n + 1} of").wait_for()
            assert (await focused())["tag"] == "H1"
        await page.screenshot(path=str(screenshots / "a11y-keyboard-chat.png"))
        async with app[keys.SESSIONMAKER]() as s:
            answers = (await s.execute(select(Answer))).scalars().all()
        assert len(answers) == 3


# -- the dashboard -------------------------------------------------------------------------


async def _dashboard_data(sm) -> tuple[int, str]:
    """A school with a coordinator and an admin, an open cycle with invites, self ratings and
    answers that make blind spots, hidden strengths and a suppressed group. -> (cycle, key)"""
    model = load_model()
    banks = load_banks()
    async with sm.begin() as s:
        school = await schools.create_school(s, "ogre-tech", "Ogre Technical School")
        await schools.create_user(s, school.id, EMAIL, hash_password(PASSWORD))
        await schools.create_user(s, None, ADMIN, hash_password(PASSWORD), role="admin")
        await responses.sync_question_map(s, banks.values())
        qmap = await responses.question_map(s, banks["learner"].tag)
        cycle = await schools.create_cycle(
            s, school.id, "2026/27", model.version, targets={"learner": 10, "parent": 20}
        )
        await responses.create_invites(s, cycle.id, "learner", count=3)
        await responses.create_invites(s, cycle.id, "parent", count=1, max_uses=60, label="Evening")
        index = model.index()
        keys_ = sorted({k for inds in qmap.values() for k in inds if k in index})
        low = set(keys_[::2])  # self 4, learners 1: blind spots; the rest the other way round
        for k in keys_:
            if index[k].indicator.number:
                await schools.upsert_self_rating(s, cycle.id, k, number=3, status="submitted")
            else:
                value = 4 if k in low else 0
                await schools.upsert_self_rating(s, cycle.id, k, value=value, status="submitted")
    learner = {q: (1 if any(k in low for k in inds) else 4) for q, inds in qmap.items()}
    await add_responses(sm, cycle.id, "learner", banks["learner"].tag, 7, learner)
    await add_responses(sm, cycle.id, "learner", banks["learner"].tag, 1, {})  # started only
    pq = await _parent_questions(sm, banks)
    await add_responses(sm, cycle.id, "parent", banks["parent"].tag, 2, pq)  # below the threshold
    flagged = sorted(low)[0]
    return cycle.id, flagged


async def _parent_questions(sm, banks) -> dict[str, int]:
    async with sm() as s:
        qmap = await responses.question_map(s, banks["parent"].tag)
    return {q: 3 for q in qmap}


async def _laptop(browser) -> Any:
    ctx = await browser.new_context(viewport=LAPTOP, locale="en-GB")
    ctx.set_default_timeout(15000)
    return ctx


async def test_dashboard_has_no_serious_violations(browser, sqlite_settings, screenshots):
    found: list[str] = []
    titles: dict[str, str] = {}
    async with serve_app(sqlite_settings) as (base, app):
        cycle_id, flagged = await _dashboard_data(app[keys.SESSIONMAKER])
        c = f"{base}/dashboard/cycles/{cycle_id}"
        ctx = await _laptop(browser)
        page = await ctx.new_page()
        await page.goto(base + "/login")
        await audit(page, "dash-login", "login", screenshots, titles, found)
        await page.fill("input[name=email]", EMAIL)
        await page.fill("input[name=password]", "wrong password, sorry")
        await page.click("main button[type=submit]")
        await page.locator(".flash-error").wait_for()
        await check_a11y(page, "dash-login-error", screenshots, found)
        await log_in(page, base, EMAIL, PASSWORD)
        await page.goto(f"{base}/dashboard/schools/ogre-tech")
        await audit(page, "dash-school", "school", screenshots, titles, found)
        await page.goto(f"{c}/invites")
        await audit(page, "dash-invites", "invites", screenshots, titles, found)
        await page.goto(f"{c}/invites/print")
        await audit(page, "dash-print", "print", screenshots, titles, found)
        await page.goto(f"{c}/self-assessment")
        await audit(page, "dash-self", "self-assessment", screenshots, titles, found)
        await page.goto(c)
        await page.wait_for_selector("table.heat td.cell.blind_spot")
        await page.wait_for_function(
            "() => [...document.querySelectorAll('.charts img')].every(i => i.complete)",
            timeout=60000,
        )
        await audit(page, "dash-overview", "overview", screenshots, titles, found)
        await page.goto(f"{c}/indicators/{flagged}")
        await page.click("text=As a chart")
        await audit(page, "dash-indicator", "indicator", screenshots, titles, found)
        await page.goto(f"{base}/dashboard/account")
        await check_a11y(page, "dash-account", screenshots, found)
        await page.get_by_role("link", name="Change your password").click()
        await check_a11y(page, "dash-password", screenshots, found)
        await page.get_by_label("Current password").fill("not the password")
        await page.get_by_label("New password", exact=True).fill("staple lantern orbit")
        await page.get_by_label("New password again").fill("staple lantern orbit")
        await page.get_by_role("button", name="Change the password").click()
        await page.get_by_text("The current password is not right.").wait_for()
        await check_a11y(page, "dash-password-error", screenshots, found)
        await page.goto(f"{base}/dashboard/cycles/999999")
        await check_a11y(page, "dash-not-found", screenshots, found)
        # The pages other helpers add, where they exist (a link from the overview's nav).
        await page.goto(c)
        extra = await page.eval_on_selector_all(
            ".subnav a, .topbar nav a",
            "as => as.map(a => a.href)",
        )
        known = {c, f"{c}/invites", f"{c}/self-assessment", f"{base}/dashboard/schools/ogre-tech"}
        known.add(f"{base}/dashboard/cycles")  # the top bar's "Cycles": the school page
        for n, href in enumerate(h for h in dict.fromkeys(extra) if h not in known):
            await page.goto(href)
            await audit(page, f"dash-extra-{n}", href, screenshots, titles, found)
        await ctx.close()
        # The administrator's page.
        ctx = await _laptop(browser)
        page = await ctx.new_page()
        await log_in(page, base, ADMIN, PASSWORD)
        await page.goto(f"{base}/dashboard/admin")
        await audit(page, "dash-admin", "admin", screenshots, titles, found)
        # A cluster of three schools: the admin's list, the clusters and the cluster view.
        cluster_id = await _cluster_of_three(app[keys.SESSIONMAKER])
        for path, name in (
            ("/dashboard/admin/clusters", "dash-admin-clusters"),
            ("/dashboard/clusters", "dash-clusters"),
            (f"/dashboard/clusters/{cluster_id}", "dash-cluster"),
            (f"/dashboard/clusters/{cluster_id}?series=learner", "dash-cluster-learner"),
        ):
            await page.goto(base + path)
            await check_a11y(page, name, screenshots, found)
            if "?" not in path and titles.get(await page.title()) != base + path:
                await title_unique(page, titles, path, found)  # (not one seen from the nav)
        await ctx.close()
    assert_clean(found)


async def _cluster_of_three(sm) -> int:
    """Ogre Technical School and two more schools (with a cycle each) in one cluster."""
    from storage.clusters import add_cluster_member, create_cluster

    async with sm.begin() as s:
        cluster = await create_cluster(s, "Riga and Ogre VET cluster")
        ogre = await schools.get_school_by_slug(s, "ogre-tech")
        await add_cluster_member(s, cluster.id, ogre.id)
        for slug, name in (("riga-1", "Riga State Technical School"), ("riga-2", "Riga Art")):
            other = await schools.create_school(s, slug, name)
            await schools.create_cycle(s, other.id, "2026/27", load_model().version)
            await add_cluster_member(s, cluster.id, other.id)
        return cluster.id


async def test_dashboard_charts_have_alt_text_and_tables(browser, sqlite_settings, screenshots):
    async with serve_app(sqlite_settings) as (base, app):
        cycle_id, flagged = await _dashboard_data(app[keys.SESSIONMAKER])
        ctx = await _laptop(browser)
        page = await ctx.new_page()
        await log_in(page, base, EMAIL, PASSWORD)
        c = f"{base}/dashboard/cycles/{cycle_id}"
        for url in (c, f"{c}/indicators/{flagged}"):
            await page.goto(url)
            if "/indicators/" in url:
                await page.click("text=As a chart")
            figures = page.locator("figure:has(img)")
            assert await figures.count() >= 1, url
            for i in range(await figures.count()):
                fig = figures.nth(i)
                alt = await fig.locator("img").get_attribute("alt")
                assert alt and len(alt) > 30, (url, alt)  # a description, not just a title
                table = fig.locator("details table")
                assert await table.count() == 1, (url, alt)
                summary = fig.locator("details summary")
                assert "table" in (await summary.inner_text()).lower()
                await summary.click()
                assert await table.locator("tbody tr").count() >= 1
                if i == 0:
                    name = "a11y-chart-table-" + ("indicator" if "/indicators/" in url else "gaps")
                    await fig.screenshot(path=str(screenshots / f"{name}.png"))
        # Blind spot and hidden strength are told apart by text, not by colour alone.
        await page.goto(c)
        heat = page.locator(".heat-wrap").locator("xpath=..")
        await heat.screenshot(path=str(screenshots / "a11y-heatmap.png"))
        cell = page.locator("table.heat td.cell.blind_spot").first
        assert "blind spot" in ((await cell.inner_text()) + (await cell.get_attribute("title")))
        assert await cell.locator(".flag-mark").count() == 1
        await ctx.close()


async def test_dashboard_form_by_keyboard_only(browser, sqlite_settings, screenshots):
    """Log in and make invites with Tab/Shift+Tab/Enter/Space alone."""
    async with serve_app(sqlite_settings) as (base, app):
        cycle_id, _ = await _dashboard_data(app[keys.SESSIONMAKER])
        ctx = await _laptop(browser)
        page = await ctx.new_page()
        await page.goto(base + "/login")

        async def name_of_focus() -> str:
            return await page.evaluate(
                "() => document.activeElement.name || document.activeElement.textContent.trim()"
            )

        async def tab_to(name: str, most: int) -> None:
            """Tab on (at most `most` times) until the field or button `name` has focus."""
            for _ in range(most):
                await page.keyboard.press("Tab")
                if await name_of_focus() == name:
                    break
            assert await name_of_focus() == name

        # The e-mail field has focus on arrival.
        assert await name_of_focus() == "email"
        await page.keyboard.type(EMAIL)
        await page.keyboard.press("Tab")
        assert await name_of_focus() == "password"
        await page.keyboard.type(PASSWORD)
        await page.keyboard.press("Enter")
        await page.wait_for_url("**/dashboard/home")  # the school's home (issue 15.8)
        await page.goto(f"{base}/dashboard/cycles/{cycle_id}/invites")
        # From the top: the skip link first, then into the form.
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.className") == "skip-link"
        await page.keyboard.press("Enter")
        await tab_to("role", 40)
        await page.keyboard.press("Tab")
        assert await name_of_focus() == "count"
        await page.keyboard.press("Shift+Tab")
        assert await name_of_focus() == "role"
        await page.keyboard.type("Parents")  # a closed <select> picks by typing
        await page.keyboard.press("Tab")
        await page.keyboard.press("Control+a")
        await page.keyboard.type("2")
        await tab_to("Create invites", 10)
        await page.keyboard.press("Space")
        await page.wait_for_selector("text=2 invites for Parents/guardians created")
        await page.screenshot(path=str(screenshots / "a11y-keyboard-dashboard.png"))
        await ctx.close()


async def test_dashboard_in_armenian_and_ukrainian(browser, sqlite_settings, screenshots):
    """A coordinator switches the dashboard's language by keyboard (no mouse, no JS needed);
    the pages read in Armenian / Ukrainian, declare their language, keep axe clean and fit a
    phone's width with the longer words."""
    from backend.i18n import texts
    from conversations.i18n import localized_model

    found: list[str] = []
    async with serve_app(sqlite_settings) as (base, app):
        cycle_id, flagged = await _dashboard_data(app[keys.SESSIONMAKER])
        c = f"{base}/dashboard/cycles/{cycle_id}"
        ctx = await browser.new_context(viewport={"width": 390, "height": 844}, locale="hy-AM")
        ctx.set_default_timeout(15000)
        page = await ctx.new_page()
        await page.goto(base + "/login")  # the browser asks for Armenian
        assert await page.get_attribute("html", "lang") == "hy"
        await page.get_by_role("heading", name=texts("hy").gettext("Log in")).wait_for()
        await check_a11y(page, "dash-hy-login", screenshots, found)
        await log_in(page, base, EMAIL, PASSWORD)
        await page.goto(f"{c}/self-assessment")
        hy_model = localized_model("hy")
        await page.get_by_text(hy_model.indicator("FL-1").text).first.wait_for()
        assert await page.evaluate("document.documentElement.scrollWidth <= innerWidth + 1")
        await check_a11y(page, "dash-hy-self", screenshots, found)

        # to Ukrainian with the keyboard: focus the picker, choose, press the button
        await page.focus("#lang-select")
        await page.keyboard.press("End")  # the last language in the list: Українська
        await page.keyboard.press("Tab")
        await page.keyboard.press("Enter")
        # A function, not an expression: Playwright re-evals an expression string at every
        # poll after the first, from a page callback, which the dashboard's CSP (script-src
        # 'self', no 'unsafe-eval') refuses; a function is evaluated once, through CDP.
        await page.wait_for_function("() => document.documentElement.lang === 'uk'")
        assert page.url.endswith("/self-assessment")  # back where the coordinator was
        uk = texts("uk")
        await page.get_by_role("heading", name=uk.gettext("Self-assessment"), exact=True).wait_for()
        await page.goto(c)
        await page.wait_for_function(
            "() => [...document.querySelectorAll('.charts img')].every(i => i.complete)",
            timeout=60000,
        )
        assert await page.evaluate("document.documentElement.scrollWidth <= innerWidth + 1")
        await check_a11y(page, "dash-uk-overview", screenshots, found)
        await page.goto(f"{c}/indicators/{flagged}")
        await check_a11y(page, "dash-uk-indicator", screenshots, found)
        body = await page.inner_text("main")
        assert uk.gettext("What each group says") in body
        assert "What each group says" not in body
        await ctx.close()
    assert_clean(found)
