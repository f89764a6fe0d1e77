"""Assessors open the school's evidence files (issue 14, the evidence portfolio): a file is
frozen with the submission (its bytes copied aside under their SHA-256, which the
snapshot and so the submission's content hash hold), served as frozen to the round
agency's board, the assessors assigned to the school and the school's coordinator, and
to nobody else (404); deleting or replacing the item afterwards changes nothing of what
the assessors read."""

from __future__ import annotations

import hashlib
import io
import json

import pytest
from aiohttp import FormData

from backend.web import keys
from storage import certification as store
from storage import evidence_files, schools
from tests.apptools import db_url_of, make_settings, running_app
from tests.backend.certification.support import latest, logout, set_up_round, submit
from tests.backend.dashboard.support import csrf_of, login, post_form

PLAN = b"%PDF-1.7\n% the careers plan as submitted\n%%EOF\n"
LATER = b"%PDF-1.7\n% a later plan, uploaded after the submission\n%%EOF\n"


@pytest.fixture
def settings(db_engine, tmp_path):
    return make_settings(db_url_of(db_engine), data_dir=tmp_path / "data")


async def upload(client, cycle_id: int, key: str, filename: str, data: bytes) -> None:
    form = FormData()
    form.add_field("csrf", await csrf_of(client, "/dashboard/account"))
    form.add_field("file", io.BytesIO(data), filename=filename, content_type="text/plain")
    form.add_field("url", "")
    form.add_field("note", "as submitted")
    resp = await client.post(f"/dashboard/cycles/{cycle_id}/indicators/{key}/evidence", data=form)
    assert resp.status == 200 and "Evidence added" in await resp.text()


async def as_user(client, email: str | None) -> None:
    await logout(client)
    client.session.cookie_jar.clear()
    if email is not None:
        assert (await login(client, email)).status == 303, email


async def submitted_world(client):
    """South uploads a file for its rated indicator and submits; the board assigns a1."""
    sm = client.app[keys.SESSIONMAKER]
    rnd = await set_up_round(client, sm)
    await as_user(client, "coord@south.example")
    await upload(client, rnd.south.cycle_id, rnd.key, "../../careers plan 2027.pdf", PLAN)
    async with sm.begin() as s:
        (item,) = [
            e for e in await schools.list_evidence(s, rnd.south.cycle_id) if e.kind == "file"
        ]
    await submit(client, rnd)
    await as_user(client, "board@agency.example")
    async with sm.begin() as s:
        ids = {u.email: u.id for _m, u in await store.list_members(s, rnd.agency_id)}
    r = f"/dashboard/rounds/{rnd.round_id}"
    resp = await post_form(
        client,
        r + "/assign",
        {"school_id": rnd.south.school_id, "assessor_id": ids["a1@agency.example"]},
        r,
    )
    assert resp.status == 303
    review = f"{r}/schools/{rnd.south.school_id}"
    return rnd, item, review, f"{review}/evidence/{item.id}"


async def test_the_submission_freezes_the_file_and_its_hash_covers_the_bytes(settings):
    async with running_app(settings) as client:
        sm = client.app[keys.SESSIONMAKER]
        rnd, item, _review, _url = await submitted_world(client)
        (sub,) = await latest(sm, rnd.round_id, rnd.south.school_id)
        snap = json.loads(sub.snapshot)
        assert snap["format"] == 2
        (entry,) = [e for e in snap["evidence"] if e["kind"] == "file"]
        digest = hashlib.sha256(PLAN).hexdigest()
        assert entry["id"] == item.id and entry["sha256"] == digest
        assert entry["size"] == len(PLAN) and entry["content_type"] == "application/pdf"
        assert entry["filename"] == "careers plan 2027.pdf"
        # The submission's hash is the snapshot's, which names the file's digest.
        assert sub.content_hash == hashlib.sha256(sub.snapshot.encode()).hexdigest()
        frozen = evidence_files.frozen_path(settings.data_dir, digest)
        assert frozen.read_bytes() == PLAN
        live = evidence_files.stored_path(settings.data_dir, item.stored_name)
        assert live != frozen and live.read_bytes() == PLAN


READERS = [
    ("board@agency.example", True),  # the round agency's board
    ("a1@agency.example", True),  # assigned to south in the round
    ("coord@south.example", True),  # the school's own coordinator
    ("a2@agency.example", False),  # an assessor of the agency, not assigned to south
    ("other-assessor@agency.example", False),  # an assessor of another agency
    ("other-board@agency.example", False),  # another agency's board
    ("coord@west.example", False),  # another school's coordinator
]


async def test_who_may_open_a_frozen_evidence_file(settings):
    async with running_app(settings) as client:
        _rnd, _item, review, url = await submitted_world(client)
        for email, reads in READERS:
            await as_user(client, email)
            resp = await client.get(url, allow_redirects=False)
            if not reads:
                assert resp.status == 404, email
                assert PLAN not in await resp.read()
                continue
            assert resp.status == 200, email
            assert await resp.read() == PLAN
            assert resp.headers["Content-Type"] == "application/pdf"
            assert resp.headers["Content-Disposition"].startswith(
                'attachment; filename="careers plan 2027.pdf"'
            ), email
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            assert "sandbox" in resp.headers["Content-Security-Policy"]
            if email != "coord@south.example":  # the review page links it
                page = await (await client.get(review)).text()
                assert f'href="{url}"' in page and "careers plan 2027.pdf" in page, email


async def test_nobody_logged_out_gets_the_file(settings):
    async with running_app(settings) as client:
        _rnd, _item, _review, url = await submitted_world(client)
        await as_user(client, None)
        resp = await client.get(url, allow_redirects=False)
        assert resp.status in (302, 303, 401)
        assert resp.headers.get("Location", "/login").startswith("/login")
        assert PLAN not in await resp.read()


async def test_the_frozen_bytes_outlive_a_deleted_or_replaced_file(settings):
    async with running_app(settings) as client:
        sm = client.app[keys.SESSIONMAKER]
        rnd, item, review, url = await submitted_world(client)
        # The coordinator deletes the item (and its file) and uploads another in its place.
        await as_user(client, "coord@south.example")
        c = f"/dashboard/cycles/{rnd.south.cycle_id}"
        resp = await post_form(client, f"{c}/evidence/{item.id}/delete", {})
        assert resp.status == 303
        assert not evidence_files.stored_path(settings.data_dir, item.stored_name).exists()
        await upload(client, rnd.south.cycle_id, rnd.key, "careers plan 2027.pdf", LATER)
        assert (await client.get(url)).status == 200  # the school still reads what it sent
        (sub,) = await latest(sm, rnd.round_id, rnd.south.school_id)
        (entry,) = [e for e in json.loads(sub.snapshot)["evidence"] if e["kind"] == "file"]
        for email in ("a1@agency.example", "board@agency.example"):
            await as_user(client, email)
            resp = await client.get(url)
            assert resp.status == 200
            body = await resp.read()
            assert body == PLAN and hashlib.sha256(body).hexdigest() == entry["sha256"]
        # The review shows the submitted version's file, not the new upload.
        page = await (await client.get(review)).text()
        assert f'href="{url}"' in page
        async with sm.begin() as s:
            (new,) = [
                e for e in await schools.list_evidence(s, rnd.south.cycle_id) if e.kind == "file"
            ]
        if new.id != item.id:  # SQLite may give the new item the deleted one's id
            assert (await client.get(f"{review}/evidence/{new.id}")).status == 404  # not sent
        # A frozen copy whose bytes no longer match its digest is not served.
        evidence_files.frozen_path(settings.data_dir, entry["sha256"]).write_bytes(LATER)
        resp = await client.get(url)
        assert resp.status == 404 and LATER not in await resp.read()


def test_the_frozen_store_names_files_by_their_digest(tmp_path):
    stored = evidence_files.new_stored_name()
    evidence_files.stored_path(tmp_path, stored).write_bytes(PLAN)
    digest, size = evidence_files.freeze(tmp_path, stored)
    assert digest == hashlib.sha256(PLAN).hexdigest() and size == len(PLAN)
    assert evidence_files.freeze(tmp_path, stored) == (digest, size)  # idempotent
    assert evidence_files.read_frozen(tmp_path, digest) == PLAN
    assert evidence_files.freeze(tmp_path, evidence_files.new_stored_name()) is None  # gone
    assert evidence_files.read_frozen(tmp_path, "0" * 64) is None
    assert evidence_files.read_frozen(tmp_path, "../../etc/passwd") is None
    with pytest.raises(ValueError):
        evidence_files.frozen_path(tmp_path, "../" + digest)
    assert sorted(p.name for p in evidence_files.frozen_dir(tmp_path).iterdir()) == [digest]
