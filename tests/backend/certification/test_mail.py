"""The coordinators are told by e-mail (backend.certification.notices): the board's decision
and revocation, reminders before a round's deadline. An SMTP server in the test's own event
loop (tests/mailtools.py) receives what is sent."""

from __future__ import annotations

import logging
import socket
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import update

from backend.certification.notices import MAX_ATTEMPTS, backoff
from backend.web import keys
from storage import certification as store
from storage import mail as mail_store
from storage.models import User
from tests.apptools import db_url_of, make_settings, running_app, seed_school
from tests.backend.certification.support import (
    SECRET_REMARK,
    SECRET_SELF,
    logout,
    set_up_round,
    submit,
)
from tests.backend.dashboard.support import add_user, api_headers, login, post_form
from tests.mailtools import mail_settings, smtp_sink

DECISION = {
    "outcome": "certified",
    "conditions": "",
    "valid_from": "2027-01-01",
    "valid_until": "2030-01-01",
}


def free_port() -> int:
    """A local port where nothing listens (the mail server is down)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def set_language(sm, email: str, lang: str | None) -> None:
    async with sm.begin() as s:
        await s.execute(update(User).where(User.email == email).values(language=lang))


async def decide(client, rnd, data=DECISION) -> str:
    review = f"/dashboard/rounds/{rnd.round_id}/schools/{rnd.south.school_id}"
    assert (await login(client, "board@agency.example")).status == 303
    resp = await post_form(client, f"{review}/decision", data, review)
    assert resp.status == 303
    return review


async def submitted_round(client, sm):
    """The round of support.set_up_round, south submitted, two coordinators of south (one
    chose Armenian, one left the language to the school, whose language is Armenian)."""
    rnd = await set_up_round(client, sm)
    await add_user(client, "second@south.example", rnd.south.school_id)
    async with sm.begin() as s:
        school = await store.schools_by_id(s, [rnd.south.school_id])
        school[rnd.south.school_id].languages = ["hy", "en"]
    await set_language(sm, "coord@south.example", "hy")
    assert (await login(client, "coord@south.example")).status == 303
    await submit(client, rnd)
    await logout(client)
    return rnd


@asynccontextmanager
async def submitted_with_mail(db_engine, tmp_path):
    """A running app that mails to an in-process SMTP sink (its loop off: the tests wait for
    the notifier), with a round the south school submitted to: (sink, client, sm, rnd)."""
    async with smtp_sink() as sink:
        settings = make_settings(
            db_url_of(db_engine), data_dir=tmp_path / "data", **mail_settings(sink.port)
        )
        async with running_app(settings, mail_loop=False) as client:
            sm = client.app[keys.SESSIONMAKER]
            yield sink, client, sm, await submitted_round(client, sm)


async def test_a_decision_mails_the_coordinators_in_their_language(db_engine, tmp_path):
    async with submitted_with_mail(db_engine, tmp_path) as (sink, client, sm, rnd):
        await decide(client, rnd)
        await client.app[keys.NOTIFIER].idle()
        (msg,) = await sink.wait_for(1)
        async with sm.begin() as s:
            decision = (await store.latest_decisions(s, rnd.round_id))[rnd.south.school_id]
            (row,) = await mail_store.list_mail(s, rnd.south.school_id)
        assert (row.kind, row.status, row.attempts) == ("decision", "sent", 1)
        # One mail to both coordinators (of one language), the board's member not among them.
        assert sink.envelopes == [
            ("rounds@guidance.example", ["coord@south.example", "second@south.example"])
        ]
        assert msg["Content-Language"] == "hy"
        body = msg.get_content()
        assert "South College" in msg["Subject"] and "Certification 2027" in msg["Subject"]
        assert msg["Subject"].startswith("Որոշում՝ հավաստագրված")  # "Decision: certified"
        assert "վահանակում" in body  # "in the dashboard"
        page = f"http://guidance.example/dashboard/schools/south/certification#round-{rnd.round_id}"
        assert page in body
        assert f"http://guidance.example/verify/{decision.token}" in body
        assert SECRET_REMARK not in body and SECRET_SELF not in body
        # The links lead where they say.
        assert (await client.get(f"/verify/{decision.token}")).status == 200

        # A revocation tells them too; a coordinator's own language wins over the
        # school's: English for one, Armenian for the other, one mail each.
        await set_language(sm, "second@south.example", "en")
        review = f"/dashboard/rounds/{rnd.round_id}/schools/{rnd.south.school_id}"
        assert (await post_form(client, f"{review}/revoke", {}, review)).status == 303
        await client.app[keys.NOTIFIER].idle()
        await sink.wait_for(3)
        sent = {m["Content-Language"]: m for m in sink.messages[1:]}
        assert sorted(sent) == ["en", "hy"]
        assert sent["en"]["To"] == "second@south.example"
        assert "revoked" in sent["en"]["Subject"]
        assert f"/verify/{decision.token}" in sent["en"].get_content()


async def test_no_smtp_host_means_no_mail_and_no_error(db_engine, tmp_path):
    settings = make_settings(db_url_of(db_engine), data_dir=tmp_path / "data")
    async with running_app(settings) as client:
        sm = client.app[keys.SESSIONMAKER]
        notifier = client.app[keys.NOTIFIER]
        assert not notifier.enabled
        rnd = await submitted_round(client, sm)
        await decide(client, rnd)
        await notifier.idle()
        async with sm.begin() as s:
            assert rnd.south.school_id in await store.latest_decisions(s, rnd.round_id)
            assert await mail_store.list_mail(s) == []
        assert await notifier.tick() == 0 and notifier.sent == 0


async def test_a_failing_mail_server_fails_no_decision_and_is_tried_again(
    db_engine, tmp_path, caplog
):
    port = free_port()
    clock = Clock(datetime.now(UTC))
    settings = make_settings(
        db_url_of(db_engine), data_dir=tmp_path / "data", **mail_settings(port)
    )
    async with running_app(settings, mail_loop=False, clock=clock) as client:
        sm = client.app[keys.SESSIONMAKER]
        notifier = client.app[keys.NOTIFIER]
        rnd = await submitted_round(client, sm)
        with caplog.at_level(logging.WARNING, logger="backend.certification.notices"):
            review = await decide(client, rnd)
            await notifier.idle()
        assert (await client.get(review)).status == 200
        async with sm.begin() as s:
            assert rnd.south.school_id in await store.latest_decisions(s, rnd.round_id)
            (row,) = await mail_store.list_mail(s)
        assert (row.status, row.attempts, row.error) == ("pending", 1, "SMTPConnectError")
        assert "attempt 1 failed (SMTPConnectError); trying again in 60 s" in caplog.text
        # Not again before its backoff; after it, with the server up, it goes out once.
        assert await notifier.send_due() == 0
        async with smtp_sink() as sink:
            notifier.config = replace(notifier.config, port=sink.port)
            clock.now += timedelta(seconds=backoff(1) + 1)
            assert await notifier.send_due() == 1
            assert await notifier.send_due() == 0
            assert len(sink.messages) == 1
        async with sm.begin() as s:
            (row,) = await mail_store.list_mail(s)
        assert (row.status, row.attempts) == ("sent", 2)
        # A server that stays down: the revocation's mail is tried MAX_ATTEMPTS times, then
        # given up with an error in the log; the revocation stands.
        with caplog.at_level(logging.WARNING, logger="backend.certification.notices"):
            assert (await post_form(client, f"{review}/revoke", {}, review)).status == 303
            await notifier.idle()
            for attempt in range(1, MAX_ATTEMPTS):
                clock.now += timedelta(seconds=backoff(attempt) + 1)
                assert await notifier.send_due() == 0
        async with sm.begin() as s:
            _first, row = await mail_store.list_mail(s)
            decision = (await store.latest_decisions(s, rnd.round_id))[rnd.south.school_id]
        assert decision.revoked_at is not None
        assert (row.kind, row.status, row.attempts) == ("revocation", "failed", MAX_ATTEMPTS)
        assert f"attempt {MAX_ATTEMPTS} failed (SMTPConnectError); giving up" in caplog.text
        clock.now += timedelta(days=1)
        assert await notifier.send_due() == 0


# --- deadline reminders ------------------------------------------------------------------


async def accreditation(sm, client, today: date):
    """An agency with two accreditation rounds listing south and north (north has submitted
    to the first), due in 10 days and 3 days, and one overdue since yesterday; west is in
    none. Coordinators: coord@south, coord@north, coord@west."""
    south = await seed_school(sm, slug="south", name="South College", roles=["learner"])
    north = await seed_school(sm, slug="north", name="North College", roles=["learner"])
    west = await seed_school(sm, slug="west", name="West College", roles=["learner"])
    for slug, seeded in (("south", south), ("north", north), ("west", west)):
        await add_user(client, f"coord@{slug}.example", seeded.school_id)
    pair = [south.school_id, north.school_id]
    async with sm.begin() as s:
        agency = await store.create_agency(s, "National QA Agency")
        first = await store.create_round(
            s, agency.id, "Accreditation 2027", "accreditation", today + timedelta(10), False, pair
        )
        second = await store.create_round(
            s, agency.id, "Late round", "accreditation", today + timedelta(3), False, pair
        )
        gone = await store.create_round(
            s, agency.id, "Missed round", "accreditation", today - timedelta(1), False, pair
        )
        for rnd in (first, second, gone):
            await store.add_submission(
                s, rnd.id, north.school_id, north.cycle_id, "{}", "0" * 64, None
            )
    return south, north, west, first.id, second.id, gone.id


def to_whom(sink) -> list[tuple[str, str]]:
    return [(m["To"], m["Subject"]) for m in sink.messages]


async def test_deadline_reminders_go_once_per_offset_to_schools_that_have_not_submitted(
    db_engine, tmp_path
):
    today = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    clock = Clock(today)
    async with smtp_sink() as sink:
        settings = make_settings(
            db_url_of(db_engine), data_dir=tmp_path / "data", **mail_settings(sink.port)
        )
        async with running_app(settings, mail_loop=False, clock=clock) as client:
            sm = client.app[keys.SESSIONMAKER]
            notifier = client.app[keys.NOTIFIER]
            south, _north, _west, first, second, _gone = await accreditation(
                sm, client, today.date()
            )
            # 10 days before the first round's deadline: its 14-day reminder; 3 days before
            # the second's: only its 7-day one (the 14-day one is recorded as skipped).
            assert await notifier.tick() == 2
            assert sorted(to_whom(sink)) == [
                ("coord@south.example", "Accreditation 2027: 10 days left to submit"),
                ("coord@south.example", "Late round: 3 days left to submit"),
            ]
            body = sink.messages[0].get_content()
            assert "http://guidance.example/dashboard/schools/south/certification#round-" in body
            async with sm.begin() as s:
                rows = {
                    (r.round_id, r.days_before): r.status for r in await mail_store.list_mail(s)
                }
            assert rows == {
                (first, 14): "sent",
                (second, 14): "skipped",
                (second, 7): "sent",
            }
            # The same day again, and a restarted server (a new notifier): nothing new.
            assert await notifier.tick() == 0
            again = type(notifier)(sm, notifier.config, notifier.base_url, clock=clock)
            assert await again.tick() == 0
            # Two days on: the second round's 1-day reminder; a day later, the first's 7-day one.
            clock.now += timedelta(days=2)
            assert await again.tick() == 1
            assert to_whom(sink)[-1] == ("coord@south.example", "Late round: 1 day left to submit")
            clock.now += timedelta(days=1)
            assert await notifier.tick() == 1
            assert to_whom(sink)[-1] == (
                "coord@south.example",
                "Accreditation 2027: 7 days left to submit",
            )
            assert await notifier.tick() == 0
            assert len(sink.messages) == 4
            assert all(m["To"] == "coord@south.example" for m in sink.messages)
            # Once south submits, it hears no more of that round.
            async with sm.begin() as s:
                await store.add_submission(
                    s, first, south.school_id, south.cycle_id, "{}", "1" * 64, None
                )
            clock.now += timedelta(days=6)  # 1 day before the first round's deadline
            assert await notifier.tick() == 0


async def test_the_dashboard_counts_the_deadlines_down(db_engine, tmp_path):
    settings = make_settings(db_url_of(db_engine), data_dir=tmp_path / "data")
    async with running_app(settings) as client:
        sm = client.app[keys.SESSIONMAKER]
        today = datetime.now(UTC).date()
        south, *_ = await accreditation(sm, client, today)
        assert (await login(client, "coord@south.example")).status == 303
        for path in ("/dashboard/home", "/dashboard/schools/south/certification"):
            page = await (await client.get(path)).text()
            assert "Accreditation 2027" in page and "10 days left" in page, path
            assert "3 days left" in page
            assert "overdue by 1 day" in page and "Missed round" in page
        assert "Submit a cycle" in await (await client.get("/dashboard/home")).text()
        await logout(client)
        # A peer of the school is told the deadline but not offered to submit (it may not).
        await add_user(client, "peer@south.example", south.school_id, role="peer")
        assert (await login(client, "peer@south.example")).status == 303
        page = await (await client.get("/dashboard/home")).text()
        assert "10 days left" in page and "Submit a cycle" not in page
        await logout(client)
        # The school that submitted is not counted down.
        assert (await login(client, "coord@north.example")).status == 303
        page = await (await client.get("/dashboard/home")).text()
        assert "days left" not in page and "overdue" not in page
        # In Armenian too.
        await set_language(sm, "coord@south.example", "hy")
        await logout(client)
        assert (await login(client, "coord@south.example")).status == 303
        page = await (await client.get("/dashboard/home")).text()
        assert "Accreditation 2027" in page and "days left" not in page
        assert "մնացել է 10 օր" in page and "ուշանում է 1 օրով" in page  # 10 left; 1 overdue


async def test_a_decision_through_the_api_mails_the_coordinators_too(db_engine, tmp_path):
    async with submitted_with_mail(db_engine, tmp_path) as (sink, client, sm, rnd):
        await set_language(sm, "second@south.example", "uk")
        base = f"/api/rounds/{rnd.round_id}/schools/{rnd.south.school_id}"
        headers = await api_headers(client, "board@agency.example")
        resp = await client.post(base + "/decision", json=DECISION, headers=headers)
        assert resp.status == 201, await resp.text()
        await client.app[keys.NOTIFIER].idle()
        resp = await client.post(base + "/decision/revoke", headers=headers)
        assert resp.status == 200, await resp.text()
        await client.app[keys.NOTIFIER].idle()
        await sink.wait_for(4)
        got = sorted((m["Content-Language"], m["To"]) for m in sink.messages)
        assert got == [
            ("hy", "coord@south.example"),
            ("hy", "coord@south.example"),
            ("uk", "second@south.example"),
            ("uk", "second@south.example"),
        ]
        uk = [m for m in sink.messages if m["Content-Language"] == "uk"]
        assert uk[0]["Subject"].startswith("Рішення щодо South College")
        assert "відкликано" in uk[1]["Subject"]


async def test_the_server_loop_sends_the_reminders_by_itself(db_engine, tmp_path):
    """With SMTP_HOST the running server looks every MAIL_INTERVAL_SECONDS: nobody calls
    `tick`, and the reminder arrives."""
    async with smtp_sink() as sink:
        settings = make_settings(
            db_url_of(db_engine),
            data_dir=tmp_path / "data",
            **mail_settings(sink.port, mail_interval_seconds=1),
        )
        async with running_app(settings) as client:
            await accreditation(client.app[keys.SESSIONMAKER], client, datetime.now(UTC).date())
            await sink.wait_for(2)
            assert sorted(m["Subject"] for m in sink.messages) == [
                "Accreditation 2027: 10 days left to submit",
                "Late round: 3 days left to submit",
            ]
