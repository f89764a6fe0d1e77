"""Every state-changing dashboard form is done once: the same form sent twice (a double click,
Back and send again) does its work once and leads to the first one's result (`once`)."""

from __future__ import annotations

import asyncio
import io
import re

from aiohttp import FormData
from sqlalchemy import func, select

from backend.web import keys
from storage import schools
from storage.models import ActionItem, FormSubmission, Invite
from tests.apptools import running_app, seed_school
from tests.backend.dashboard.support import add_user, login
from tests.webtools import forms_of

RESENT = "This form had been sent already: nothing was done twice."


async def the_form(client, page: str, action: str) -> dict[str, str]:
    """The hidden fields of the form on `page` whose action is `action`."""
    html = await (await client.get(page)).text()
    found = [f for f in forms_of(html) if f.action.split("?")[0] == action]
    assert found, f"no form to {action} on {page}"
    return found[0].hidden | {"_action": found[0].action}


async def form_tokens(client, page: str, action: str) -> dict[str, str]:
    """The CSRF token and the one-time submission token of that form."""
    hidden = await the_form(client, page, action)
    return {k: hidden[k] for k in ("csrf", "submission")}


async def count(client, model, **where) -> int:
    async with client.app[keys.SESSIONMAKER]() as s:
        q = select(func.count()).select_from(model)
        for k, v in where.items():
            q = q.where(getattr(model, k) == v)
        return await s.scalar(q)


async def send_twice(client, action: str, data: dict[str, str]) -> tuple:
    first = await client.post(action, data=data, allow_redirects=False)
    second = await client.post(action, data=data, allow_redirects=False)
    return first, second


async def coordinator(client):
    seeded = await seed_school(client.app[keys.SESSIONMAKER], roles=["learner"])
    await add_user(client, "coord@example.org", seeded.school_id)
    assert (await login(client, "coord@example.org")).status == 303
    return seeded


async def test_create_invites_twice_makes_one_batch(settings):
    async with running_app(settings) as client:
        seeded = await coordinator(client)
        c = f"/dashboard/cycles/{seeded.cycle_id}"
        before = await count(client, Invite, cycle_id=seeded.cycle_id)
        hidden = await the_form(client, c + "/invites", c + "/invites")
        assert re.fullmatch(r"[A-Za-z0-9_-]{16,64}", hidden["submission"])
        data = {"csrf": hidden["csrf"], "submission": hidden["submission"], "role": "learner"}
        data |= {"count": "3", "kind": "single", "days": "30"}
        first, second = await send_twice(client, c + "/invites", data)
        assert first.status == second.status == 303
        assert second.headers["Location"] == first.headers["Location"] == c + "/invites"
        assert await count(client, Invite, cycle_id=seeded.cycle_id) == before + 3
        page = await (await client.get(second.headers["Location"])).text()
        assert RESENT in page
        # A freshly loaded form is a new submission: it makes a new batch.
        again = await the_form(client, c + "/invites", c + "/invites")
        assert again["submission"] != hidden["submission"]
        data |= {"csrf": again["csrf"], "submission": again["submission"]}
        assert (await client.post(c + "/invites", data=data, allow_redirects=False)).status == 303
        assert await count(client, Invite, cycle_id=seeded.cycle_id) == before + 6


async def test_add_to_the_plan_twice_makes_one_action(settings):
    async with running_app(settings) as client:
        seeded = await coordinator(client)
        c = f"/dashboard/cycles/{seeded.cycle_id}"
        data = await form_tokens(client, c + "/actions", c + "/actions")
        data |= {"indicator_key": "FL-1", "title": "Career talks in year 2", "owner": "Ana"}
        first, second = await send_twice(client, c + "/actions", data)
        assert second.status == 303 and second.headers["Location"] == first.headers["Location"]
        assert await count(client, ActionItem, cycle_id=seeded.cycle_id) == 1


async def test_a_refused_form_can_be_corrected_and_sent_with_its_token(settings):
    async with running_app(settings) as client:
        seeded = await coordinator(client)
        c = f"/dashboard/cycles/{seeded.cycle_id}"
        data = await form_tokens(client, c + "/actions", c + "/actions")
        data |= {"indicator_key": "FL-1", "title": "", "owner": ""}  # refused: no title
        resp = await client.post(c + "/actions", data=data, allow_redirects=False)
        assert resp.status == 303
        assert await count(client, ActionItem, cycle_id=seeded.cycle_id) == 0
        data["title"] = "Mentors from local firms"  # Back, correct, send again
        first, second = await send_twice(client, c + "/actions", data)
        assert second.headers["Location"] == first.headers["Location"]
        assert await count(client, ActionItem, cycle_id=seeded.cycle_id) == 1
        assert await count(client, FormSubmission, token=data["submission"]) == 1


async def test_a_new_cycle_and_a_link_as_evidence_are_made_once(settings):
    async with running_app(settings) as client:
        seeded = await coordinator(client)
        sm = client.app[keys.SESSIONMAKER]
        async with sm() as s:
            school = await schools.get_school(s, seeded.school_id)
        # The new cycle form.
        page = f"/dashboard/schools/{school.slug}"
        hidden = await the_form(client, page, page + "/cycles")
        data = {k: hidden[k] for k in ("csrf", "submission")} | {"name": "2031/32"}
        first, second = await send_twice(client, page + "/cycles", data)
        assert second.status == 303 and second.headers["Location"] == first.headers["Location"]
        async with sm() as s:
            names = [c.name for c in await schools.list_cycles(s, seeded.school_id)]
        assert names.count("2031/32") == 1
        page = await (await client.get(second.headers["Location"])).text()
        assert RESENT in page and "There is a cycle named" not in page
        # A link as evidence: a multipart form, its token in the action's query string.
        c = f"/dashboard/cycles/{seeded.cycle_id}"
        hidden = await the_form(client, c + "/indicators/FL-1", c + "/indicators/FL-1/evidence")
        action = hidden["_action"]
        assert "submission=" in action

        def form() -> FormData:
            f = FormData()
            f.add_field("csrf", hidden["csrf"])
            f.add_field("file", io.BytesIO(b""), filename="", content_type="application/pdf")
            f.add_field("url", "https://example.org/careers-fair")
            f.add_field("note", "Fair programme")
            return f

        first = await client.post(action, data=form(), allow_redirects=False)
        second = await client.post(action, data=form(), allow_redirects=False)
        assert first.status == second.status == 303
        assert second.headers["Location"] == first.headers["Location"]
        async with sm() as s:
            assert len(await schools.list_evidence(s, seeded.cycle_id, "FL-1")) == 1


async def test_deleting_twice_leads_to_the_first_result_not_an_error(settings):
    async with running_app(settings) as client:
        seeded = await coordinator(client)
        sm = client.app[keys.SESSIONMAKER]
        async with sm.begin() as s:
            item = await schools.add_evidence(
                s, seeded.cycle_id, "FL-2", kind="link", url="https://example.org", note=None
            )
        c = f"/dashboard/cycles/{seeded.cycle_id}"
        action = f"{c}/evidence/{item.id}/delete"
        hidden = await the_form(client, c + "/indicators/FL-2", action)
        data = {k: hidden[k] for k in ("csrf", "submission")}
        first, second = await send_twice(client, action, data)
        assert first.status == 303
        assert second.status == 303 and second.headers["Location"] == first.headers["Location"]


async def test_the_token_holds_across_a_restart_and_is_one_users(settings):
    """Recorded in the database: a restarted server (or another process) knows it; another
    account's request with it does nothing."""
    async with running_app(settings) as client:
        seeded = await coordinator(client)
        c = f"/dashboard/cycles/{seeded.cycle_id}"
        hidden = await the_form(client, c + "/invites", c + "/invites")
        data = {k: hidden[k] for k in ("csrf", "submission")} | {"role": "learner", "count": "2"}
        assert (await client.post(c + "/invites", data=data, allow_redirects=False)).status == 303
        cookies = {m.key: m.value for m in client.session.cookie_jar}
    async with running_app(settings) as client:  # a new server process, the same database
        client.session.cookie_jar.update_cookies(cookies)
        resp = await client.post(c + "/invites", data=data, allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"] == c + "/invites"
        assert await count(client, Invite, cycle_id=seeded.cycle_id, max_uses=1) == 2
        # Another coordinator of the same school, with a stolen token: nothing is done.
        client.session.cookie_jar.clear()
        await add_user(client, "other@example.org", seeded.school_id)
        assert (await login(client, "other@example.org")).status == 303
        mine = await the_form(client, c + "/invites", c + "/invites")
        data["csrf"] = mine["csrf"]
        resp = await client.post(c + "/invites", data=data, allow_redirects=False)
        assert resp.status == 409
        assert await count(client, Invite, cycle_id=seeded.cycle_id, max_uses=1) == 2


async def test_a_double_click_makes_one_batch(settings):
    """Two requests with the same token at the same moment: one does the work, the other
    waits for it and is led to its result."""
    async with running_app(settings) as client:
        seeded = await coordinator(client)
        c = f"/dashboard/cycles/{seeded.cycle_id}"
        before = await count(client, Invite, cycle_id=seeded.cycle_id)
        hidden = await the_form(client, c + "/invites", c + "/invites")
        data = {k: hidden[k] for k in ("csrf", "submission")} | {"role": "parent", "count": "4"}
        a, b = await asyncio.gather(
            client.post(c + "/invites", data=data, allow_redirects=False),
            client.post(c + "/invites", data=data, allow_redirects=False),
        )
        assert a.status == b.status == 303
        assert a.headers["Location"] == b.headers["Location"] == c + "/invites"
        assert await count(client, Invite, cycle_id=seeded.cycle_id) == before + 4
