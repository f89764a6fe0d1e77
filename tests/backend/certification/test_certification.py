"""Certification and accreditation: the migration, the pure rules (kappa, statuses), and a
whole round on the app with each reader's reach."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import subprocess
from datetime import date, timedelta
from types import SimpleNamespace

import pytest
import segno
from PIL import Image
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from backend.certification.kappa import weighted_kappa
from backend.certification.service import (
    MIN_PAIRS,
    certificate_state,
    school_status,
    side_by_side,
)
from backend.web import keys
from storage import certification as store
from storage.db import create_engine
from storage.models import Decision
from tests.apptools import running_app
from tests.backend.certification.support import (
    SECRET_REMARK,
    SECRET_SELF,
    latest,
    logout,
    set_up_round,
    submit,
)
from tests.backend.dashboard.support import api_headers, login, other_than, post_form
from tests.backend.reporting.support import pdf_text
from tests.conftest import unavailable
from tests.storage.support import migration_up_and_down

NEW_TABLES = {
    "agency",
    "agency_member",
    "cert_round",
    "round_school",
    "submission",
    "assignment",
    "review_rating",
    "evidence_request",
    "decision",
    "audit_event",
}


# --- pure -------------------------------------------------------------------------------


def test_weighted_kappa_known_values():
    # Perfect agreement, and a constant shift that quadratic weights penalise.
    assert weighted_kappa([0, 1, 2, 3, 4], [0, 1, 2, 3, 4]) == pytest.approx(1.0)
    # Worked by hand: a = [0,1,2,3], b = [1,2,3,4] (k = 5, weights (i-j)^2/16).
    # Observed disagreement: 4 pairs x 1/16 = 0.25. Expected: sum over i in 0..3, j in 1..4
    # of (i-j)^2/16 * 1/4 (each a_i with each b_j once) = 56/64 = 0.875.
    # Kappa = 1 - 0.25/0.875 = 5/7.
    assert weighted_kappa([0, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(5 / 7)
    # Independent raters: kappa 0.
    assert weighted_kappa([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(0.0)


def test_weighted_kappa_matches_the_moment_formula():
    """Quadratic weighted kappa = 2 cov(a, b) / (var a + var b + (mean a - mean b)^2)."""
    a = [4, 3, 3, 2, 1, 0, 2, 4, 3, 1]
    b = [4, 2, 3, 2, 2, 1, 2, 3, 3, 0]
    n = len(a)
    ma, mb = sum(a) / n, sum(b) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b, strict=True)) / n
    va = sum((x - ma) ** 2 for x in a) / n
    vb = sum((y - mb) ** 2 for y in b) / n
    assert weighted_kappa(a, b) == pytest.approx(2 * cov / (va + vb + (ma - mb) ** 2))


def test_weighted_kappa_undefined_and_refused():
    assert weighted_kappa([], []) is None
    assert weighted_kappa([2, 2], [2, 2]) is None  # no variation at all: undefined
    with pytest.raises(ValueError):
        weighted_kappa([1], [1, 2])
    with pytest.raises(ValueError):
        weighted_kappa([5], [1])


def test_side_by_side_shows_rated_rows_and_needs_enough_pairs():
    inds = [{"key": f"K{i}", "id": f"K-{i}", "kind": "EXTENT", "self": i % 5} for i in range(8)] + [
        {"key": "N", "id": "N", "kind": "NUMBER", "self": 12}
    ]
    snap = {"report": {"indicators": inds}}
    agree = SimpleNamespace(agrees=True, value=None)

    def other(v):
        return SimpleNamespace(agrees=False, value=v)

    first = {f"K{i}": agree for i in range(4)}
    second = {"K0": agree, "K1": other(0), "K2": agree, "K3": agree, "K7": other(2)}
    rows, kappa, n = side_by_side(snap, first, second)
    assert [r["key"] for r in rows] == ["K0", "K1", "K2", "K3", "K7"]  # rated by someone
    assert rows[1] == {"key": "K1", "id": "K-1", "self": 1, "a": 1, "b": 0}
    assert n == 4 and kappa is None  # fewer than MIN_PAIRS indicators rated by both
    first["K4"] = agree
    second["K4"] = agree
    rows, kappa, n = side_by_side(snap, first, second)
    assert n == MIN_PAIRS == 5
    # a = school's 0,1,2,3,4; b = 0,0,2,3,4.
    assert kappa == pytest.approx(weighted_kappa([0, 1, 2, 3, 4], [0, 0, 2, 3, 4]))


def test_school_status():
    d, today = date(2027, 3, 1), date(2027, 2, 1)
    late = d + timedelta(days=1)
    kw = {"assigned": False, "decided": False, "deadline": d}
    assert school_status(submitted=False, today=today, **kw) == "not_started"
    assert school_status(submitted=False, today=late, **kw) == "overdue"
    assert school_status(submitted=True, today=late, **kw) == "submitted"
    kw["assigned"] = True
    assert school_status(submitted=True, today=today, **kw) == "under_review"
    kw["decided"] = True
    assert school_status(submitted=True, today=today, **kw) == "decided"


def test_certificate_state():
    d = Decision(outcome="certified", valid_from=date(2027, 1, 1), valid_until=date(2029, 1, 1))
    assert certificate_state(d, date(2028, 1, 1)) == "valid"
    assert certificate_state(d, date(2029, 1, 2)) == "expired"
    d.revoked_at = d.valid_from
    assert certificate_state(d, date(2028, 1, 1)) == "revoked"
    assert certificate_state(Decision(outcome="not_yet"), date(2028, 1, 1)) == "not_certified"


# --- the migration -------------------------------------------------------------------------


async def test_certification_migration_up_and_down(empty_db_url: str):
    url = empty_db_url
    await migration_up_and_down(url, "certification", NEW_TABLES)
    if url.startswith("postgresql"):  # the trail is append-only in the database itself
        engine = create_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO audit_event (agency_id, actor, action, detail, at) "
                        "VALUES (1, 'x', 'y', '{}', now())"
                    )
                )
            for statement in ("UPDATE audit_event SET actor = 'z'", "DELETE FROM audit_event"):
                with pytest.raises(DBAPIError, match="append-only"):
                    async with engine.begin() as conn:
                        await conn.execute(text(statement))
        finally:
            await engine.dispose()


# --- a round on the app -----------------------------------------------------------------


def qr_modules(url: str) -> list[list[bool]]:
    """The dark modules of the QR code the certificate draws for `url`."""
    return [[bool(v) for v in row] for row in segno.make(url, error="m").matrix]


def qr_in_pdf(body: bytes, tmp_path) -> list[list[bool]]:
    """The QR image embedded in the PDF, read back module by module (8 px a module, 2 of
    quiet zone, as drawn)."""
    if shutil.which("pdfimages") is None:
        unavailable("pdfimages", "is not installed (`make system-deps` installs poppler-utils)")
    path = tmp_path / "certificate.pdf"
    path.write_bytes(body)
    subprocess.run(["pdfimages", "-png", str(path), str(tmp_path / "img")], check=True, timeout=60)
    image = Image.open(sorted(tmp_path.glob("img-*.png"))[0]).convert("L")
    size = image.width // 8 - 4
    return [
        [image.getpixel((8 * (x + 2) + 4, 8 * (y + 2) + 4)) < 128 for x in range(size)]
        for y in range(size)
    ]


async def test_submission_is_frozen_gated_versioned_and_hashed(settings):
    async with running_app(settings) as client:
        sm = client.app[keys.SESSIONMAKER]
        rnd = await set_up_round(client, sm)
        assert (await login(client, "coord@south.example")).status == 303
        page = await (await client.get("/dashboard/schools/south/certification")).text()
        assert "Certification 2027" in page and "Other certification" in page
        await submit(client, rnd)
        (v1,) = await latest(sm, rnd.round_id, rnd.south.school_id)
        assert v1.version == 1
        assert v1.content_hash == hashlib.sha256(v1.snapshot.encode()).hexdigest()
        snap = json.loads(v1.snapshot)
        # Only what passed the gate: figures, no respondents' free text, no self notes.
        assert SECRET_REMARK not in v1.snapshot and SECRET_SELF not in v1.snapshot
        assert "comments" not in snap["report"]
        ind = next(i for i in snap["report"]["indicators"] if i["key"] == rnd.key)
        assert ind["self"] == 3 and ind["roles"]["learner"]["n"] == 5
        assert ind["roles"]["learner"]["mean"] == pytest.approx(2.2)
        assert snap["evidence"][0]["url"] == "https://example.org/plan"
        # A new submission is a new version; the old one stays as it was.
        await submit(client, rnd)
        v2, old = await latest(sm, rnd.round_id, rnd.south.school_id)
        assert (v2.version, old.version) == (2, 1)
        assert old.snapshot == v1.snapshot and old.content_hash == v1.content_hash
        page = await (await client.get("/dashboard/schools/south/certification")).text()
        assert "version 2" in page and v1.content_hash[:16] in page
        # Another school's coordinator cannot submit south's cycle.
        await logout(client)
        assert (await login(client, "coord@west.example")).status == 303
        resp = await post_form(
            client,
            "/dashboard/schools/south/certification/submit",
            {"round_id": rnd.round_id, "cycle_id": rnd.south.cycle_id},
        )
        assert resp.status == 404
        assert len(await latest(sm, rnd.round_id, rnd.south.school_id)) == 2


async def test_a_whole_round(settings, tmp_path):
    async with running_app(settings) as client:
        sm = client.app[keys.SESSIONMAKER]
        rnd = await set_up_round(client, sm)
        assert (await login(client, "coord@south.example")).status == 303
        await submit(client, rnd)
        await logout(client)

        r = f"/dashboard/rounds/{rnd.round_id}"
        review = f"{r}/schools/{rnd.south.school_id}"
        assert (await login(client, "board@agency.example")).status == 303
        page = await (await client.get(r)).text()
        assert "South College" in page and "submitted" in page
        async with sm.begin() as s:
            ids = {u.email: u.id for _m, u in await store.list_members(s, rnd.agency_id)}
        # Conflict: near@ works at north, in south's cluster (the round excludes it).
        resp = await post_form(
            client,
            r + "/assign",
            {"school_id": rnd.south.school_id, "assessor_id": ids["near@agency.example"]},
            r,
        )
        assert resp.status == 303
        assert "cluster" in await (await client.get(r)).text()
        for email in ("a1@agency.example", "a2@agency.example"):
            resp = await post_form(
                client,
                r + "/assign",
                {"school_id": rnd.south.school_id, "assessor_id": ids[email]},
                r,
            )
            assert resp.status == 303
        async with sm.begin() as s:
            assigned = {u.email for _a, u in await store.list_assignments(s, rnd.round_id)}
        assert assigned == {"a1@agency.example", "a2@agency.example"}
        await logout(client)

        # Assessor 1 agrees; assessor 2 proposes 1 with a reason and asks for evidence.
        assert (await login(client, "a1@agency.example")).status == 303
        page = await (await client.get(review)).text()
        assert "https://example.org/plan" in page and SECRET_REMARK not in page
        assert SECRET_SELF not in page
        resp = await post_form(
            client, f"{review}/indicators/{rnd.key}/rating", {"verdict": "agree"}, review
        )
        assert resp.status == 303
        await logout(client)
        assert (await login(client, "a2@agency.example")).status == 303
        no_reason = await post_form(
            client,
            f"{review}/indicators/{rnd.key}/rating",
            {"verdict": "other", "value": "1"},
            review,
        )
        assert no_reason.status == 303
        assert "Give a reason" in await (await client.get(review)).text()
        await post_form(
            client,
            f"{review}/indicators/{rnd.key}/rating",
            {"verdict": "other", "value": "1", "reason": "Only one workshop found"},
            review,
        )
        await post_form(
            client,
            f"{review}/indicators/{rnd.key}/request",
            {"question": "Please add the workshop attendance lists"},
            review,
        )
        await logout(client)

        # The coordinator answers in the product.
        assert (await login(client, "coord@south.example")).status == 303
        page = await (await client.get("/dashboard/schools/south/certification")).text()
        assert "Please add the workshop attendance lists" in page
        async with sm.begin() as s:
            (req,) = await store.list_requests(s, rnd.round_id, rnd.south.school_id)
        answer = f"/dashboard/schools/south/certification/requests/{req.id}/answer"
        resp = await post_form(
            client,
            answer,
            {"answer": "Added to the portfolio under VL-1"},
            "/dashboard/schools/south/certification",
        )
        assert resp.status == 303
        await logout(client)

        # The board: both side by side with their kappa, the request and its answer.
        assert (await login(client, "board@agency.example")).status == 303
        page = await (await client.get(review)).text()
        assert "Weighted kappa" in page or "No agreement figure yet" in page
        assert "Added to the portfolio under VL-1" in page
        resp = await post_form(
            client,
            f"{review}/decision",
            {
                "outcome": "conditions",
                "conditions": "Document the workshops",
                "valid_from": "2027-01-01",
                "valid_until": "2030-01-01",
            },
            review,
        )
        assert resp.status == 303
        async with sm.begin() as s:
            decision = (await store.latest_decisions(s, rnd.round_id))[rnd.south.school_id]
        assert decision.outcome == "conditions"
        assert "decided" in await (await client.get(r)).text()
        # The overview and the audit trail, exported.
        overview = await client.get(r + "/overview.csv")
        assert overview.status == 200
        rows = list(csv.reader(io.StringIO((await overview.read()).decode("utf-8-sig"))))
        assert rows[1][0] == "South College" and rows[1][1] == "decided"
        assert (await client.get(r + "/overview.xlsx")).status == 200
        audit = await client.get(r + "/audit.csv")
        text = (await audit.read()).decode("utf-8-sig")
        actions = [row[2] for row in csv.reader(io.StringIO(text))][1:]
        for action in (
            "submission",
            "assessor assigned",
            "rating",
            "evidence requested",
            "evidence request answered",
            "decision",
        ):
            assert action in actions, action
        assert "Only one workshop found" in text and "Added to the portfolio under VL-1" in text
        await logout(client)

        # The school sees the decision; the certificate and its verification page.
        assert (await login(client, "coord@south.example")).status == 303
        page = await (await client.get("/dashboard/schools/south/certification")).text()
        assert "certified with conditions" in page and "Document the workshops" in page
        home = await (await client.get("/dashboard/schools/south")).text()
        assert "Certification 2027: certified with conditions." in home
        pdf = await client.get(f"{review}/certificate.pdf")
        body = await pdf.read()
        assert pdf.status == 200 and body.startswith(b"%PDF")
        url = f"http://{client.host}:{client.port}/verify/{decision.token}"
        assert qr_in_pdf(body, tmp_path) == qr_modules(url)  # the QR code is of the link
        assert url in pdf_text(body, tmp_path).replace("\n", "")
        await logout(client)
        verify = await (await client.get(f"/verify/{decision.token}")).text()
        assert "South College" in verify and "Certification 2027" in verify
        assert "Document the workshops" not in verify  # the public page shows no more
        assert (await client.get("/verify/" + "x" * 32)).status == 404
        # The board revokes it: the verification page says so, and the trail has it.
        assert (await login(client, "board@agency.example")).status == 303
        assert (await post_form(client, f"{review}/revoke", {}, review)).status == 303
        verify = await (await client.get(f"/verify/{decision.token}")).text()
        assert "revoked" in verify and "South College" in verify
        audit = (await (await client.get(r + "/audit.csv")).read()).decode("utf-8-sig")
        assert "certificate revoked" in audit


async def test_each_reader_reaches_only_what_its_role_may(settings):
    async with running_app(settings) as client:
        sm = client.app[keys.SESSIONMAKER]
        rnd = await set_up_round(client, sm)
        assert (await login(client, "coord@south.example")).status == 303
        await submit(client, rnd)
        await submit(client, rnd, rnd.other_round_id)
        await logout(client)
        assert (await login(client, "coord@west.example")).status == 303
        await submit(client, rnd, slug="west")
        await logout(client)
        assert (await login(client, "board@agency.example")).status == 303
        async with sm.begin() as s:
            ids = {u.email: u.id for _m, u in await store.list_members(s, rnd.agency_id)}
        r = f"/dashboard/rounds/{rnd.round_id}"
        await post_form(
            client,
            r + "/assign",
            {"school_id": rnd.south.school_id, "assessor_id": ids["a1@agency.example"]},
            r,
        )
        await logout(client)

        assert (await login(client, "a1@agency.example")).status == 303
        c = f"/dashboard/cycles/{rnd.south.cycle_id}"
        # No raw answers, no free text: none of the school's own pages or exports.
        paths = (
            c,
            c + "/self-assessment",
            c + f"/indicators/{rnd.key}",
            c + "/export.json",
            c + "/export.csv",
            "/dashboard/schools/south",
            "/dashboard/schools/south/certification",
            f"/api/v1/cycles/{rnd.south.cycle_id}/report",
        )
        assert await other_than(client, paths, 401, 404) == {}
        # Not another school of the same round (west: not assigned), not the board's pages.
        assert (await client.get(f"{r}/schools/{rnd.west.school_id}")).status == 404
        assert (await client.get(r + "/audit")).status == 404
        assert (await client.get(r + "/overview.csv")).status == 404
        assert (await client.get(f"/dashboard/agencies/{rnd.agency_id}")).status == 404
        page = await (await client.get(r)).text()
        assert "South College" in page and "West College" not in page
        # Not another agency's round, school or page.
        o = f"/dashboard/rounds/{rnd.other_round_id}"
        paths = (
            o,
            f"{o}/schools/{rnd.south.school_id}",
            f"/dashboard/agencies/{rnd.other_agency_id}",
        )
        assert await other_than(client, paths, 404) == {}
        # Its own review page: figures, but no free text and no self notes.
        page = await (await client.get(f"{r}/schools/{rnd.south.school_id}")).text()
        assert SECRET_REMARK not in page and SECRET_SELF not in page
        # It cannot decide nor assign.
        resp = await post_form(
            client,
            f"{r}/schools/{rnd.south.school_id}/decision",
            {"outcome": "certified", "valid_from": "2027-01-01", "valid_until": "2028-01-01"},
            r,
        )
        assert resp.status == 403
        resp = await post_form(
            client,
            r + "/assign",
            {"school_id": rnd.west.school_id, "assessor_id": ids["a1@agency.example"]},
            r,
        )
        assert resp.status == 403
        await logout(client)
        # The other agency's board does not see this agency's round.
        assert (await login(client, "other-board@agency.example")).status == 303
        assert (await client.get(r)).status == 404
        assert (await client.get(f"{r}/schools/{rnd.south.school_id}")).status == 404
        # A coordinator reaches no round page.
        await logout(client)
        assert (await login(client, "coord@south.example")).status == 303
        assert (await client.get(r)).status == 404


async def test_the_api_gives_each_reader_what_its_pages_give(settings):
    async with running_app(settings) as client:
        sm = client.app[keys.SESSIONMAKER]
        rnd = await set_up_round(client, sm)
        for slug, rid in (
            ("south", rnd.round_id),
            ("south", rnd.other_round_id),
            ("west", rnd.round_id),
        ):
            assert (await login(client, f"coord@{slug}.example")).status == 303
            await submit(client, rnd, rid, slug=slug)
            await logout(client)
        async with sm.begin() as s:
            ids = {u.email: u.id for _m, u in await store.list_members(s, rnd.agency_id)}
        assert (await login(client, "board@agency.example")).status == 303
        r = f"/dashboard/rounds/{rnd.round_id}"
        for email in ("a1@agency.example", "a2@agency.example"):
            await post_form(
                client,
                r + "/assign",
                {"school_id": rnd.south.school_id, "assessor_id": ids[email]},
                r,
            )
        await logout(client)
        api = f"/api/rounds/{rnd.round_id}"
        south = f"{api}/schools/{rnd.south.school_id}"
        west = f"{api}/schools/{rnd.west.school_id}"

        async def get(email: str, path: str):
            resp = await client.get(path, headers=await api_headers(client, email))
            return resp.status, (await resp.json())

        # The board: every school, both assessors, the agreement.
        status, body = await get("board@agency.example", api)
        assert status == 200
        assert {row["school"]["slug"] for row in body["schools"]} == {"south", "west"}
        status, body = await get("board@agency.example", south)
        assert status == 200 and [rv["assessor"] for rv in body["reviews"]] == [
            "a1@agency.example",
            "a2@agency.example",
        ]
        assert body["agreement"]["pairs"] == 0 and body["submissions"][0]["version"] == 1
        # An assessor: its school only, its own review, the snapshot without free text.
        status, body = await get("a1@agency.example", "/api/rounds")
        assert [x["id"] for x in body["rounds"]] == [rnd.round_id]
        status, body = await get("a1@agency.example", api)
        assert [row["school"]["slug"] for row in body["schools"]] == ["south"]
        status, body = await get("a1@agency.example", south)
        assert status == 200 and body["agreement"] is None
        assert [rv["assessor"] for rv in body["reviews"]] == ["a1@agency.example"]
        text = json.dumps(body)
        assert SECRET_REMARK not in text and SECRET_SELF not in text
        assert "comments" not in body["snapshot"]["report"]
        for path in (
            west,
            f"/api/rounds/{rnd.other_round_id}",
            f"/api/rounds/{rnd.other_round_id}/schools/{rnd.south.school_id}",
            f"/api/cycles/{rnd.south.cycle_id}/report",
        ):
            assert (await get("a1@agency.example", path))[0] == 404, path
        # Another agency's board; a school's coordinator: its own row only, no reviews.
        assert (await get("other-board@agency.example", api))[0] == 404
        status, body = await get("coord@west.example", api)
        assert status == 200 and [row["school"]["slug"] for row in body["schools"]] == ["west"]
        assert body["schools"][0]["assessors"] == []
        assert (await get("coord@west.example", south))[0] == 404
        status, body = await get("coord@west.example", west)
        assert status == 200 and body["reviews"] == [] and body["agreement"] is None
        # /api/me names the new roles.
        status, body = await get("a1@agency.example", "/api/me")
        assert body["role"] == "assessor"
