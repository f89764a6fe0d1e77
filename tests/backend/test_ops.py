"""Operations: data retention, JSON logs with request ids, configuration errors."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from typer.testing import CliRunner

from backend.cli import app as cli
from backend.logs import JsonFormatter, request_id
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
