"""The `guidance-survey` command line, end to end on a real database (an outward interface)."""

from __future__ import annotations

import json

import pytest
import uvloop
from typer.testing import CliRunner

from backend.cli import app as cli
from backend.cli import event_loop


@pytest.fixture
def env(monkeypatch, db_url, tmp_path):
    """A migrated, empty database for the CLI (SQLite file or this run's PostgreSQL)."""
    if not db_url.startswith("sqlite"):
        # the per-run PostgreSQL database is shared: start from base
        import asyncio

        from storage.migrate import downgrade

        asyncio.run(downgrade(db_url, "base"))
    for k in (
        "TELEGRAM_BOT_TOKEN",
        "TELEGRAM_WEBHOOK_SECRET",
        "REDIS_URL",
        "TELEGRAM_BOT_USERNAME",
    ):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("SECRET_KEY", "cli-test-secret-key-0123456789")
    monkeypatch.setenv("PUBLIC_URL", "https://survey.example.org")
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def invoke(runner: CliRunner, *args: str, input: str | None = None):
    result = runner.invoke(cli, list(args), input=input)
    return result


def create_user(runner: CliRunner, school: str, email: str, password: str):
    """`user create`, the password on stdin."""
    args = ("user", "create", "--school", school, "--email", email, "--password-stdin")
    return invoke(runner, *args, input=password + "\n")


def test_the_whole_setup_from_the_command_line(env, monkeypatch):
    assert invoke(env, "db", "upgrade").exit_code == 0
    r = invoke(env, "school", "create", "--slug", "ogre-tech", "--name", "Ogre Technical School")
    assert r.exit_code == 0, r.output
    r = invoke(env, "school", "create", "--slug", "ogre-tech", "--name", "Again")
    assert r.exit_code == 1 and "exists already" in r.output
    r = invoke(env, "school", "create", "--slug", "Bad Slug!", "--name", "x")
    assert r.exit_code == 1 and "--slug" in r.output

    r = create_user(env, "ogre-tech", "Me@School.lv", "correct horse battery")
    assert r.exit_code == 0, r.output
    r = create_user(env, "ogre-tech", "x@school.lv", "short")
    assert r.exit_code == 1 and "at least 10" in r.output
    r = create_user(env, "nope", "y@school.lv", "long enough password")
    assert r.exit_code == 1 and "no school" in r.output

    monkeypatch.setenv("TELEGRAM_BOT_USERNAME", "ogre_guidance_bot")
    r = invoke(
        env,
        "invite",
        "create",
        "--school",
        "ogre-tech",
        "--role",
        "learner",
        "--count",
        "3",
        "--json",
    )
    assert r.exit_code == 0, r.output
    invites = json.loads(r.output)
    assert len(invites) == 3 and len({i["code"] for i in invites}) == 3
    for i in invites:
        assert set(i) == {"code", "role", "telegram_link", "web_link"}
        assert i["role"] == "learner"
        assert i["telegram_link"] == f"https://t.me/ogre_guidance_bot?start={i['code']}"
        assert i["web_link"] == f"https://survey.example.org/s/{i['code']}"
        assert len(i["code"]) <= 64 and i["code"].replace("-", "").replace("_", "").isalnum()
    r = invoke(env, "invite", "create", "--school", "ogre-tech", "--role", "wizard")
    assert r.exit_code == 2

    r = invoke(env, "report", "--school", "ogre-tech", "--format", "json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert len(report["indicators"]) == 71
    assert all(i["self"] is None for i in report["indicators"])  # nothing known yet: nulls
    assert report["thresholds"]["anonymity"] == 5
    r = invoke(env, "report", "--school", "ogre-tech", "--format", "xml")
    assert r.exit_code == 1


def test_commands_on_an_unmigrated_database_say_what_to_do(env):
    r = invoke(env, "school", "create", "--slug", "abc", "--name", "ABC")
    assert r.exit_code == 1
    assert "db upgrade" in r.output


def test_model_commands(env):
    r = invoke(env, "model", "coverage")
    assert r.exit_code == 0, r.output
    assert "VL-14@1.2.3" in r.output
    r = invoke(env, "model", "show")
    assert r.exit_code == 0 and "DIMENSION 3" in r.output and "CC-6@2.1.2" in r.output


def test_school_thresholds_languages_and_time_zone(env):
    from storage import schools
    from storage.db import create_engine, make_sessionmaker

    assert invoke(env, "db", "upgrade").exit_code == 0
    r = invoke(env, "school", "create", "--slug", "a", "--name", "A", "--threshold", "2")
    assert r.exit_code == 2  # never below 3
    r = invoke(env, "school", "create", "--slug", "aa", "--name", "A", "--timezone", "Mars/Base")
    assert r.exit_code == 1 and "time zone" in r.output
    r = invoke(env, "school", "create", "--slug", "aa", "--name", "A", "--languages", "en,xx")
    assert r.exit_code == 1 and "xx" in r.output
    r = invoke(
        env,
        "school",
        "create",
        "--slug",
        "yerevan-college",
        "--name",
        "Yerevan State College",
        "--languages",
        "hy,en",
        "--timezone",
        "Asia/Yerevan",
        "--threshold",
        "7",
    )
    assert r.exit_code == 0, r.output

    async def check():
        import os

        engine = create_engine(os.environ["DATABASE_URL"])
        try:
            async with make_sessionmaker(engine)() as s:
                return await schools.get_school_by_slug(s, "yerevan-college")
        finally:
            await engine.dispose()

    import asyncio

    school = asyncio.run(check())
    assert school.anonymity_threshold == 7
    assert school.free_text_threshold == 10
    assert school.languages == ["hy", "en"] and school.timezone == "Asia/Yerevan"


def test_mail_needs_smtp_and_runs_one_round(env, monkeypatch):
    """`guidance-survey mail`: what the server's loop does, once (nothing due here)."""
    monkeypatch.delenv("SMTP_HOST", raising=False)
    r = invoke(env, "mail")
    assert r.exit_code == 1 and "SMTP_HOST is not set" in r.output
    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
    r = invoke(env, "mail")
    assert r.exit_code == 2 and "MAIL_FROM" in r.output
    monkeypatch.setenv("MAIL_FROM", "rounds@survey.example.org")
    r = invoke(env, "mail")
    assert r.exit_code == 1 and "db upgrade" in r.output
    assert invoke(env, "db", "upgrade").exit_code == 0
    r = invoke(env, "mail")
    assert r.exit_code == 0, r.output
    assert "0 deadline reminder(s) queued; 0 message(s) sent." in r.output


def test_serve_takes_its_startup_heap_out_of_the_collectors_walk(env, monkeypatch):
    """`serve` freezes what the started app holds (`cli._settle_heap`): a full collection no
    longer walks it (115-135 ms pauses of every update under `make bench` before)."""
    import asyncio
    import gc

    from backend import cli as cli_module

    served = []
    monkeypatch.setattr(
        cli_module.web, "run_app", lambda application, **kw: served.append(application)
    )
    result = invoke(env, "serve", "--no-migrate")
    assert result.exit_code == 0, result.output
    (application,) = served
    assert cli_module._settle_heap in application.on_startup
    try:
        asyncio.run(cli_module._settle_heap(application))
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()


def test_serve_runs_on_uvloop() -> None:
    """`serve` and `demo` run their app on uvloop (a dependency on Linux): the loop under
    every update (bench/README.md, the seventh hot-path pass)."""
    loop = event_loop()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
