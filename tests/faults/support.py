"""Tools of the fault tests: a Redis server of our own, a TCP proxy in front of PostgreSQL,
`guidance-survey serve` as a real subprocess, and scripted respondents.

A scripted respondent's updates are planned up front with the engine itself (no reading
of the fake Bot API's cards): `/start <code>`, the consent tap, then one tap (or typed
text) per question, each tap naming its question id as real buttons do. The plan also
gives the answers the database must hold at the end, as the state's short codes.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from bot import callback
from conversations import engine as E
from conversations.banks import load_banks
from conversations.model import load_model
from storage import responses
from storage.models import Respondent, Response
from tests.apptools import TOKEN, WEBHOOK_SECRET
from tests.bot.fakebot import User

ROOT = Path(__file__).resolve().parents[2]
SECRET_KEY = "test-secret-key-" + "x" * 16


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_for(predicate: Callable[[], Any], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out after {within}s waiting for {what}")


# -- Redis of our own ------------------------------------------------------------------------


class RedisServer:
    """`redis-server` on a free port, no persistence: a restart starts empty."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(self.tmp),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.kill()
        self.start()


# -- a TCP proxy that can cut PostgreSQL off -----------------------------------------------------


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; `down()` drops every connection and refuses
    new ones (the listener is closed), `up()` listens again on the same port. While
    `lose_replies` is set, the target's answer breaks the connection instead of reaching
    the client (the request was carried out; its reply is lost); `reply_delay` holds each
    answer back that many seconds."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0
        self.lose_replies = False
        self.reply_delay = 0.0

    async def up(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True
        )

    async def down(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        await self.down()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, replies: bool) -> None:
            try:
                while data := await src.read(65536):
                    if replies and self.lose_replies:
                        break
                    if replies and self.reply_delay:
                        await asyncio.sleep(self.reply_delay)
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.transport.abort()
                self._writers.discard(dst)

        for coro in (pipe(reader, up_writer, False), pipe(up_reader, writer, True)):
            task = asyncio.get_running_loop().create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


# -- the real server as a subprocess ----------------------------------------------------------------


class ServeProcess:
    """`guidance-survey serve --no-migrate` on a free port (schema made by the test)."""

    def __init__(
        self, tmp: Path, *, database_url: str, redis_url: str, redis_prefix: str, api_url: str
    ) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("PG", "REDIS"))},
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "REDIS_PREFIX": redis_prefix,
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "TELEGRAM_API_BASE_URL": api_url,
            "SECRET_KEY": SECRET_KEY,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "LOG_FORMAT": "text",
            "LOG_LEVEL": "INFO",
            "DATA_DIR": str(tmp / "data"),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = tmp / f"serve-{self.port}.log"
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spawn(self) -> None:
        self.starts += 1
        exe = Path(sys.executable).with_name("guidance-survey")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(exe), "serve", "--no-migrate"],
                env=self.env,
                cwd=self.tmp,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def start(self, within: float = 90) -> None:
        self.spawn()

        async def healthy() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited early:\n{self.log()}")
            try:
                async with (
                    aiohttp.ClientSession() as s,
                    s.get(self.url + "/healthz", timeout=aiohttp.ClientTimeout(total=1)) as r,
                ):
                    return r.status == 200
            except (aiohttp.ClientError, TimeoutError):
                return False

        await wait_for(healthy, within, "serve to answer /healthz")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait(self, within: float) -> int:
        assert self.proc is not None
        deadline = time.monotonic() + within
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"serve did not exit in {within}s")
            await asyncio.sleep(0.05)
        return self.proc.returncode

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


# -- scripted respondents ----------------------------------------------------------------------------


def survey_engine() -> E.Engine:
    return E.Engine.from_banks(load_banks().values(), load_model().version)


@dataclass
class Planned:
    """One update to deliver, and whether it answers a question (for progress checks)."""

    body: dict[str, Any]
    question_id: str | None = None


@dataclass
class Respondent_:
    user: User
    role: str
    updates: list[Planned] = field(default_factory=list)
    expected: dict[str, str] = field(default_factory=dict)  # question id -> answer code
    sent: int = 0  # how many of `updates` were answered 200


class Updates:
    """Telegram-shaped update bodies with unique ids (one counter per test)."""

    def __init__(self, start: int = 500_000) -> None:
        self._update_ids = itertools.count(start)
        self._msg_ids = itertools.count(9_000_000)
        self._users = itertools.count(1)

    def user(self) -> User:
        n = next(self._users)
        return User(7_400_000_000 + n * 7919, f"fault_{n:04d}_zq")

    def message(self, user: User, text: str) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "message_id": next(self._msg_ids),
            "date": int(time.time()),
            "chat": {"id": user.id, "type": "private", "first_name": user.first_name},
            "from": user.as_dict(),
            "text": text,
        }
        if text.startswith("/"):
            msg["entities"] = [
                {"type": "bot_command", "offset": 0, "length": len(text.split(" ", 1)[0])}
            ]
        return {"update_id": next(self._update_ids), "message": msg}

    def tap(self, user: User, data: str) -> dict[str, Any]:
        return {
            "update_id": next(self._update_ids),
            "callback_query": {
                "id": str(next(self._msg_ids)),
                "from": user.as_dict(),
                "chat_instance": "-4242",
                "data": data,
                "message": {
                    "message_id": 1,
                    "date": int(time.time()),
                    "chat": {"id": user.id, "type": "private", "first_name": user.first_name},
                    "text": "…",
                },
            },
        }


def plan_people(
    engine: E.Engine, invites: dict[str, str], roles: Sequence[str], count: int = 0
) -> list[Respondent_]:
    """`count` new people (one per role by default), the roles taken in turn, each with
    the updates of a whole survey through their role's invite."""
    updates = Updates()
    return [
        plan(engine, updates, roles[i % len(roles)], invites[roles[i % len(roles)]], seed=i)
        for i in range(count or len(roles))
    ]


def plan(engine: E.Engine, updates: Updates, role: str, code: str, *, seed: int = 0) -> Respondent_:
    """The updates of a whole survey for a new person, and the answers they leave."""
    user = updates.user()
    bank = next(b for b in engine.banks.values() if b.role.value == role)
    r = Respondent_(user, role)
    r.updates.append(Planned(updates.message(user, f"/start {code}")))
    r.updates.append(Planned(updates.tap(user, callback.encode(bank.tag, callback.CONSENT, "yes"))))
    state = engine.rebuild(
        bank_tag=bank.tag, cycle_id=1, lang="en", status="in_progress", answers={}
    )
    for i in itertools.count():
        if state.get("stage") == "done":
            break
        assert i < 200
        q = bank.question(state["pos"])
        if q.kind in ("scale", "choice"):
            choices = [c.id for c in engine.render(state).prompts[0].choices]
            choice = choices[(i * 7 + seed) % len(choices)]
            body = updates.tap(user, callback.encode(bank.tag, q.id, choice))
            event: E.Event = E.Answer(q.id, choice)
        elif q.kind == "number":
            text = str(int(q.number.min))  # type: ignore[union-attr]
            body, event = updates.message(user, text), E.Answer(None, text)
        else:
            text = f"Free text {seed} {i}: more visits please."
            body, event = updates.message(user, text), E.Answer(None, text)
        step = engine.step(state, event)
        assert step.changed, (q.id, step.prompts)
        state = step.state
        r.updates.append(Planned(body, q.id))
    r.expected = dict(state["ans"])
    return r


async def stored_codes(sessionmaker: async_sessionmaker, subject: str) -> tuple[str | None, dict]:
    """(status, answers as the state's short codes) of one person, from the database."""
    async with sessionmaker() as s:
        row = (
            await s.execute(
                select(Response.id, Response.status)
                .join(Respondent, Respondent.id == Response.respondent_id)
                .where(Respondent.subject_hash == subject)
            )
        ).all()
        if not row:
            return None, {}
        assert len(row) == 1, "more than one response for one person"
        rid, status = row[0]
        answers = await responses.load_answers(s, rid)
        comments = await responses.load_comments(s, rid)
    codes = {qid: "t" for qid in comments}
    for qid, a in answers.items():
        assert qid not in codes, f"{qid} is both an answer and a comment"
        codes[qid] = E.answer_code(
            value=a.value, na=a.na, number=a.number, choice=a.choice, skipped=a.skipped
        )
    return status, codes


async def post_update(
    session: aiohttp.ClientSession, base_url: str, body: dict[str, Any], seconds: float = 10
) -> int:
    """POST one update as Telegram does; the status, or 0 if the connection failed."""
    try:
        async with session.post(
            base_url + "/telegram/webhook",
            data=json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json",
                "X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET,
            },
            timeout=aiohttp.ClientTimeout(total=seconds),
        ) as resp:
            await resp.read()
            return resp.status
    except (aiohttp.ClientError, TimeoutError, ConnectionError):
        return 0


async def deliver_until_ok(
    session: aiohttp.ClientSession,
    base_url: Callable[[], str] | str,
    body: dict[str, Any],
    *,
    deadline: float,
    pause: float = 0.1,
) -> list[int]:
    """Telegram's retry: again and again until 200 (or the deadline: then fail)."""
    statuses: list[int] = []
    while True:
        url = base_url() if callable(base_url) else base_url
        status = await post_update(session, url, body)
        statuses.append(status)
        if status == 200:
            return statuses
        if time.monotonic() > deadline:
            raise AssertionError(f"update {body['update_id']} never answered 200: {statuses}")
        await asyncio.sleep(pause)
