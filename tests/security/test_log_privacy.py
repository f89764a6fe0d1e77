"""No respondent's words in any log line, also when writing them fails.

A database error quotes what it was given: SQLAlchemy prints the statement's parameters,
PostgreSQL its failing row (DETAIL) and whatever a trigger says. Here the `comment` table
refuses every write with a trigger whose own message and DETAIL carry the new text
(PostgreSQL; on SQLite the trigger only aborts, and the parameters carry it), and a
respondent types a marker through each channel: the Telegram webhook, the Mini App and
the web chat. Everything logged meanwhile, from DEBUG up (caplog's text, every record's
message and the JSON formatter's lines), must be free of the markers; the failures must
have been logged (the test would prove nothing otherwise). SQLite + memory and
PostgreSQL + Redis (the bot tests' `storage` fixture).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select, text

from backend.web import keys
from backend.web.logs import JsonFormatter
from backend.web.miniapp import sign_init_data
from conversations import engine as E
from storage.models import Comment
from tests.apptools import TOKEN
from tests.bot.conftest import fake_api, open_bench, storage  # noqa: F401 (fixtures)
from tests.bot.walker import walk_to_text_question
from tests.webtools import web_user

MARKS = {
    "telegram": "Qzv-telegram-secret-words",
    "miniapp": "Qzv-miniapp-secret-words",
    "web": "Qzv-web-secret-words",
}
TRIGGER_PG = """
CREATE OR REPLACE FUNCTION gs_test_refuse_comment() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'comment refused: %', NEW.text
    USING DETAIL = 'the text was ' || NEW.text, ERRCODE = '{errcode}';
END $$
"""
TRIGGER_SQLITE = """
CREATE TRIGGER refuse_comment BEFORE INSERT ON comment
BEGIN SELECT RAISE(ABORT, 'comment refused'); END
"""


async def refuse_comments(bench: Any, errcode: str) -> None:
    engine = bench.app[keys.DB_ENGINE]
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(text(TRIGGER_PG.format(errcode=errcode)))
            await conn.execute(text("DROP TRIGGER IF EXISTS refuse_comment ON comment"))
            await conn.execute(
                text(
                    "CREATE TRIGGER refuse_comment BEFORE INSERT OR UPDATE ON comment "
                    "FOR EACH ROW EXECUTE FUNCTION gs_test_refuse_comment()"
                )
            )
        else:
            await conn.execute(text(TRIGGER_SQLITE))


def init_data_for(user: Any) -> str:
    fields = {
        "user": json.dumps({"id": user.id, "first_name": "Ana"}, separators=(",", ":")),
        "auth_date": str(int(time.time())),
    }
    fields["hash"] = sign_init_data(fields, TOKEN)
    return urlencode(fields)


def everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    formatter = JsonFormatter()
    plain = logging.Formatter("%(levelname)s %(name)s %(message)s")
    lines = [caplog.text]
    for record in caplog.records:
        lines += [record.getMessage(), formatter.format(record), plain.format(record)]
        if record.exc_info and record.exc_info[1] is not None:
            lines.append(repr(record.exc_info[1]) + str(record.exc_info[1]))
    return "\n".join(lines)


# 23514: a check violation (our data: not retried); 40001: a serialization failure
# (transient: the webhook answers 503 and Telegram retries).
@pytest.mark.parametrize("errcode", ["23514", "40001"])
async def test_failed_writes_log_no_respondent_text(
    storage: dict[str, Any],  # noqa: F811
    fake_api: Any,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
    errcode: str,
):
    if errcode != "23514" and not storage["database_url"].startswith("postgresql"):
        pytest.skip("SQLite has no SQLSTATE: the one failure is enough there")
    caplog.set_level(logging.DEBUG)
    async with open_bench(storage, fake_api) as bench:
        tg, sm = bench.tg, bench.sm
        telegram_user, _qid = await walk_to_text_question(bench)
        app_user, app_qid = await walk_to_text_question(bench, role="parent")
        async with web_user(bench.client) as web:
            await web.start(bench.seeded.invites["learner"])
            while not web.has_typed_input():
                await web.tap(E.SKIP if "skip" in web.choices() else "4")
            await refuse_comments(bench, errcode)
            caplog.clear()

            statuses = await tg.send(telegram_user, MARKS["telegram"])
            assert statuses == ([200] if errcode == "23514" else [503] * 5), statuses
            resp = await bench.client.post(
                "/app/api/answer",
                json={"text": MARKS["miniapp"], "question_id": app_qid},
                headers={"X-Telegram-Init-Data": init_data_for(app_user)},
            )
            assert resp.status >= 500
            await web.type(MARKS["web"])
            assert web.status >= 500
        async with sm() as s:
            assert await s.scalar(select(func.count()).select_from(Comment)) == 0
    logged = everything_logged(caplog)
    failures = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(failures) >= 3, [r.getMessage() for r in caplog.records][-20:]
    for channel, mark in MARKS.items():
        assert mark not in logged, f"the {channel} answer is in the logs"
    assert "secret-words" not in logged


def test_a_database_error_logged_anywhere_shows_no_parameters_or_row():
    """The formatter's and the records' side alone, without the engine's hide_parameters:
    an error raised with the parameters and a failing row, logged by any logger."""
    from backend.web.logs import install_redaction

    install_redaction()  # as create_app and logs.configure do
    mark = "Wq7 free text of a respondent"
    orig = sqlite3.IntegrityError(f"CHECK constraint failed: Failing row contains ({mark})")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    log = logging.getLogger("tests.log_privacy")
    keep = Keep()
    log.addHandler(keep)
    log.setLevel(logging.DEBUG)
    try:
        try:
            try:
                raise sa_exc.IntegrityError(
                    "INSERT INTO comment (text) VALUES (?)", (1, mark), orig
                )
            except sa_exc.IntegrityError as exc:
                raise RuntimeError("the answer could not be stored") from exc
        except RuntimeError as exc:
            log.exception("failed")
            log.error("failed: %s", exc.__cause__)
            log.error("failed: %(e)r", {"e": exc.__cause__})
            log.error(exc.__cause__)
            log.warning("again", exc_info=exc)
    finally:
        log.removeHandler(keep)
    assert len(records) == 5
    out = []
    for record in records:
        out += [JsonFormatter().format(record), logging.Formatter().format(record)]
        out.append(record.getMessage())
    logged = "\n".join(out)
    assert mark not in logged, logged
    # What the error was stays readable: its class, where, and the statement.
    assert "IntegrityError" in logged and "RuntimeError: the answer could not be stored" in logged
    assert "INSERT INTO comment" in logged and "test_log_privacy.py" in logged


async def test_the_engine_keeps_parameters_out_of_its_errors(db_engine: Any):
    """The other layer: SQLAlchemy prints no parameters in its errors (`hide_parameters`).
    (A driver's own message may still quote a value, e.g. asyncpg's "invalid input for
    query argument $1: '...'": that is what the log redaction is for.)"""
    from storage.db import create_engine
    from tests.apptools import db_url_of

    mark = "Wq8 words of a respondent"
    engine = create_engine(db_url_of(db_engine))
    try:
        assert engine.sync_engine.hide_parameters
        with pytest.raises(sa_exc.IntegrityError) as caught:
            async with engine.begin() as conn:  # no such response: a foreign key violation
                await conn.execute(
                    text(
                        "INSERT INTO comment (response_id, question_id, text) VALUES (:r, :q, :t)"
                    ),
                    {"r": 2_000_000_000, "q": "q1", "t": mark},
                )
        assert mark not in str(caught.value) and mark not in repr(caught.value)
        assert "parameters hidden" in str(caught.value)
    finally:
        await engine.dispose()
