"""The web chat in a real Chromium at phone size: with JavaScript (fetch + swap) and without.

Screenshots land in tests/browser/screenshots/ (gitignored) for a human look.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from backend.web import keys
from storage.models import Answer, Comment, Response
from tests.apptools import seed_school
from tests.browser.conftest import PHONE, phone_at, phone_page, serve_app, serve_mini_app
from tests.browser.support import Watch, mini_app_fragment, to_the_comment

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

COMMENT = "More company visits, please <b>not</b> only in May"


async def db_counts(app) -> tuple[int, int, str]:
    async with app[keys.SESSIONMAKER]() as s:
        answers = (await s.execute(select(func.count()).select_from(Answer))).scalar_one()
        comments = (await s.execute(select(func.count()).select_from(Comment))).scalar_one()
        status = (await s.execute(select(Response.status))).scalar_one()
    return answers, comments, status


async def take_survey(page: Any, shots, prefix: str, *, js: bool) -> int:
    """Consent, then every question (a mix of taps, N/A and Back), then the comment."""
    await page.get_by_role("button", name="Yes, I agree").click()
    await page.locator("#card progress").wait_for()
    await page.screenshot(path=shots / f"{prefix}-2-question.png")
    steps = 0
    while True:
        steps += 1
        assert steps < 60, "the survey did not end"
        card = page.locator("#card")
        if await card.locator("textarea").count():
            await page.locator("textarea").fill(COMMENT)
            if js:  # the character counter follows the typing
                assert (
                    f"{len(COMMENT)} of 1,000" in await page.locator("#answer-counter").inner_text()
                )
            await page.screenshot(path=shots / f"{prefix}-4-comment.png")
            await page.get_by_role("button", name="Send").click()
            break
        label = await page.locator("#progress-label").inner_text()
        if label.startswith("Question 3 of") and steps == 3:
            await page.get_by_role("button", name="Not applicable").click()
            await page.locator("#progress-label", has_text="Question 4 of").wait_for()
            await page.get_by_role("button", name="Back", exact=True).click()
            await page.locator("#progress-label", has_text="Question 3 of").wait_for()
            current = page.locator("button.is-current")
            assert await current.inner_text() == "Not applicable"
            assert await current.get_attribute("aria-pressed") == "true"
            await page.screenshot(path=shots / f"{prefix}-3-current.png")
        buttons = card.locator("form.choices button")
        await buttons.first.click()
        await page.locator("#progress-label", has_text=label).wait_for(state="detached")
    await page.get_by_text("Thank you! Your answers are saved.").wait_for()
    await page.screenshot(path=shots / f"{prefix}-5-done.png")
    return steps


async def test_phone_survey_with_javascript(browser, sqlite_settings, screenshots):
    server = serve_app(sqlite_settings)
    async with phone_at(server, browser, "learner") as (base, app, seeded, page):
        watch = Watch(page, base)
        await page.goto(f"{base}/s/{seeded.invites['learner']}")
        assert page.url == f"{base}/chat"
        assert await page.evaluate("document.documentElement.lang") == "en"
        await page.screenshot(path=screenshots / "js-1-consent.png", full_page=True)
        # Tap targets: full width and at least 44px high.
        box = await page.get_by_role("button", name="Yes, I agree").bounding_box()
        assert box["height"] >= 44 and box["width"] >= 300
        # A marker survives every answer: no page reload, the card is swapped in place.
        await page.evaluate("window.__noReload = 1")
        await take_survey(page, screenshots, "js", js=True)
        assert await page.evaluate("window.__noReload") == 1
        assert await page.evaluate("document.activeElement.id") == "card-text"  # focus moved
        assert await page.locator("#card form").count() == 0  # final: no form
        watch.check()
        answers, comments, status = await db_counts(app)
        assert (answers, comments, status) == (21, 1, "completed")
        # Reload: the cookie resumes at the end.
        await page.reload()
        await page.get_by_text("You have already completed this survey").wait_for()
        # Erase with confirmation, by keyboard.
        await page.get_by_role("button", name="Erase my answers").focus()
        await page.keyboard.press("Enter")
        await page.get_by_text("Erase all your answers?").wait_for()
        await page.screenshot(path=screenshots / "js-6-erase-confirm.png")
        await page.get_by_role("button", name="Yes, erase").click()
        await page.get_by_text("All your answers have been erased.").wait_for()
        async with app[keys.SESSIONMAKER]() as s:
            assert (await s.execute(select(func.count()).select_from(Answer))).scalar_one() == 0


async def test_phone_survey_without_javascript(browser, sqlite_settings, screenshots):
    server = serve_app(sqlite_settings)
    async with phone_at(server, browser, "learner", js=False) as (base, app, seeded, page):
        watch = Watch(page, base)
        await page.goto(f"{base}/s/{seeded.invites['learner']}")
        await page.screenshot(path=screenshots / "nojs-1-consent.png", full_page=True)
        await take_survey(page, screenshots, "nojs", js=False)
        watch.check()
        answers, comments, status = await db_counts(app)
        assert (answers, comments, status) == (21, 1, "completed")
        await page.goto(f"{base}/privacy")
        await page.screenshot(path=screenshots / "nojs-7-privacy.png", full_page=True)
        assert "groups of 5 or more" in await page.locator("#card").inner_text()


async def test_mini_app_at_phone_size(browser, sqlite_settings, screenshots):
    server = serve_mini_app(sqlite_settings)
    async with phone_at(server, browser, "graduate") as (base, app, seeded, page):
        ctx = page.context
        watch = Watch(page, base)
        # Outside Telegram: the page explains what it is and offers the browser instead.
        await page.goto(f"{base}/app?startapp={seeded.invites['graduate']}")
        await page.get_by_text("It works only when opened from the survey bot").wait_for()
        await page.get_by_role("link", name="Answer in the browser").click()
        await page.get_by_role("button", name="Yes, I agree").wait_for()
        assert page.url == f"{base}/chat"
        # Inside Telegram the client passes initData in the URL fragment.
        fragment = mini_app_fragment(seeded.invites["graduate"])
        page = await ctx.new_page()  # a fresh load (a new fragment alone would not reload)
        watch = Watch(page, base)
        await page.goto(f"{base}/app#{fragment}")
        await page.get_by_role("button", name="Yes, I agree").click()
        await page.get_by_role("button", name="Working").click()
        await page.locator("#progress-label", has_text="Question 2 of").wait_for()
        await page.screenshot(path=screenshots / "app-1-question.png")
        watch.check()
        runner = app[keys.SURVEY]
        state = await runner.load_state(runner.subject("telegram", 5150))
        assert state["ans"] == {"now": "c:working"}


async def test_a_shared_phone_forgets_the_survey(browser, sqlite_settings, screenshots):
    """The next person at a school computer or a shared phone: "Not you?", and forgetting
    the device after the last answer. Answers stay; the cookie and the server's place go."""
    from tests.browser.a11y import assert_clean, check_a11y

    found: list[str] = []
    server = serve_app(sqlite_settings)
    async with phone_at(server, browser, "learner") as (base, app, seeded, page):
        ctx = page.context
        watch = Watch(page, base)
        # Someone answers two questions and walks away.
        await page.goto(f"{base}/s/{seeded.invites['learner']}")
        await page.get_by_role("button", name="Yes, I agree").click()
        for n in (1, 2):
            await page.locator("#progress-label", has_text=f"Question {n} of").wait_for()
            await page.locator("#card form.choices button").first.click()
        await page.locator("#progress-label", has_text="Question 3 of").wait_for()
        # The next person sees the way out at the top, without scrolling.
        not_me = page.get_by_role("link", name="Not you? Start as someone else")
        box = await not_me.bounding_box()
        assert box["y"] + box["height"] < 120 and box["height"] >= 24
        await page.screenshot(path=screenshots / "shared-1-not-me.png")
        await check_a11y(page, "chat-not-me", screenshots, found)
        await not_me.click()
        await page.get_by_role("heading", name="Start as someone else").wait_for()
        await page.screenshot(path=screenshots / "shared-2-confirm.png", full_page=True)
        await check_a11y(page, "chat-forget-confirm", screenshots, found)
        await page.get_by_role("button", name="Forget this device").click()
        await page.get_by_text("Done: this device no longer keeps a survey.").wait_for()
        await page.screenshot(path=screenshots / "shared-3-forgotten.png")
        await check_a11y(page, "chat-forgotten", screenshots, found)
        assert not [c for c in await ctx.cookies() if c["name"] == "gs_respondent"]
        async with app[keys.SESSIONMAKER]() as s:
            assert (await s.execute(select(func.count()).select_from(Answer))).scalar_one() == 2
        # The next person: a fresh start with the (shared) class link, then the last answer.
        await page.goto(f"{base}/s/{seeded.invites['learner']}")
        assert await page.get_by_role("button", name="Yes, I agree").count() == 1
        await take_survey(page, screenshots, "shared", js=True)
        offer = page.get_by_text("Using a shared phone or computer?")
        await offer.wait_for()
        await page.screenshot(path=screenshots / "shared-4-offer.png", full_page=True)
        await check_a11y(page, "chat-forget-offer", screenshots, found)
        await page.evaluate("window.__noReload = 1")
        await page.get_by_role("button", name="Forget this device").click()
        await page.get_by_text("Done: this device no longer keeps a survey.").wait_for()
        assert await page.evaluate("window.__noReload") == 1  # swapped in place by fetch
        assert not await page.get_by_role("link", name="Not you?").is_visible()
        await check_a11y(page, "chat-forgotten-in-place", screenshots, found)
        assert not [c for c in await ctx.cookies() if c["name"] == "gs_respondent"]
        await page.screenshot(path=screenshots / "shared-5-forgotten.png")
        watch.check()
        async with app[keys.SESSIONMAKER]() as s:
            statuses = (await s.execute(select(Response.status))).scalars().all()
        assert sorted(statuses) == ["completed", "in_progress"]  # both people's answers kept
    assert_clean(found)


async def test_a_long_paste_is_kept_whole_and_the_limit_said(browser, sqlite_settings, screenshots):
    """10,000 characters pasted into the comment box: nothing is cut; the counter says how
    many too many; Send says why it cannot be taken and leaves the text in the box. Without
    JavaScript the server refuses it and the page comes back with the text in the box."""
    from tests.browser.a11y import assert_clean, check_a11y

    found: list[str] = []
    long_text = ("We need more visits to companies and real projects. " * 200)[:9_999] + "!"
    async with serve_app(sqlite_settings) as (base, app):
        seeded = await seed_school(app[keys.SESSIONMAKER], roles=["learner"])
        for js in (True, False):
            ctx, page = await phone_page(browser, js=js)
            watch = Watch(page, base)
            await page.goto(f"{base}/s/{seeded.invites['learner']}")
            await page.get_by_role("button", name="Yes, I agree").click()
            await page.locator("#card progress").wait_for()
            await to_the_comment(page)
            box = page.locator("#answer")
            await box.fill(long_text)  # as a paste: the whole value at once
            assert await box.input_value() == long_text  # not cut to 1,000
            if js:
                counter = page.locator("#answer-counter")
                assert await counter.inner_text() == "10,000 of 1,000 characters: 9,000 too many"
            await page.get_by_role("button", name="Send").click()
            notice = page.get_by_role("alert")
            await notice.wait_for()
            assert "Not saved" in await notice.inner_text()
            assert "at most 1,000" in await notice.inner_text()
            assert await page.locator("#answer").input_value() == long_text
            assert await page.locator("#answer").get_attribute("aria-invalid") == "true"
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, width
            name = "js" if js else "nojs"
            await page.screenshot(path=screenshots / f"long-text-{name}.png")
            if js:  # axe runs as a script: not in a page without JavaScript
                await check_a11y(page, "chat-long-text", screenshots, found)
            async with app[keys.SESSIONMAKER]() as s:
                comments = (await s.execute(select(func.count()).select_from(Comment))).scalar_one()
            assert comments == (0 if js else 1)  # only the first person's shortened answer
            # Shortened in the box, it goes through.
            await page.locator("#answer").fill(long_text[:800])
            await page.get_by_role("button", name="Send").click()
            await page.get_by_text("Thank you! Your answers are saved.").wait_for()
            watch.check()
            await ctx.close()
    assert_clean(found)


async def test_the_phones_back_button_goes_to_the_previous_question(
    browser, sqlite_settings, screenshots
):
    """Back (the phone's, the browser's) inside the survey: the previous question, in place;
    at the first question it says the survey starts here and that the answers are kept, and
    a second Back leaves."""
    server = serve_app(sqlite_settings)
    async with phone_at(server, browser, "learner") as (base, app, seeded, page):
        watch = Watch(page, base)
        await page.goto(f"{base}/privacy")  # where the person came from
        await page.goto(f"{base}/s/{seeded.invites['learner']}")
        await page.evaluate("window.__noReload = 1")
        await page.get_by_role("button", name="Yes, I agree").click()
        for n in (1, 2):
            await page.locator("#progress-label", has_text=f"Question {n} of").wait_for()
            await page.locator("#card form.choices button").first.click()
        await page.locator("#progress-label", has_text="Question 3 of").wait_for()
        await page.evaluate("history.back()")
        await page.locator("#progress-label", has_text="Question 2 of").wait_for()
        assert await page.locator("button.is-current").count() == 1  # its answer shown
        await page.evaluate("history.back()")
        await page.locator("#progress-label", has_text="Question 1 of").wait_for()
        await page.evaluate("history.back()")
        alert = page.get_by_role("alert")
        await alert.wait_for()
        assert "Your answers so far are kept" in await alert.inner_text()
        await page.screenshot(path=screenshots / "back-1-first-question.png")
        assert page.url == f"{base}/chat"
        assert await page.evaluate("window.__noReload") == 1  # all in place
        # Answering goes on where it was (the next open question), and Back works again.
        await page.locator("#card form.choices button").first.click()
        await page.locator("#progress-label", has_text="Question 3 of").wait_for()
        await page.evaluate("history.back()")
        await page.locator("#progress-label", has_text="Question 2 of").wait_for()
        await page.locator("#card form.nav button", has_text="Back").click()
        await page.locator("#progress-label", has_text="Question 1 of").wait_for()
        await page.evaluate("history.back()")
        await alert.wait_for()
        await page.evaluate("history.back()")  # the second Back leaves
        await page.wait_for_url(f"{base}/privacy")
        async with app[keys.SESSIONMAKER]() as s:
            n = (await s.execute(select(func.count()).select_from(Answer))).scalar_one()
        assert n == 2  # nothing lost on the way back
        watch.check()


@pytest.mark.parametrize("lang", ["en", "hy", "uk"])
async def test_the_app_page_outside_telegram_explains_itself(
    browser, sqlite_settings, screenshots, lang
):
    """/app with no bot configured, on a phone: no dashboard 404 with the coordinators' bar,
    but the survey's own page, in the browser's language, saying how to answer instead."""
    from conversations.i18n import Translator
    from tests.browser.a11y import assert_clean, check_a11y

    t = Translator(lang)
    found: list[str] = []
    async with serve_app(sqlite_settings) as (base, _app):
        ctx = await browser.new_context(  # a phone whose browser reads `lang`
            viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True, locale=lang
        )
        ctx.set_default_timeout(8000)
        page = await ctx.new_page()
        watch = Watch(page, base)
        response = await page.goto(f"{base}/app")
        assert response.status == 200
        assert await page.evaluate("document.documentElement.lang") == lang
        await page.get_by_role("heading", name=t("web.miniapp.browser_heading")).wait_for()
        await page.get_by_text(t("web.miniapp.no_telegram")).wait_for()
        await page.get_by_text(t("web.miniapp.get_link")).wait_for()
        assert await page.locator("nav, .topbar, a[href^='/dashboard']").count() == 0
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, width
        await page.screenshot(path=screenshots / f"app-outside-{lang}.png", full_page=True)
        await check_a11y(page, f"app-outside-{lang}", screenshots, found)
        watch.check()
        await ctx.close()
    assert_clean(found)
