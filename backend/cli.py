"""The `guidance-survey` command line (an outward interface: keep the commands stable)."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

import aiohttp
import typer
from aiohttp import web
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError

from backend.certification.notices import Notifier, mail_config
from backend.dashboard.passwords import hash_password
from backend.demo import DEMO_PASSWORD, prepare_demo
from backend.i18n import dashboard_languages, texts
from backend.reporting.extras import pdf_extras
from backend.reporting.releases import release_cycle
from backend.reporting.report import build_report
from backend.web.app import create_app
from backend.web.links import invite_links, public_base
from backend.web.logs import configure
from backend.web.settings import Settings
from conversations.banks import load_banks
from conversations.coverage import coverage
from conversations.i18n import available_languages
from conversations.model import load_model
from conversations.roles import Role
from storage import responses, schools
from storage.db import create_engine, make_sessionmaker
from storage.migrate import upgrade
from storage.reminders import AnnouncementRefused, create_announcement
from storage.retention import forget_respondent_keys, respondents_to_forget

try:
    import uvloop
except ImportError:  # pragma: no cover - Windows, or a deliberate install without it
    uvloop = None

T = TypeVar("T")

app = typer.Typer(
    name="guidance-survey",
    help=(
        "Stakeholder surveys (Telegram and web chat) that triangulate a VET school's "
        "career guidance against the ETF excellence model.\n\n"
        "Configuration comes from environment variables (DATABASE_URL, REDIS_URL, "
        "TELEGRAM_BOT_TOKEN, TELEGRAM_API_BASE_URL, TELEGRAM_WEBHOOK_SECRET, PUBLIC_URL, "
        "HOST, PORT, SECRET_KEY) or a .env file."
    ),
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
school_app = typer.Typer(help="Schools.", no_args_is_help=True)
user_app = typer.Typer(help="Coordinator accounts.", no_args_is_help=True)
invite_app = typer.Typer(help="Invitations for respondents.", no_args_is_help=True)
model_app = typer.Typer(help="The excellence model and the question banks.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(school_app, name="school")
app.add_typer(user_app, name="user")
app.add_typer(invite_app, name="invite")
app.add_typer(model_app, name="model")


def fail(message: str, code: int = 1) -> None:
    typer.secho(f"Error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def load_settings() -> Any:

    try:
        return Settings()
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]).upper() or "configuration"
            lines.append(f"  {name}: {err['msg'].removeprefix('Value error, ')}")
        fail("invalid configuration:\n" + "\n".join(lines), 2)


def run(coro_fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    return asyncio.run(coro_fn(*args))


async def _with_session(settings: Any, fn: Callable[[Any], Awaitable[T]]) -> T:

    engine = create_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine).begin() as s:
            return await fn(s)
    finally:
        await engine.dispose()


def _db_error(exc: Exception) -> None:

    if isinstance(exc, OperationalError | ProgrammingError | OSError):
        fail(
            f"the database is not ready ({type(exc).__name__}). "
            "Is DATABASE_URL right, and did you run `guidance-survey db upgrade`?"
        )
    raise exc


def in_transaction(settings: Any, fn: Callable[[Any], Awaitable[T]]) -> T:
    """Run one use case in one transaction; database trouble becomes a clear message."""
    try:
        return run(_with_session, settings, fn)
    except typer.Exit:
        raise
    except Exception as exc:
        _db_error(exc)
        raise  # not reached: _db_error exits or re-raises


# -- db ---------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply the database migrations (creates the schema on an empty database)."""

    settings = load_settings()
    try:
        run(upgrade, settings.database_url, revision)
    except Exception as exc:
        _db_error(exc)
    typer.echo(f"Database at {_safe_url(settings.database_url)} is at revision {revision}.")


def _safe_url(url: str) -> str:

    return make_url(url).render_as_string(hide_password=True)


# -- school / user ------------------------------------------------------------------


@school_app.command("create")
def school_create(
    slug: Annotated[str, typer.Option(help="Short name used in URLs, e.g. ogre-tech.")],
    name: Annotated[str, typer.Option(help="The school's full name.")],
    languages: Annotated[str, typer.Option(help="Comma-separated language codes.")] = "en",
    timezone: Annotated[str, typer.Option(help="IANA time zone, e.g. Asia/Yerevan.")] = "UTC",
    threshold: Annotated[
        int | None,
        typer.Option(min=3, help="Smallest group shown (default ANONYMITY_THRESHOLD, 5)."),
    ] = None,
    free_text_threshold: Annotated[
        int | None,
        typer.Option(min=3, help="Smallest group whose comments are shown (default 10)."),
    ] = None,
) -> None:
    """Create a school (its anonymity thresholds apply to the cycles it opens)."""

    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,62}", slug):
        fail("--slug takes 2-63 lower-case letters, digits and dashes, e.g. ogre-tech")
    if not name.strip():
        fail("--name may not be empty")
    try:
        ZoneInfo(timezone)
    except (KeyError, ValueError):
        fail(f"--timezone {timezone!r} is not an IANA time zone (e.g. Europe/Riga)")

    unknown = [
        x for x in languages.split(",") if x.strip() and x.strip() not in available_languages()
    ]
    if unknown:
        fail(
            f"--languages: no catalog for {', '.join(unknown)} (have {', '.join(available_languages())})"
        )
    settings = load_settings()

    async def go(s: Any) -> Any:
        if await schools.get_school_by_slug(s, slug) is not None:
            fail(f"a school with slug {slug!r} exists already")
        langs = [x.strip() for x in languages.split(",") if x.strip()] or ["en"]
        k = threshold or settings.anonymity_threshold
        return await schools.create_school(
            s,
            slug=slug,
            name=name.strip(),
            languages=langs,
            timezone=timezone,
            anonymity_threshold=k,
            free_text_threshold=max(k, free_text_threshold or settings.free_text_threshold),
        )

    school = in_transaction(settings, go)
    typer.echo(f"Created school {school.slug!r} ({school.name}).")


@user_app.command("create")
def user_create(
    school: Annotated[str, typer.Option(help="The school's slug (omit with --admin).")] = "",
    email: Annotated[str, typer.Option(help="Login e-mail address.")] = "",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    admin: Annotated[bool, typer.Option(help="An administrator (all schools).")] = False,
    role: Annotated[str, typer.Option(help="coordinator or peer.")] = "coordinator",
) -> None:
    """Create a coordinator account (or an administrator with --admin)."""

    if "@" not in email or len(email) > 254:
        fail("--email needs a valid e-mail address")
    if not password_stdin:
        fail("pass the password on standard input with --password-stdin")
    password = sys.stdin.readline().rstrip("\n")
    try:
        pw_hash = hash_password(password, email)  # the rules of backend.dashboard.passwords
    except ValueError as exc:
        fail(str(exc))
    if not admin and not school:
        fail("--school is required (or --admin)")
    if role not in ("coordinator", "peer"):
        fail("--role takes coordinator or peer")
    settings = load_settings()

    async def go(s: Any) -> Any:
        school_id = None
        if not admin:
            sch = await schools.get_school_by_slug(s, school)
            if sch is None:
                fail(f"no school with slug {school!r}")
            school_id = sch.id
        if await schools.get_user_by_email(s, email) is not None:
            fail(f"a user with e-mail {email!r} exists already")
        return await schools.create_user(
            s,
            school_id=school_id,
            email=email,
            password_hash=pw_hash,
            role="admin" if admin else role,
        )

    user = in_transaction(settings, go)
    typer.echo(f"Created {user.role} {user.email}.")


# -- invites --------------------------------------------------------------------------


async def bot_username(settings: Any) -> str:
    """The bot's @username (for t.me links): TELEGRAM_BOT_USERNAME, or getMe with the token."""

    name = os.environ.get("TELEGRAM_BOT_USERNAME", "").lstrip("@")
    if name or not settings.telegram_bot_token:
        return name

    url = f"{settings.telegram_api_base_url.rstrip('/')}{settings.telegram_bot_token}/getMe"
    if not settings.telegram_api_base_url.rstrip("/").endswith("bot"):
        url = f"{settings.telegram_api_base_url.rstrip('/')}/bot{settings.telegram_bot_token}/getMe"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
            http.get(url) as resp,
        ):
            data = await resp.json()
            return str(data.get("result", {}).get("username", ""))
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return ""


@invite_app.command("create")
def invite_create(
    school: Annotated[str, typer.Option(help="The school's slug.")],
    role: Annotated[Role, typer.Option(help="The stakeholder group.", case_sensitive=False)],
    count: Annotated[int, typer.Option(min=1, max=5000, help="How many invites.")] = 1,
    max_uses: Annotated[
        int, typer.Option(min=1, help="Uses per code (e.g. 300 for one shared classroom code).")
    ] = 1,
    days: Annotated[int, typer.Option(min=1, max=730, help="Valid for this many days.")] = 60,
    cycle: Annotated[str, typer.Option(help="Cycle name (default: the open one).")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """Create invitations: each with a code, a Telegram deep link and a web link."""

    settings = load_settings()

    async def go(s: Any) -> list[Any]:
        sch = await schools.get_school_by_slug(s, school)
        if sch is None:
            fail(f"no school with slug {school!r}")
        cyc = await _find_or_open_cycle(s, sch, cycle)
        return await responses.create_invites(
            s,
            cyc.id,
            role.value,
            count=count,
            max_uses=max_uses,
            expires_at=datetime.now(UTC) + timedelta(days=days),
        )

    invites = in_transaction(settings, go)
    username = run(bot_username, settings)
    base = public_base(settings)
    rows = [
        {"code": i.code, "role": i.role, **invite_links(i.code, username=username, base=base)}
        for i in invites
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        typer.echo(f"{r['code']}  {r['role']}  {r['telegram_link'] or '-'}  {r['web_link']}")


async def _find_or_open_cycle(s: Any, school: Any, name: str) -> Any:

    if name:
        found = await schools.cycle_by_name(s, school.id, name)
        if found is None:
            found = await schools.create_cycle(s, school.id, name, load_model().version)
        return found
    current = await schools.current_cycle(s, school.id)
    if current is not None:
        return current
    now = datetime.now(UTC)
    year = now.year if now.month >= 8 else now.year - 1
    return await schools.create_cycle(
        s, school.id, f"{year}/{(year + 1) % 100:02d}", load_model().version
    )


async def _school_cycle(s: Any, school: str, cycle: str) -> Any:
    """The school's cycle named `cycle`, or its newest; exits with a message if there is none."""

    sch = await schools.get_school_by_slug(s, school)
    if sch is None:
        fail(f"no school with slug {school!r}")
    if cycle:
        cyc = await schools.cycle_by_name(s, sch.id, cycle)
    else:
        newest = await schools.list_cycles(s, sch.id)  # newest first
        cyc = newest[0] if newest else None
    if cyc is None:
        fail(f"school {school!r} has no cycle{' named ' + repr(cycle) if cycle else ''} yet")
    return cyc


# -- report ---------------------------------------------------------------------------


REPORT_FORMATS = ("json", "csv", "xlsx", "pdf")


@app.command("report")
def report(
    school: Annotated[str, typer.Option(help="The school's slug.")],
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="Output format: json, csv, xlsx or pdf (the dashboard's exports).",
        ),
    ] = "json",
    cycle: Annotated[str, typer.Option(help="Cycle name (default: the newest).")] = "",
    lang: Annotated[
        str,
        typer.Option(
            "--lang",
            metavar="CODE",
            help="Language of the xlsx and pdf reports: en or a language the dashboard is "
            "translated into (json and csv stay English: stable keys and columns).",
        ),
    ] = "en",
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Write the report to FILE instead of standard output (needed for xlsx and "
            "pdf on a terminal).",
        ),
    ] = "",
) -> None:
    """Print or save the triangulation report (anonymity rules applied)."""

    if fmt not in REPORT_FORMATS:
        fail(f"--format takes {', '.join(REPORT_FORMATS)}, not {fmt!r}")
    if lang not in dashboard_languages():
        fail(f"--lang takes {', '.join(dashboard_languages())}, not {lang!r}")
    binary = fmt in ("xlsx", "pdf")
    if binary and not output and sys.stdout.isatty():
        fail(f"a {fmt} report is a binary file: save it with --output FILE")
    settings = load_settings()

    async def go(s: Any) -> dict[str, Any]:
        cyc = await _school_cycle(s, school, cycle)
        model = load_model()
        # What the rule allows is released first, in this transaction: it commits before
        # anything is printed (a report never shows a release that was not recorded).
        for other in await schools.list_cycles(s, cyc.school_id):
            await release_cycle(s, other.id)
        found: dict[str, Any] = {"report": await build_report(s, cyc.id, model)}
        if fmt == "pdf":  # the PDF has the evidence, the change since before, the action plan
            found.update(await pdf_extras(s, cyc))
        return found

    found = in_transaction(settings, go)
    data = found["report"]
    if fmt == "json":
        body = (json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n").encode()
    else:
        from backend.reporting import exports  # fpdf, openpyxl, matplotlib: only when asked

        tx = texts(lang)
        if fmt == "csv":
            body = exports.report_csv(data)
        elif fmt == "xlsx":
            body = exports.report_xlsx(data, tx=tx)
        else:
            body = exports.report_pdf(
                data,
                evidence=found["evidence"],
                previous=found["previous"],
                actions=found["actions"],
                tx=tx,
            )
    if output:
        try:
            with open(output, "wb") as fh:
                fh.write(body)
        except OSError as exc:
            fail(f"cannot write {output}: {exc.strerror or exc}")
        typer.echo(f"Wrote the {fmt} report to {output}.", err=True)
    else:
        stream = typer.get_binary_stream("stdout")
        stream.write(body)
        stream.flush()


# -- announce -------------------------------------------------------------------------


@app.command("announce")
def announce(
    school: Annotated[str, typer.Option(help="The school's slug.")],
    text_file: Annotated[
        typer.FileText, typer.Option("--text-file", help="The message, as a UTF-8 text file.")
    ],
    cycle: Annotated[str, typer.Option(help="Cycle name (default: the newest).")] = "",
) -> None:
    """Send the cycle's one announcement to the respondents who opted in (once per cycle).

    It is stored here and delivered by the running server's reminder scheduler (quiet
    hours respected); a second announcement for the same cycle is refused.
    """

    settings = load_settings()
    text = text_file.read()

    async def go(s: Any) -> tuple[str, int]:
        cyc = await _school_cycle(s, school, cycle)
        try:
            return cyc.name, await create_announcement(s, cyc.id, text)
        except AnnouncementRefused as exc:
            fail(f"{exc} (cycle {cyc.name})")
            raise

    name, n = in_transaction(settings, go)
    typer.echo(
        f"Announcement for cycle {name} saved: {n} opted-in respondent(s) will get it "
        "from the running server (outside quiet hours)."
    )


# -- mail -----------------------------------------------------------------------------


@app.command("mail")
def mail() -> None:
    """Send the coordinators' e-mail about certification rounds once (deadlines, decisions).

    Queues the deadline reminders due today (DEADLINE_REMINDER_DAYS before a deadline, each
    once) and sends what is pending (the board's decisions, mail that failed before).

    The running server does the same every MAIL_INTERVAL_SECONDS; this is for a server
    that is not running, or a cron job. Needs SMTP_HOST and MAIL_FROM.
    """

    settings = load_settings()
    _logging(settings.log_level, "text")
    config = mail_config(settings)
    if config is None:
        fail("SMTP_HOST is not set: no mail is sent (the dashboard shows deadlines and decisions)")

    async def go() -> tuple[int, int]:
        engine = create_engine(settings.database_url)
        try:
            notifier = Notifier(
                make_sessionmaker(engine),
                config,
                public_base(settings),
                days=settings.deadline_days,
            )
            return await notifier.queue_deadlines(), await notifier.send_due()
        finally:
            await engine.dispose()

    try:
        queued, sent = run(go)
    except typer.Exit:
        raise
    except Exception as exc:
        _db_error(exc)
        raise
    typer.echo(f"{queued} deadline reminder(s) queued; {sent} message(s) sent.")


# -- model ---------------------------------------------------------------------------


@model_app.command("coverage")
def model_coverage() -> None:
    """Print which roles' statements evidence each indicator (and what is not covered)."""

    table = coverage(load_model(), load_banks())
    typer.echo(table.format_table())
    missing = table.uncovered()
    if missing:
        fail("indicators no role covers: " + ", ".join(missing))


@model_app.command("show")
def model_show() -> None:
    """Print the model's dimensions, criteria, themes and indicators."""

    m = load_model()
    typer.echo(f"{m.title} (version {m.version})")
    for d in m.dimensions:
        typer.echo(f"\nDIMENSION {d.id}: {d.title}")
        for c in d.criteria:
            typer.echo(f"  {c.id} {c.title}")
            for t in c.themes:
                typer.echo(f"    {t.id} {t.title}")
                for i in t.indicators:
                    typer.echo(f"      {i.key:<12} [{i.kind.value:<6}] {i.text[:90]}")
                for k in t.includes:
                    typer.echo(f"      {k:<12} (listed here too)")


# -- serve / demo -------------------------------------------------------------------


def _logging(level: str, default_format: str = "json") -> None:
    """JSON lines for servers (LOG_FORMAT=json), plain text for people (LOG_FORMAT=text)."""

    configure(level, json_format=os.environ.get("LOG_FORMAT", default_format) != "text")
    logging.getLogger("alembic").setLevel(logging.WARNING)


@app.command("retention")
def retention(
    grace_days: Annotated[
        int, typer.Option(min=0, help="Days after a cycle closes before keys are forgotten.")
    ] = 30,
    apply: Annotated[
        bool, typer.Option("--apply", help="Really do it (default: a dry run).")
    ] = False,
) -> None:
    """Forget respondents' keys once all their cycles have closed (answers stay, unlinked)."""

    settings = load_settings()
    grace = timedelta(days=grace_days)

    async def go(s: Any) -> int:
        if apply:
            return await forget_respondent_keys(s, grace=grace)
        return len(await respondents_to_forget(s, grace=grace))

    n = in_transaction(settings, go)
    if apply:
        typer.echo(f"Forgot the keys of {n} respondent(s); their answers remain, unlinked.")
    else:
        typer.echo(f"{n} respondent(s) would be unlinked. Run again with --apply to do it.")


async def _settle_heap(_app: web.Application) -> None:
    """Once the app has started: what it loaded to stay (the model and banks, the mappers and
    compiled statements, the templates, the bot) leaves the garbage collector's watch.

    Python's full collection walks every object it tracks; with the server's startup heap
    that took 115-135 ms (measured under `make bench`, GC callbacks), a pause in which every
    update waits: most of the p99 at 200 updates/s. `gc.freeze()` moves the startup heap to
    a generation no collection walks (the objects are never freed: they live as long as the
    process anyway); what requests create is collected as before."""
    gc.collect()
    gc.freeze()


def event_loop() -> asyncio.AbstractEventLoop:
    """The server's event loop: uvloop (libuv) where it is installed, which it is on Linux and
    macOS (a dependency), else asyncio's own.

    The loop is the floor under every update: its socket reads and writes and the scheduling
    of every task and callback. What it saves is measured in bench/README.md ("seventh
    hot-path pass")."""
    return asyncio.new_event_loop() if uvloop is None else uvloop.new_event_loop()


def _run(application: web.Application, settings: Settings) -> None:
    application.on_startup.append(_settle_heap)
    web.run_app(application, host=settings.host, port=settings.port, print=None, loop=event_loop())


@app.command("serve")
def serve(
    set_webhook: Annotated[
        bool,
        typer.Option("--set-webhook", help="Call setWebhook with PUBLIC_URL and the secret."),
    ] = False,
    migrate: Annotated[
        bool, typer.Option("--migrate/--no-migrate", help="Apply migrations first.")
    ] = True,
) -> None:
    """Run the server: webhook, web chat, dashboard, API, /healthz, /readyz, /metrics."""

    settings = load_settings()
    _logging(settings.log_level)
    if set_webhook and not (settings.telegram_bot_token and settings.public_url):
        fail("--set-webhook needs TELEGRAM_BOT_TOKEN and PUBLIC_URL")
    if migrate:
        try:
            run(upgrade, settings.database_url)
        except Exception as exc:
            _db_error(exc)
    application = create_app(settings, set_webhook=set_webhook)
    typer.echo(f"Serving on http://{settings.host}:{settings.port}")
    _run(application, settings)


def demo_banner_logins(base: str, info: dict[str, Any]) -> str:
    """Every login of the demo, one line each, with what it shows."""
    password = info.get("password", DEMO_PASSWORD)
    rows = [
        (info["email"], "coordinator of the demo school"),
        (info["admin_email"], "administrator: schools, accounts, clusters"),
    ]
    if info.get("peer_email"):
        rows.append((info["peer_email"], "peer reviewer from a neighbour school"))
    if info.get("board_email"):
        rows.append((info["board_email"], "certification board: the round, decisions, audit"))
    for email in info.get("assessor_emails", []):
        rows.append((email, "assessor: reviews the demo school's submission"))
    lines = [f"  Dashboard:   {base}/login   (password for every login: {password})"]
    lines += [f"               {email:<26} {what}" for email, what in rows]
    return "\n".join(lines)


@app.command("demo")
def demo(
    port: Annotated[int, typer.Option(help="Port (default: PORT or 8080).")] = 0,
    reset: Annotated[bool, typer.Option(help="Start from an empty demo database.")] = False,
) -> None:
    """The embedded default: SQLite, in-memory sessions, a demo school with sample answers."""

    settings = load_settings()
    if port:
        settings.port = port
    _logging(settings.log_level, default_format="text")
    info = run(prepare_demo, settings, reset)
    base = public_base(settings)
    typer.secho("\nguidance-survey demo is ready.", fg=typer.colors.GREEN, bold=True)
    typer.echo(demo_banner_logins(base, info))
    typer.echo(f"  Web chat:    {base}/s/{info['codes']['learner']}   (a learner's invite)")
    for role, code in info["codes"].items():
        if role != "learner":
            typer.echo(f"               {base}/s/{code}   ({role})")
    if settings.telegram_bot_token:
        typer.echo("  Telegram:    polling for updates with TELEGRAM_BOT_TOKEN")
    typer.echo("  Stop with Ctrl+C.\n")
    application = create_app(settings, polling=bool(settings.telegram_bot_token))
    _run(application, settings)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
