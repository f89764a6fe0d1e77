"""Operations: data retention, JSON logs with request ids, configuration errors."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from backend.cli import app as cli
from backend.web.logs import JsonFormatter, request_id
from storage.models import Answer, Cycle, Respondent, Response
from storage.retention import FORGOTTEN_PREFIX, forget_respondent_keys
from tests.apptools import db_url_of, make_settings, running_app, seed_school


async def _respondent(s, cycle_id: int, subject: str) -> int:
    r = Respondent(subject_hash=subject)
    s.add(r)
    await s.flush()
    resp = Response(
        respondent_id=r.id,
        cycle_id=cycle_id,
        role="learner",
        bank_tag="learner@1",
        model_version="1.0.0",
        consent_at=datetime.now(UTC),
    )
    s.add(resp)
    await s.flush()
    s.add(Answer(response_id=resp.id, question_id="l01", value=3))
    return r.id


async def test_retention_forgets_keys_only_after_all_cycles_closed(sessionmaker):
    seeded = await seed_school(sessionmaker, roles=["learner"])
    now = datetime.now(UTC)
    async with sessionmaker.begin() as s:
        old = Cycle(
            school_id=seeded.school_id,
            name="2024/25",
            model_version="1.0.0",
            status="closed",
            closes_at=now - timedelta(days=90),
        )
        s.add(old)
        await s.flush()
        gone = await _respondent(s, old.id, "a" * 64)  # only in the old, closed cycle
        kept = await _respondent(s, old.id, "b" * 64)  # ... and in the open one
        resp = Response(
            respondent_id=kept,
            cycle_id=seeded.cycle_id,
            role="learner",
            bank_tag="learner@1",
            model_version="1.0.0",
            consent_at=now,
        )
        s.add(resp)
    async with sessionmaker.begin() as s:
        assert await forget_respondent_keys(s, now=now) == 1
    async with sessionmaker() as s:
        hashes = dict((await s.execute(select(Respondent.id, Respondent.subject_hash))).all())
        answers = (await s.execute(select(Answer))).scalars().all()
    assert hashes[gone].startswith(FORGOTTEN_PREFIX) and len(hashes[gone]) == 64
    assert hashes[kept] == "b" * 64
    assert len(answers) == 2  # the answers stay for analysis
    async with sessionmaker.begin() as s:  # idempotent
        assert await forget_respondent_keys(s, now=now) == 0


def test_json_log_lines_carry_request_id_and_extras():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("w",), None)
    record.route = "/chat"
    token = request_id.set("abc123abc123")
    try:
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id.reset(token)
    assert line["msg"] == "hello w" and line["request_id"] == "abc123abc123"
    assert line["route"] == "/chat" and line["level"] == "info"


async def test_request_id_echoed_and_query_strings_not_logged(db_engine, caplog):
    caplog.set_level(logging.INFO, logger="backend.http")
    async with running_app(make_settings(db_url_of(db_engine))) as client:
        r = await client.get("/healthz?code=SECRETCODE", headers={"X-Request-Id": "req-12345678"})
        assert r.headers["X-Request-Id"] == "req-12345678"
        r = await client.get("/healthz", headers={"X-Request-Id": "<script>"})
        assert len(r.headers["X-Request-Id"]) == 16
    assert "SECRETCODE" not in caplog.text
    assert any(getattr(rec, "route", None) == "/healthz" for rec in caplog.records)
    # One concise access line per request, readable as plain text: method, path, status, time.
    lines = [r.getMessage() for r in caplog.records if r.name == "backend.http"]
    assert len(lines) == 2
    assert all(re.fullmatch(r"GET /healthz 200 \d+\.\d ms", line) for line in lines), lines


def test_cli_reports_bad_configuration_clearly(monkeypatch):
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:abc")
    monkeypatch.delenv("TELEGRAM_WEBHOOK_SECRET", raising=False)
    monkeypatch.setenv("DATABASE_URL", "mysql://nope")
    result = CliRunner().invoke(cli, ["db", "upgrade"])
    assert result.exit_code == 2
    assert "DATABASE_URL" in result.output
    assert "PostgreSQL" in result.output


def test_cli_help_lists_the_stable_commands():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "demo", "db", "school", "user", "invite", "report"):
        assert command in result.output


# --- /metrics: not for everyone --------------------------------------------------------


class _Peer:
    """A transport whose peer is `address` (the TCP client a request came from)."""

    def __init__(self, address: str) -> None:
        self.address = address

    def get_extra_info(self, name: str, default=None):
        return (self.address, 51000) if name == "peername" else default

    def is_closing(self) -> bool:
        return False


async def _scrape(settings, peer: str, **headers: str):
    """GET /metrics as the app answers a client at `peer` (no socket needed)."""
    from aiohttp import web
    from aiohttp.test_utils import make_mocked_request

    from backend.web.app import create_app, metrics_view

    app = create_app(settings)
    request = make_mocked_request(
        "GET", "/metrics", headers=headers, app=app, transport=_Peer(peer)
    )
    try:
        return await metrics_view(request)
    except web.HTTPException as exc:
        return exc


async def test_metrics_without_a_token_answer_only_this_machine(tmp_path):
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}", data_dir=tmp_path)
    for peer in ("203.0.113.5", "10.0.0.7", "192.168.1.20", "2001:db8::5"):
        assert (await _scrape(settings, peer)).status == 404, peer
    for peer in ("127.0.0.1", "127.0.0.53", "::1", "::ffff:127.0.0.1"):
        resp = await _scrape(settings, peer)
        assert resp.status == 200 and b"gs_updates_total" in resp.body, peer
    # A reverse proxy on this machine connects from loopback: what it forwards is not ours.
    for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP", "Via", "X-Forwarded-Host"):
        assert (await _scrape(settings, "127.0.0.1", **{header: "x"})).status == 404, header


async def test_metrics_with_a_token_need_it_from_everyone(db_engine):
    token = "prometheus-scrape-token-0123456789"
    settings = make_settings(db_url_of(db_engine), metrics_token=token)
    async with running_app(settings) as client:
        for headers in (
            {},
            {"Authorization": "Bearer wrong-token-0123456789"},
            {"Authorization": token},
        ):
            resp = await client.get("/metrics", headers=headers)  # from loopback, too
            assert resp.status == 401, headers
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
            assert "gs_updates_total" not in await resp.text()
        resp = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 200 and "gs_updates_total" in await resp.text()
        assert resp.headers["Content-Type"].startswith("text/plain")
    resp = await _scrape(settings, "203.0.113.5", Authorization=f"bearer {token}")
    assert resp.status == 200  # Prometheus elsewhere, with the token


async def test_metrics_through_the_app_from_loopback_and_via_a_proxy(db_engine):
    async with running_app(make_settings(db_url_of(db_engine))) as client:
        assert (await client.get("/metrics")).status == 200
        resp = await client.get("/metrics", headers={"X-Forwarded-For": "198.51.100.4"})
        assert resp.status == 404 and "gs_updates_total" not in await resp.text()


def test_a_metrics_token_must_be_long_and_plain(tmp_path):
    from pydantic import ValidationError

    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    for bad in ("short", "has spaces in the token here", "x" * 15):
        with pytest.raises(ValidationError, match="METRICS_TOKEN needs at least 16"):
            make_settings(url, metrics_token=bad)
    assert make_settings(url, metrics_token="x" * 16).metrics_token == "x" * 16
