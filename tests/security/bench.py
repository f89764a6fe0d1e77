"""The attacker's bench: two schools with everything a school has, on the real app.

`world` runs each test on SQLite and on PostgreSQL (the `db_engine` fixture). School A
("alpha", whose coordinator we log in as) and school B ("beta", the victim) each have a
coordinator, two cycles, labelled invites, evidence (a link and a file on disk),
self-ratings and responses. Every text of school B carries the marker `Bxq9`, so that a
response leaking B's data is easy to see; school A's texts carry XSS payloads.

School A's open cycle holds the groups the anonymity tests aim at:
- learners: 4 respondents (threshold 5) answer l01 (VL-1) with 4, 3, 2, 2: their
  would-be mean is 2.75 and, beside the self-rating of 1, their would-be gap +1.75;
- parents: 9 respondents (a shown group) answer pa02 (VL-1) and each writes a free-text
  answer with the marker `Pcanary` (9 < the free-text threshold of 10: never shown);
  one more parent "stopped", two answered in Ukrainian (for filter tests);
- teachers: 10 respondents answer t03 (VL-2) and write free text with XSS payloads
  (10 = the free-text threshold: shown).
"""

from __future__ import annotations

import functools
import json
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from backend.dashboard import auth
from backend.dashboard.evidence import evidence_dir, new_stored_name
from backend.dashboard.passwords import hash_password
from backend.web import keys
from conversations.banks import load_banks
from storage import certification, responses, schools
from tests.apptools import AppClient, db_url_of, make_settings, running_app

PASSWORD = "correct horse battery"
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')

# XSS payloads; none of the RAW_MARKERS may appear unescaped in HTML or SVG.
XSS_SCRIPT = '<script>alert("x1")</script>'
XSS_IMG = '"><img src=x onerror=alert(2)>'
XSS_JS = "javascript:alert(3)"
PAYLOAD = f"{XSS_SCRIPT}{XSS_IMG}{XSS_JS}"
RAW_MARKERS = ("<script>alert", "<img src=x", "alert(2)>")

B_MARK = "Bxq9"  # in every text of school B
P_CANARY = "Pcanary"  # free text of the 9 parents: below the free-text threshold

LEARNER_VALUES = (4, 3, 2, 2)  # 4 learners: mean 2.75, suppressed
SECRET_MEAN = 2.75
SELF_VL1 = 1  # the school's rating of VL-1: the learners' would-be gap is +1.75
SECRET_GAP = SECRET_MEAN - SELF_VL1
PARENT_VALUES = (4, 4, 4, 4, 4, 3, 3, 3, 3)  # mean 3.56, shown


@functools.cache
def password_hash() -> str:
    """One argon2 hash of PASSWORD for every account of the run (hashing takes a second)."""
    return hash_password(PASSWORD)


@dataclass
class SchoolData:
    slug: str
    school_id: int
    email: str
    user_id: int
    cycle_id: int  # the open cycle
    old_cycle_id: int  # an earlier, closed one
    invite_ids: list[int] = field(default_factory=list)
    invite_codes: list[str] = field(default_factory=list)
    evidence_ids: list[int] = field(default_factory=list)  # [link, file]
    token: str = ""
    round_id: int = 0  # its own agency's accreditation round (`own_round`)

    @property
    def api_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class World(AppClient):
    settings: Any
    a: SchoolData
    b: SchoolData


async def respond(
    s: Any,
    cycle_id: int,
    role: str,
    answers: dict[str, int],
    *,
    comments: dict[str, str] | None = None,
    language: str = "en",
    status: str = "completed",
) -> None:
    tag = load_banks()[role].tag
    r = await responses.get_or_create_respondent(s, secrets.token_hex(32))
    resp = await responses.get_or_create_response(
        s, r.id, cycle_id, role, tag, "1.0.0", language, datetime.now(UTC)
    )
    for qid, value in answers.items():
        await responses.upsert_answer(s, resp.id, qid, value=value)
    for qid, text in (comments or {}).items():
        await responses.upsert_comment(s, resp.id, qid, text)
    await responses.set_status(s, resp.id, status)


async def _school(client: TestClient, slug: str, name: str, mark: str, data_dir: Any) -> SchoolData:
    sm = client.app[keys.SESSIONMAKER]
    email = f"coord@{slug}.example"
    async with sm.begin() as s:
        school = await schools.create_school(s, slug, name)
        user = await schools.create_user(s, school.id, email, password_hash())
        old = await schools.create_cycle(s, school.id, f"2024/25 {mark}", "1.0.0", status="closed")
        cycle = await schools.create_cycle(s, school.id, f"2026/27 {mark}", "1.0.0", status="open")
        data = SchoolData(slug, school.id, email, user.id, cycle.id, old.id)
        for cid in (cycle.id, old.id):
            invites = await responses.create_invites(
                s,
                cid,
                "learner",
                count=2,
                max_uses=None,
                expires_at=datetime.now(UTC) + timedelta(days=30),
                label=f"Class 3B {mark}",
            )
            data.invite_ids += [i.id for i in invites]
            data.invite_codes += [i.code for i in invites]
            await schools.upsert_self_rating(
                s, cid, "VL-1", SELF_VL1, None, f"self comment {mark}", "submitted", user.id
            )
            await schools.upsert_self_rating(s, cid, "VL-2", 3, None, None, "draft", user.id)
            link = await schools.add_evidence(
                s, cid, "VL-1", "link", url="https://example.org/plan", note=f"note {mark}"
            )
            stored = new_stored_name()
            (evidence_dir(data_dir) / stored).write_bytes(b"%PDF-1.4 " + mark.encode())
            file = await schools.add_evidence(
                s,
                cid,
                "VL-1",
                "file",
                filename=f"plan {mark[:20]}.pdf".replace("<", "_").replace(">", "_"),
                stored_name=stored,
                content_type="application/pdf",
                size_bytes=20,
                note=f"file note {mark}",
            )
            data.evidence_ids += [link.id, file.id]
    data.token = auth.api_token(client.app[keys.SECRET_KEY], user)
    return data


async def fill_school_a(sm: Any, cycle_id: int) -> None:
    async with sm.begin() as s:
        await _fill_a(s, cycle_id)


async def fill_school_b(sm: Any, cycle_id: int) -> None:
    async with sm.begin() as s:
        await _fill_b(s, cycle_id)


async def _fill_a(sm: Any, cycle_id: int) -> None:
    for v in LEARNER_VALUES:
        await respond(sm, cycle_id, "learner", {"l01": v})
    for i, v in enumerate(PARENT_VALUES):
        await respond(
            sm,
            cycle_id,
            "parent",
            {"pa02": v},
            comments={"pa18": f"{P_CANARY}{i} quiet lynx"},
            language="uk" if i < 2 else "en",
        )
    await respond(sm, cycle_id, "parent", {"pa02": 0}, status="stopped")
    for i in range(10):
        await respond(
            sm, cycle_id, "teacher", {"t03": 3}, comments={"t16": f"Teacher {i} says {PAYLOAD}"}
        )


async def _fill_b(sm: Any, cycle_id: int) -> None:
    for i in range(10):
        await respond(
            sm, cycle_id, "teacher", {"t03": 1, "t01": 2}, comments={"t16": f"{B_MARK} words {i}"}
        )
    for v in (4, 4, 4, 4, 4, 4):
        await respond(sm, cycle_id, "learner", {"l01": v})


@pytest.fixture
def settings(db_engine, tmp_path):
    return make_settings(db_url_of(db_engine), data_dir=tmp_path / "data")


@pytest.fixture
async def world(settings) -> AsyncIterator[World]:
    async with running_app(settings) as client:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        a = await _school(client, "alpha", f"Alpha {PAYLOAD}", PAYLOAD[:60], settings.data_dir)
        b = await _school(client, "beta", f"Beta {B_MARK} School", B_MARK, settings.data_dir)
        sm = client.app[keys.SESSIONMAKER]
        await fill_school_a(sm, a.cycle_id)
        await fill_school_b(sm, b.cycle_id)
        for data, mark in ((a, PAYLOAD[:60]), (b, B_MARK)):
            for cid in (data.cycle_id, data.old_cycle_id):
                await fill_cycle_tables(sm, cid, mark)
            await own_cluster(sm, data.school_id, f"{data.slug} cluster {mark}")
            await own_round(sm, data, mark)
        yield World(client, settings, a, b)


async def own_cluster(sm: Any, school_id: int, name: str) -> None:
    """A review cluster of the school alone (if clusters exist): the other school is not in it."""
    from sqlalchemy import insert

    from storage.models import Base

    tables = Base.metadata.tables
    if "cluster" not in tables or "cluster_member" not in tables:
        return
    async with sm.begin() as s:
        cid = (
            await s.execute(insert(tables["cluster"]).values(name=name[:200]))
        ).inserted_primary_key[0]
        await s.execute(
            insert(tables["cluster_member"]).values(cluster_id=cid, school_id=school_id)
        )


async def own_round(sm: Any, data: SchoolData, mark: str) -> None:
    """An agency of the school's own with an accreditation round listing the school alone,
    its submission, an evidence request and a decision (every text carries the mark)."""
    async with sm.begin() as s:
        agency = await certification.create_agency(s, f"Agency {data.slug} {mark}"[:200])
        rnd = await certification.create_round(
            s,
            agency.id,
            f"Round {mark}"[:200],
            "accreditation",
            datetime.now(UTC).date() + timedelta(days=30),
            True,
            [data.school_id],
        )
        data.round_id = rnd.id
        snapshot = json.dumps({"school": f"{data.slug} {mark}", "report": {"indicators": []}})
        await certification.add_submission(
            s, rnd.id, data.school_id, data.cycle_id, snapshot, "0" * 64, data.user_id
        )
        await certification.ask_evidence(
            s, rnd.id, data.school_id, "VL-1", f"question {mark}", data.user_id
        )
        await certification.add_decision(
            s,
            rnd.id,
            data.school_id,
            "conditions",
            f"conditions {mark}",
            datetime.now(UTC).date(),
            datetime.now(UTC).date() + timedelta(days=365),
            secrets.token_urlsafe(24),
            data.user_id,
        )
        await certification.audit(
            s,
            agency.id,
            None,
            "submission",
            round_id=rnd.id,
            school_id=data.school_id,
            detail={"note": mark},
        )


# --- the browser of a coordinator -------------------------------------------------------


async def csrf_of(client: TestClient, path: str = "/login") -> str:
    resp = await client.get(path)
    assert resp.status == 200, path
    m = CSRF_FIELD.search(await resp.text())
    assert m, f"no CSRF token on {path}"
    return m.group(1)


async def login(client: TestClient, email: str, password: str = PASSWORD, **kw: Any) -> Any:
    token = await csrf_of(client)
    return await client.post(
        "/login",
        data={"csrf": token, "email": email, "password": password},
        allow_redirects=False,
        **kw,
    )


def session_cookie(client: TestClient) -> str | None:
    for c in client.session.cookie_jar:
        if c.key == auth.COOKIE:
            return c.value
    return None


def session_csrf(client: TestClient) -> str:
    """The CSRF token of the client's current session (read from the signed cookie)."""
    raw = session_cookie(client)
    assert raw, "no session cookie"
    data = auth.SessionCodec(client.app[keys.SECRET_KEY]).loads(raw)
    assert data is not None
    return data["csrf"]


def visible(html: str) -> str:
    """An HTML page without inline styles (computed colours are numbers too)."""
    html = re.sub(r"<style\b.*?</style>", " ", html, flags=re.S | re.I)
    return re.sub(r'\sstyle="[^"]*"', " ", html)


def svg_text(svg: str) -> str:
    """The words of an SVG (text, title, desc), not its geometry."""
    parts = re.findall(r"<(text|title|desc|tspan)\b[^>]*>(.*?)</\1>", svg, flags=re.S)
    return "\n".join(p[1] for p in parts)


def number_forms(x: float) -> list[re.Pattern[str]]:
    """Patterns for the ways a figure may be printed: 2.75, 2,75, +2.75 (not inside 12.750)."""
    out = []
    for digits in (2,):
        text = f"{abs(x):.{digits}f}"
        whole, frac = text.split(".")
        out.append(re.compile(rf"(?<![\d.,]){whole}[.,]{frac}(?!\d)"))
    return out


def find_figure(text: str, x: float) -> str | None:
    for pat in number_forms(x):
        m = pat.search(text)
        if m:
            return text[max(0, m.start() - 60) : m.end() + 60]
    return None


# --- rows of tables the bench does not know by name ------------------------------------


def _filler(col: Any, mark: str) -> Any:
    """A value for a required column, by type; `mark` in every text."""
    from datetime import date

    from sqlalchemy import Boolean, Date, DateTime, Float, Integer, String, Text

    t = col.type
    if isinstance(t, Boolean):
        return False
    if isinstance(t, Integer):
        return 1
    if isinstance(t, Float):
        return 1.0
    if isinstance(t, DateTime):
        return datetime.now(UTC)
    if isinstance(t, Date):
        return date.today()
    if isinstance(t, String | Text):
        if col.name == "indicator_key":
            return "VL-1"
        if col.name == "status":
            return "open"
        length = getattr(t, "length", None) or 200
        return f"{mark} {col.name}"[:length]
    raise TypeError(f"no filler for {col.name}: {t!r}")


GENERIC_SKIP = {"response", "invite", "self_rating", "evidence"}  # made by the bench above
# Releases are made by the product from the bench's responses (their rule is under test).
GENERIC_SKIP |= {"release_state", "release_unit", "release_check"}


async def fill_cycle_tables(sm: Any, cycle_id: int, mark: str) -> list[str]:
    """One row in every other table that belongs to a cycle (action items, peer feedback, ...).

    Tables added later are covered too, as long as their required columns are plain values.
    """
    from sqlalchemy import insert

    from storage.models import Base

    made = []
    for table in Base.metadata.sorted_tables:
        if "cycle_id" not in table.c or table.name in GENERIC_SKIP:
            continue
        values: dict[str, Any] = {"cycle_id": cycle_id}
        try:
            for col in table.columns:
                if col.primary_key or col.name in values:
                    continue
                if col.foreign_keys:
                    if not col.nullable:
                        raise TypeError(f"{table.name}.{col.name} needs a row of another table")
                    continue
                texty = col.name in ("text", "title", "note", "owner", "name")
                has_default = col.default is not None or col.server_default is not None
                if not texty and (col.nullable or has_default):
                    continue
                values[col.name] = _filler(col, mark)
        except TypeError:
            continue
        async with sm.begin() as s:
            await s.execute(insert(table).values(**values))
        made.append(table.name)
    return made


def readable(body: bytes, content_type: str = "") -> str:
    """The text of a response body: XLSX parts unzipped, PDF through pdftotext."""
    import io
    import shutil
    import subprocess
    import zipfile

    if body.startswith(b"PK\x03\x04"):
        with zipfile.ZipFile(io.BytesIO(body)) as z:
            return "\n".join(z.read(n).decode("utf-8", "replace") for n in z.namelist())
    if body.startswith(b"%PDF-") and len(body) > 100:
        assert shutil.which("pdftotext"), "pdftotext (poppler-utils) is needed: make system-deps"
        out = subprocess.run(
            ["pdftotext", "-layout", "-", "-"], input=body, capture_output=True, timeout=60
        )
        return out.stdout.decode("utf-8", "replace")
    return body.decode("utf-8", "replace")
