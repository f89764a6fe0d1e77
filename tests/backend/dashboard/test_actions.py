"""The action plan: CRUD from the action plan page and the indicator page, filters, refusals
(another school's cycle or item, a missing CSRF token, a peer), and the PDF's section."""

from __future__ import annotations

import re
from datetime import date

from backend.i18n import LABELS
from backend.reporting.exports import report_pdf
from backend.web import keys
from storage import schools
from storage.models import ActionItem
from storage.schools import ACTION_STATUSES
from tests.apptools import running_app, seed_school
from tests.backend.dashboard.support import add_user, csrf_of, login, post_form
from tests.backend.reporting.sample import build_sample_reports
from tests.backend.reporting.support import learners_answer, mapped_key, pdf_text


async def setup_two(client):
    sm = client.app[keys.SESSIONMAKER]
    ours = await seed_school(sm, slug="ours", name="Our School", roles=["learner"])
    theirs = await seed_school(sm, slug="theirs", name="Their School", roles=["learner"])
    await add_user(client, "coord@ours.example", ours.school_id)
    await add_user(client, "coord@theirs.example", theirs.school_id)
    await add_user(client, "peer@ours.example", ours.school_id, role="peer")
    return ours, theirs


async def items(client, cycle_id: int) -> list[ActionItem]:
    from sqlalchemy import select

    async with client.app[keys.SESSIONMAKER].begin() as s:
        return list(
            await s.scalars(
                select(ActionItem).where(ActionItem.cycle_id == cycle_id).order_by(ActionItem.id)
            )
        )


async def test_action_items_crud_filters_and_refusals(settings, tmp_path):
    async with running_app(settings) as client:
        ours, theirs = await setup_two(client)
        assert (await login(client, "coord@ours.example")).status == 303
        base = f"/dashboard/cycles/{ours.cycle_id}/actions"
        page = await (await client.get(base)).text()
        assert "No actions yet" in page and "Plan an action" in page
        # Create from the action plan page.
        resp = await post_form(
            client,
            base,
            {
                "indicator_key": "FL-1",
                "title": "Careers week <every> year",
                "owner": "Head of guidance",
                "due_date": "2027-03-01",
            },
            csrf_page=base,
        )
        assert resp.status == 303 and resp.headers["Location"] == base
        # Create from the indicator page: back to its #actions.
        ind_url = f"/dashboard/cycles/{ours.cycle_id}/indicators/FL-2"
        resp = await post_form(
            client,
            base,
            {"indicator_key": "FL-2", "title": "Visit two employers", "back_indicator": "FL-2"},
            csrf_page=ind_url,
        )
        assert resp.status == 303 and resp.headers["Location"] == ind_url + "#actions"
        made = await items(client, ours.cycle_id)
        assert [(a.indicator_key, a.title, a.owner, a.due_date, a.status) for a in made] == [
            ("FL-1", "Careers week <every> year", "Head of guidance", date(2027, 3, 1), "open"),
            ("FL-2", "Visit two employers", None, None, "open"),
        ]
        first, second = made
        drill = await (await client.get(ind_url)).text()
        assert "Visit two employers" in drill and "Careers week" not in drill
        page = await (await client.get(base)).text()
        assert "Careers week &lt;every&gt; year" in page and "Head of guidance" in page
        # Bad input is refused with a message, nothing stored.
        for bad in (
            {"indicator_key": "NOPE", "title": "x"},
            {"indicator_key": "FL-1", "title": ""},
            {"indicator_key": "FL-1", "title": "x", "due_date": "next week"},
            {"indicator_key": "FL-1", "title": "x", "status": "someday"},
            {"indicator_key": "FL-1", "title": "x" * 301},
        ):
            resp = await post_form(client, base, bad, csrf_page=base)
            assert resp.status == 303, bad
        assert len(await items(client, ours.cycle_id)) == 2
        assert "Action not added" in await (await client.get(base)).text()
        # Status change, then a full edit.
        resp = await post_form(client, f"{base}/{first.id}", {"status": "done"}, csrf_page=base)
        assert resp.status == 303
        resp = await post_form(
            client,
            f"{base}/{second.id}",
            {"title": "Visit three employers", "owner": "Deputy head", "status": "in_progress"},
            csrf_page=base,
        )
        assert resp.status == 303
        first, second = await items(client, ours.cycle_id)
        assert first.status == "done"
        assert (second.title, second.owner, second.status) == (
            "Visit three employers",
            "Deputy head",
            "in_progress",
        )
        assert second.updated_at >= second.created_at
        # Filters by status (the flash message shown once first).
        assert "updated" in await (await client.get(base)).text()
        done = await (await client.get(base + "?status=done")).text()
        assert "Careers week" in done and "Visit three employers" not in done
        prog = await (await client.get(base + "?status=in_progress")).text()
        assert "Careers week" not in prog and "Visit three employers" in prog
        assert "No action is open" in await (await client.get(base + "?status=open")).text()
        # CSRF: a form without the token, or with a forged one, is refused.
        for data in ({"status": "open"}, {"status": "open", "csrf": "forged"}):
            resp = await client.post(f"{base}/{first.id}", data=data, allow_redirects=False)
            assert resp.status == 403
        assert (await items(client, ours.cycle_id))[0].status == "done"

        # Their school: its cycle's plan and items are 404 for us, read or write.
        async with client.app[keys.SESSIONMAKER].begin() as s:
            s.add(ActionItem(cycle_id=theirs.cycle_id, indicator_key="FL-1", title="Theirs"))
        (their_item,) = await items(client, theirs.cycle_id)
        tbase = f"/dashboard/cycles/{theirs.cycle_id}/actions"
        assert (await client.get(tbase)).status == 404
        for path, data in (
            (tbase, {"indicator_key": "FL-1", "title": "x"}),
            (f"{tbase}/{their_item.id}", {"status": "done"}),
            (f"{tbase}/{their_item.id}/delete", {}),
            # Their item through OUR cycle's URL: not ours either.
            (f"{base}/{their_item.id}", {"status": "done"}),
            (f"{base}/{their_item.id}/delete", {}),
        ):
            resp = await post_form(client, path, data, csrf_page=base)
            assert resp.status == 404, path
        (their_item,) = await items(client, theirs.cycle_id)
        assert their_item.status == "open"

        # The PDF report includes the plan.
        pdf = await client.get(f"/dashboard/cycles/{ours.cycle_id}/export.pdf")
        assert pdf.status == 200
        text = re.sub(r"\s+", " ", pdf_text(await pdf.read(), tmp_path))
        assert "Action plan" in text and "Careers week <every> year" in text
        assert "Head of guidance" in text and "2027-03-01" in text and "in progress" in text

        # Delete.
        resp = await post_form(client, f"{base}/{first.id}/delete", {}, csrf_page=base)
        assert resp.status == 303
        assert [a.id for a in await items(client, ours.cycle_id)] == [second.id]

        # A peer of the school reads the plan but cannot change it.
        await post_form(client, "/logout", {})
        assert (await login(client, "peer@ours.example")).status == 303
        page = await (await client.get(base)).text()
        assert "Visit three employers" in page and "Add to the plan" not in page
        token = await csrf_of(client, base)
        for path, data in (
            (base, {"indicator_key": "FL-1", "title": "x"}),
            (f"{base}/{second.id}", {"status": "done"}),
            (f"{base}/{second.id}/delete", {}),
        ):
            resp = await client.post(path, data={"csrf": token, **data}, allow_redirects=False)
            assert resp.status == 403, path
        assert len(await items(client, ours.cycle_id)) == 1


async def test_overview_offers_to_plan_an_action_for_a_flagged_gap(settings):
    async with running_app(settings) as client:
        ours, _ = await setup_two(client)
        sm = client.app[keys.SESSIONMAKER]
        qid, key = await mapped_key(sm)
        async with sm.begin() as s:
            await schools.upsert_self_rating(s, ours.cycle_id, key, value=4)
        await learners_answer(sm, ours.cycle_id, qid, [1] * 5)
        assert (await login(client, "coord@ours.example")).status == 303
        page = await (await client.get(f"/dashboard/cycles/{ours.cycle_id}")).text()
        link = f"/dashboard/cycles/{ours.cycle_id}/actions?indicator={key}&amp;role=learner#new"
        assert "Plan an action" in page and link in page
        plan = await (await client.get(link.replace("&amp;", "&"))).text()
        assert f'<option value="{key}" selected>' in plan
        assert "Close the gap seen by" in plan


def test_pdf_action_plan_section(tmp_path):
    report = build_sample_reports(tmp_path)["now"]
    key = report["indicators"][0]["key"]
    actions = [
        {
            "indicator_key": key,
            "title": "Опитування випускників щороку",  # Cyrillic survives
            "owner": "Guidance team",
            "due_date": date(2027, 6, 30),
            "status": "in_progress",
        }
    ]
    text = re.sub(r"\s+", " ", pdf_text(report_pdf(report, actions=actions), tmp_path))
    assert "Action plan" in text and "Опитування випускників щороку" in text
    assert "Guidance team" in text and "2027-06-30" in text and "in progress" in text
    empty = pdf_text(report_pdf(report, actions=[]), tmp_path)
    assert "No action has been planned yet" in empty
    assert "Action plan" not in pdf_text(report_pdf(report), tmp_path)


def test_the_action_statuses_have_words_in_every_order():
    """storage knows the statuses, the dashboard their words: the same, in the same order."""
    assert tuple(LABELS["action status"]) == ACTION_STATUSES
    assert set(LABELS["report action status"]) == set(ACTION_STATUSES)
