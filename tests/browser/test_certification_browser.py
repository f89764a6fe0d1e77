"""A certification round in a real Chromium: the coordinator submits, the board assigns two
assessors, one agrees and one proposes another rating and asks for evidence, the coordinator
answers, the board decides, the certificate opens and its link shows the verification page.
Every page at 1366 px and on a 390 px phone: axe clean, no page wider than the screen.
An assessor's browser cannot reach raw answers, free text, another round's school or another
agency.

Screenshots: tests/browser/screenshots/cert-<page>-<width>.png (gitignored).
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import pytest

from backend.dashboard.passwords import hash_password
from backend.web import keys
from conversations.banks import load_banks
from storage import certification as store
from storage import evidence_files, responses, schools
from tests.apptools import add_response
from tests.browser.a11y import assert_clean, check_a11y
from tests.browser.conftest import serve_app
from tests.browser.support import log_in

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

PASSWORD = "a long enough password"
PLAN_PDF = b"%PDF-1.7\n% the careers plan\n%%EOF\n"
REMARK = "hidden learner remark"
SELF_NOTE = "SECRET self note"


async def seed(sm, data_dir: Path | None = None) -> dict:
    """South (with figures, free text and evidence: a link, and a file when `data_dir` is
    given) and North; an agency with a board and two assessors, an open certification round;
    another agency with its own round."""
    pw = hash_password(PASSWORD)
    bank = load_banks()["learner"]
    scale_q = next(q for q in bank.questions if q.indicators and str(q.kind) != "text")
    text_q = next(q.id for q in bank.questions if str(q.kind) == "text")
    key = scale_q.indicators[0]
    async with sm.begin() as s:
        await responses.sync_question_map(s, load_banks().values())
        south = await schools.create_school(s, "south", "South College", languages=["en", "uk"])
        north = await schools.create_school(s, "north", "North College")
        await schools.create_user(s, south.id, "coord@south.example", pw)
        cycle = await schools.create_cycle(s, south.id, "2026/27", "1.0.0")
        other_cycle = await schools.create_cycle(s, north.id, "2026/27", "1.0.0")
        await schools.upsert_self_rating(s, cycle.id, key, value=3, comment=SELF_NOTE)
        await schools.add_evidence(
            s, cycle.id, key, kind="link", url="https://example.org/plan", note="Plan"
        )
        if data_dir is not None:
            stored = evidence_files.new_stored_name()
            evidence_files.stored_path(data_dir, stored).write_bytes(PLAN_PDF)
            await schools.add_evidence(
                s,
                cycle.id,
                key,
                kind="file",
                filename="careers-plan.pdf",
                stored_name=stored,
                content_type="application/pdf",
                size_bytes=len(PLAN_PDF),
            )
        for i in range(10):
            await add_response(
                s,
                cycle.id,
                "learner",
                bank.tag,
                answers={scale_q.id: 1 + i % 4},
                comment=(text_q, f"{REMARK} {i}"),
            )
        agency = await store.create_agency(s, "National QA Agency")
        other = await store.create_agency(s, "Other Agency")
        for aid, email, role in (
            (agency.id, "board@qa.example", "board"),
            (agency.id, "a1@qa.example", "assessor"),
            (agency.id, "a2@qa.example", "assessor"),
            (other.id, "other@qa.example", "board"),
        ):
            user = await schools.create_user(s, None, email, pw, role)
            await store.add_member(s, aid, user.id, role, None)
        deadline = date.today() + timedelta(days=30)
        rnd = await store.create_round(
            s, agency.id, "Certification 2027", "certification", deadline, True
        )
        other_rnd = await store.create_round(
            s, other.id, "Other round", "accreditation", deadline, False, [north.id]
        )
        await store.add_submission(s, other_rnd.id, north.id, other_cycle.id, "{}", "0" * 64, None)
    return {
        "south": south.id,
        "cycle": cycle.id,
        "round": rnd.id,
        "other_round": other_rnd.id,
        "other_agency": other.id,
        "north": north.id,
        "key": key,
    }


async def session(browser, base: str, email: str, width: int):
    ctx = await browser.new_context(
        viewport={"width": width, "height": 844 if width < 500 else 768},
        is_mobile=width < 500,
        has_touch=width < 500,
        locale="en-GB",
    )
    ctx.set_default_timeout(15000)
    page = await ctx.new_page()
    await log_in(page, base, email, PASSWORD)
    return ctx, page


async def look(page, name: str, width: int, shots, found: list[str]) -> None:
    assert await page.evaluate("document.documentElement.scrollWidth <= innerWidth + 1"), name
    await check_a11y(page, f"cert-{name}-{width}", shots, found)


@pytest.mark.parametrize("width", [1366, 390])
async def test_a_whole_round_in_the_browser(browser, sqlite_settings, screenshots, width):
    found: list[str] = []
    async with serve_app(sqlite_settings) as (base, app):
        ids = await seed(app[keys.SESSIONMAKER], sqlite_settings.data_dir)
        r = f"{base}/dashboard/rounds/{ids['round']}"
        review = f"{r}/schools/{ids['south']}"
        key = ids["key"]

        # The coordinator submits the cycle from the Certification page.
        ctx, page = await session(browser, base, "coord@south.example", width)
        await page.get_by_role("link", name="Certification", exact=True).click()
        await page.wait_for_url("**/schools/south/certification")
        await look(page, "school", width, screenshots, found)
        await page.locator(f"#round-{ids['round']}").get_by_role("button", name="Submit").click()
        await page.get_by_text("as version 1").wait_for()
        await ctx.close()

        # The board assigns two assessors.
        ctx, page = await session(browser, base, "board@qa.example", width)
        await page.get_by_role("link", name="Certification 2027").click()
        await page.wait_for_url(r)
        for email in ("a1@qa.example", "a2@qa.example"):
            await page.get_by_label("Assessor").select_option(label=email)
            await page.get_by_role("button", name="Assign").click()
            await page.get_by_text("Assessor assigned.").wait_for()
        await look(page, "round", width, screenshots, found)
        await ctx.close()

        # Assessor 1 agrees; assessor 2 proposes 1 with a reason and asks for evidence.
        for email, verdict in (("a1@qa.example", "agree"), ("a2@qa.example", "other")):
            ctx, page = await session(browser, base, email, width)
            await page.goto(review)
            text = await page.inner_text("main")
            assert REMARK not in text and SELF_NOTE not in text
            block = page.locator(f"#ind-{key}")
            if verdict == "agree":
                # The evidence file opens as the school submitted it.
                async with page.expect_download() as info:
                    await block.get_by_role("link", name="careers-plan.pdf").click()
                download = await info.value
                assert download.suggested_filename == "careers-plan.pdf"
                saved = Path(await download.path())
                assert saved.read_bytes() == PLAN_PDF  # noqa: ASYNC240 - a small local file
                await block.get_by_label("I agree with the school's rating").check()
            else:
                await block.get_by_label("I propose another rating").check()
                await block.get_by_label("Proposed rating").select_option("1")
                await block.get_by_label("Reason").fill("Only one workshop found")
            await block.get_by_role("button", name="Save").click()
            await page.get_by_text("is saved").wait_for()
            if verdict == "other":
                block = page.locator(f"#ind-{key}")
                await block.get_by_text("Ask the school for more evidence").click()
                await block.get_by_label("What evidence do you need?").fill("The attendance lists")
                await block.get_by_role("button", name="Send the request").click()
                await page.get_by_text("Your request is sent to the school.").wait_for()
                await look(page, "review", width, screenshots, found)
            await ctx.close()

        # The coordinator answers in the product.
        ctx, page = await session(browser, base, "coord@south.example", width)
        await page.goto(f"{base}/dashboard/schools/south/certification")
        await page.get_by_label(re.compile("Your answer")).fill("Added to the portfolio")
        await page.get_by_role("button", name="Send the answer").click()
        await page.get_by_text("Your answer is sent to the assessors.").wait_for()
        await ctx.close()

        # The board: side by side, the answer, the decision; the certificate and its link.
        ctx, page = await session(browser, base, "board@qa.example", width)
        await page.goto(review)
        await page.get_by_role("heading", name="Two assessors side by side").wait_for()
        assert "Added to the portfolio" in await page.inner_text("main")
        await page.get_by_label("certified with conditions").check()
        await page.get_by_role("textbox", name="Conditions").fill("Document the workshops")
        await page.get_by_label("Valid until").fill(
            (date.today() + timedelta(days=730)).isoformat()
        )
        await page.get_by_role("button", name="Record the decision").click()
        await page.get_by_text("The decision is recorded").wait_for()
        await look(page, "board-review", width, screenshots, found)
        await page.goto(r + "/audit")
        await look(page, "audit", width, screenshots, found)
        async with app[keys.SESSIONMAKER]() as s:
            decision = (await store.latest_decisions(s, ids["round"]))[ids["south"]]
        pdf = await page.request.get(f"{review}/certificate.pdf")
        assert pdf.ok and (await pdf.body()).startswith(b"%PDF")
        await ctx.close()

        ctx = await browser.new_context(viewport={"width": width, "height": 800})
        page = await ctx.new_page()
        await page.goto(f"{base}/verify/{decision.token}")
        main = await page.inner_text("main")
        assert "South College" in main and "Certification 2027" in main and "valid" in main
        assert "Document the workshops" not in main
        await look(page, "verify", width, screenshots, found)
        await ctx.close()
    assert_clean(found)


async def test_an_assessor_reaches_no_raw_answers_nor_other_rounds(browser, sqlite_settings):
    async with serve_app(sqlite_settings) as (base, app):
        ids = await seed(app[keys.SESSIONMAKER])
        sm = app[keys.SESSIONMAKER]
        async with sm.begin() as s:
            cycle = await schools.get_cycle(s, ids["cycle"])
            rnd = await store.get_round(s, ids["round"])
            await store.add_submission(s, rnd.id, ids["south"], cycle.id, "{}", "0" * 64, None)
            (a1,) = [
                u
                for m, u in await store.list_members(s, rnd.agency_id)
                if u.email == "a1@qa.example"
            ]
            await store.assign(s, rnd.id, ids["south"], a1.id)
        ctx, page = await session(browser, base, "a1@qa.example", 1366)
        c = f"{base}/dashboard/cycles/{ids['cycle']}"
        for path in (
            c,
            c + "/self-assessment",
            c + "/comments",
            c + f"/indicators/{ids['key']}",
            c + "/export.json",
            f"{base}/dashboard/rounds/{ids['other_round']}",
            f"{base}/dashboard/rounds/{ids['other_round']}/schools/{ids['north']}",
            f"{base}/dashboard/rounds/{ids['round']}/schools/{ids['north']}",
            f"{base}/dashboard/agencies/{ids['other_agency']}",
        ):
            resp = await page.goto(path)
            assert resp.status == 404, path
            text = await page.inner_text("body")
            assert REMARK not in text and SELF_NOTE not in text, path
        await ctx.close()
