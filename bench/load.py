"""The load generator (aiohttp client): Telegram-shaped updates, Mini App answers.

Respondents complete the learner survey: `/start <code>`, the consent tap, then one tap per
question (a scale point; the optional free-text question is skipped with its button).

Modes (all bounded in count and time):
- `closed_loop`: N virtual users, each sends its next update when the last one got its
  answer; sustained updates/s.
- `open_loop`: a classroom on a schedule: M respondents each tap every I seconds, staggered,
  so the offered load is M/I updates/s whatever the answers; latency of every request,
  measured from its scheduled time (so a server that falls behind cannot hide it).
- `telegram_burst`: as a person does it: read the card's buttons from the fake Bot API (the
  last keyboard it was sent), tap, wait until the card changes, tap again.
- `miniapp_burst`: the same people through `/app/api/state` and `/app/api/answer` with
  initData signed by the bot token as Telegram does.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.common import SECRET, TOKEN, latency_summary

UPDATE_IDS = itertools.count(random.randint(10_000_000, 20_000_000))
MSG_IDS = itertools.count(1_000_000)
BOT_ID = int(TOKEN.split(":")[0])
NAV = ("back", "skip", "na")


def learner_script() -> list[tuple[str, str | None]]:
    """[(target, choice)] for one respondent after /start: consent, then each question."""
    from bot import callback
    from conversations.banks import load_banks
    from conversations.roles import Role

    bank = load_banks()[Role.LEARNER]
    steps: list[tuple[str, str | None]] = [(callback.CONSENT, "yes")]
    for i, q in enumerate(bank.questions):
        if q.when:
            continue  # no routing in the learner bank; never taken
        if q.kind == "scale":
            steps.append((q.id, str((i * 3) % 5)))
        elif q.kind == "choice":
            steps.append((q.id, "c:" + q.options[0].id))
        else:
            steps.append((q.id, "skip"))
    return steps


def bank_tag() -> str:
    from conversations.banks import load_banks
    from conversations.roles import Role

    return load_banks()[Role.LEARNER].tag


# -- Telegram-shaped updates ----------------------------------------------------------------


def _user(uid: int) -> dict[str, Any]:
    return {"id": uid, "is_bot": False, "first_name": "Ada", "language_code": "en"}


def message_update(uid: int, text: str) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "message_id": next(MSG_IDS),
        "date": int(time.time()),
        "chat": {"id": uid, "type": "private", "first_name": "Ada"},
        "from": _user(uid),
        "text": text,
    }
    if text.startswith("/"):
        msg["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    return {"update_id": next(UPDATE_IDS), "message": msg}


def tap_update(uid: int, message_id: int, data: str) -> dict[str, Any]:
    return {
        "update_id": next(UPDATE_IDS),
        "callback_query": {
            "id": str(next(MSG_IDS)),
            "from": _user(uid),
            "chat_instance": "-4242",
            "data": data,
            "message": {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": {"id": uid, "type": "private", "first_name": "Ada"},
                "from": {"id": BOT_ID, "is_bot": True, "first_name": "Guidance Survey"},
                "text": "…",
            },
        },
    }


def respondent_updates(uid: int, code: str, tag: str, script: list) -> list[tuple[bool, dict]]:
    """[(is_answer, update)]: the whole survey of one respondent, synthesised from the format."""
    from bot import callback

    out: list[tuple[bool, dict]] = [(False, message_update(uid, f"/start {code}"))]
    for target, choice in script:
        data = callback.encode(tag, target, choice or "")
        out.append((not target.startswith("!"), tap_update(uid, 1, data)))
    return out


HEADERS = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET}


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    # the same, split: question taps, and the rest (a person's /start and consent)
    answer_latencies: list[float] = field(default_factory=list)
    other_latencies: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    answers_ok: int = 0  # question taps answered 200
    updates_ok: int = 0
    completed: int = 0  # respondents who sent their whole survey

    def add(self, status: int | str, seconds: float, is_answer: bool) -> None:
        key = str(status)
        self.statuses[key] = self.statuses.get(key, 0) + 1
        self.latencies.append(seconds)
        (self.answer_latencies if is_answer else self.other_latencies).append(seconds)
        if status == 200:
            self.updates_ok += 1
            if is_answer:
                self.answers_ok += 1


async def _post(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str] = HEADERS
) -> int | str:
    try:
        async with session.post(url, data=body, headers=headers) as r:
            await r.read()
            return r.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return type(exc).__name__


def _session(limit: int, timeout: float = 30.0) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, force_close=False),
        timeout=aiohttp.ClientTimeout(total=timeout),
    )


# -- closed loop ---------------------------------------------------------------------------------


async def closed_loop(
    base: str | list[str],
    code: str,
    *,
    users: int,
    seconds: float,
    uid_base: int,
    warmup: float = 2.0,
) -> dict[str, Any]:
    """N users back to back for `seconds` (after `warmup`); updates/s answered 200.

    `base`: one server, or several taken in turn for every request (round robin), so
    that one respondent's updates alternate between processes."""
    bases = [base] if isinstance(base, str) else base
    answered_all = [0]  # question taps answered 200, warm-up included
    urls = itertools.cycle([b + "/telegram/webhook" for b in bases])
    tag, script = bank_tag(), learner_script()
    uids = itertools.count(uid_base)
    tally = Tally()
    measuring = asyncio.Event()
    stop_at = time.monotonic() + warmup + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < stop_at:
            for is_answer, upd in respondent_updates(next(uids), code, tag, script):
                if time.monotonic() >= stop_at:
                    return
                body = json.dumps(upd).encode()
                t0 = time.perf_counter()
                status = await _post(session, next(urls), body)
                if status == 200 and is_answer:
                    answered_all[0] += 1
                if measuring.is_set():
                    tally.add(status, time.perf_counter() - t0, is_answer)
            if measuring.is_set():
                tally.completed += 1

    async with _session(users) as session:
        tasks = [asyncio.create_task(worker(session)) for _ in range(users)]
        await asyncio.sleep(warmup)
        measuring.set()
        t0 = time.monotonic()
        await asyncio.wait(tasks, timeout=seconds + 60)
        elapsed = time.monotonic() - t0
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "users": users,
        "seconds": round(elapsed, 2),
        "updates_ok": tally.updates_ok,
        "updates_per_s": round(tally.updates_ok / elapsed, 1),
        "answers_ok": tally.answers_ok,
        "answers_ok_all": answered_all[0],
        "statuses": tally.statuses,
        "latency": latency_summary(tally.latencies),
        "uids_used": next(uids) - uid_base,
    }


# -- open loop ------------------------------------------------------------------------------------


async def open_loop(
    base: str,
    code: str,
    *,
    rate: float,
    seconds: float,
    uid_base: int,
    connections: int = 100,
) -> dict[str, Any]:
    """A classroom at `rate` updates/s for about `seconds`: whole surveys on a fixed schedule."""
    url = base + "/telegram/webhook"
    tag, script = bank_tag(), learner_script()
    per_person = len(script) + 1
    interval = seconds / per_person  # each person taps every `interval` s
    people = max(1, round(rate * interval))
    tally = Tally()
    lateness: list[float] = []
    pending: set[asyncio.Task] = set()

    async def one(session: aiohttp.ClientSession, at: float, body: bytes, is_answer: bool):
        status = await _post(session, url, body)
        tally.add(status, time.monotonic() - at, is_answer)

    async def person(session: aiohttp.ClientSession, j: int, t0: float) -> None:
        # A person taps the next card only once it is there: each tap waits for the answer to
        # the previous one (causality), and otherwise keeps to its slot in the schedule. If the
        # server is slower than the schedule, the offered rate falls below the target and
        # `offered_ok` says so (rather than taps overtaking each other and being refused as
        # taps on a card that is not current yet, which no real person can do).
        updates = respondent_updates(uid_base + j, code, tag, script)
        for k, (is_answer, upd) in enumerate(updates):
            slot = t0 + j * interval / people + k * interval
            delay = slot - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            at = time.monotonic()
            lateness.append(at - slot)
            body = json.dumps(upd).encode()
            task = asyncio.create_task(one(session, at, body, is_answer))
            pending.add(task)
            task.add_done_callback(pending.discard)
            await task
        tally.completed += 1

    async with _session(connections) as session:
        t0 = time.monotonic() + 0.5
        people_tasks = [asyncio.create_task(person(session, j, t0)) for j in range(people)]
        await asyncio.wait(people_tasks, timeout=seconds + 30)
        last_send = time.monotonic()
        if pending:
            await asyncio.wait(list(pending), timeout=60)
        for t in [*people_tasks, *pending]:
            t.cancel()
    sent = len(lateness)
    offered = sent / max(1e-9, last_send - t0)
    late_p99 = latency_summary(lateness)["p99_ms"] or 0.0
    return {
        "target_rate": rate,
        "people": people,
        "tap_interval_s": round(interval, 3),
        "sent": sent,
        "offered_rate": round(offered, 1),
        "offered_ok": offered >= 0.95 * rate and late_p99 < 20,
        "scheduler_late_p99_ms": late_p99,
        "statuses": tally.statuses,
        "answers_ok": tally.answers_ok,
        "updates_ok": tally.updates_ok,
        "latency": latency_summary(tally.latencies),
        "latency_answers": latency_summary(tally.answer_latencies),
        "latency_start_consent": latency_summary(tally.other_latencies),
        "uids_used": people,
    }


# -- Telegram as a person uses it: read the card, tap, wait for the change ---------------------------


async def telegram_burst(
    base: str,
    fake: str,
    code: str,
    *,
    users: int,
    uid_base: int,
    think: float = 0.0,
    step_timeout: float = 120.0,
    deadline_s: float = 900.0,
) -> dict[str, Any]:
    from bot import callback

    url = base + "/telegram/webhook"
    tally = Tally()
    card_waits: list[float] = []
    stuck: list[int] = []
    finished = 0
    answered = 0
    deadline = time.monotonic() + deadline_s

    async def wait_card(session: aiohttp.ClientSession, uid: int, after: int) -> dict[str, Any]:
        left = max(0.1, min(step_timeout, deadline - time.monotonic()))
        async with session.get(
            f"{fake}/_bench/wait", params={"chat": uid, "after": after, "timeout": left}
        ) as r:
            return await r.json()

    async def person(session: aiohttp.ClientSession, uid: int, start_delay: float) -> None:
        nonlocal finished, answered
        await asyncio.sleep(start_delay)
        t = time.perf_counter()
        status = await _post(
            session, url, json.dumps(message_update(uid, f"/start {code}")).encode()
        )
        tally.add(status, time.perf_counter() - t, False)
        card = await wait_card(session, uid, 0)
        for _ in range(100):
            taps = [callback.decode(d) for d in card["data"]]
            taps = [tp for tp in taps if tp is not None]
            if card["version"] == 0 or not taps:
                break
            consent = [tp for tp in taps if tp.target == callback.CONSENT and tp.choice == "yes"]
            real = [tp for tp in taps if tp.question_id and tp.choice not in NAV]
            skip = [tp for tp in taps if tp.question_id and tp.choice == "skip"]
            tap = (consent or real or skip or [None])[0]
            if tap is None:
                break  # only "back" left: the survey is done
            if think:
                await asyncio.sleep(random.uniform(0.5 * think, 1.5 * think))
            data = callback.encode(tap.bank, tap.target, tap.choice)
            body = json.dumps(tap_update(uid, card["message_id"], data)).encode()
            t = time.perf_counter()
            status = await _post(session, url, body)
            tally.add(status, time.perf_counter() - t, tap.question_id is not None)
            before = card["version"]
            card = await wait_card(session, uid, before)
            card_waits.append(time.perf_counter() - t)
            if card["version"] <= before:
                stuck.append(uid)
                return
            if tap.question_id is not None:
                answered += 1
        finished += 1

    t0 = time.monotonic()
    async with _session(users * 2 + 10, timeout=step_timeout + 10) as session:
        tasks = [asyncio.create_task(person(session, uid_base + j, j * 0.01)) for j in range(users)]
        await asyncio.wait(tasks, timeout=deadline_s + 30)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "users": users,
        "finished": finished,
        "stuck": len(stuck),
        "answers_tapped": answered,
        "duration_s": round(time.monotonic() - t0, 1),
        "webhook_statuses": tally.statuses,
        "webhook_latency": latency_summary(tally.latencies),
        "tap_to_card": latency_summary(card_waits),
    }


# -- Mini App ---------------------------------------------------------------------------------------


def init_data(uid: int, start_param: str | None, token: str = TOKEN) -> str:
    from backend.web.miniapp import sign_init_data

    fields = {
        "auth_date": str(int(time.time())),
        "query_id": f"AAH{uid}",
        "user": json.dumps({"id": uid, "first_name": "Ada", "language_code": "en"}),
    }
    if start_param:
        fields["start_param"] = start_param
    fields["hash"] = sign_init_data(fields, token)
    return urllib.parse.urlencode(fields)


async def miniapp_burst(
    base: str | list[str],
    code: str,
    *,
    users: int,
    uid_base: int,
    think: float = 1.5,
    deadline_s: float = 300.0,
) -> dict[str, Any]:
    """Each person opens the Mini App (state with start_param) and answers every card.
    With several `base` URLs, each request goes to the next server in turn."""
    tally = Tally()
    finished = 0
    deadline = time.monotonic() + deadline_s
    bases = [base] if isinstance(base, str) else base
    turn = itertools.count()

    async def call(session, path: str, headers: dict[str, str], payload: dict) -> Any:
        url = bases[next(turn) % len(bases)] + path
        t = time.perf_counter()
        try:
            async with session.post(url, json=payload, headers=headers) as r:
                body = await r.json() if r.status == 200 else None
                status: int | str = r.status
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            body, status = None, type(exc).__name__
        return status, time.perf_counter() - t, body

    async def person(session: aiohttp.ClientSession, j: int) -> None:
        nonlocal finished
        uid = uid_base + j
        await asyncio.sleep(j * think / max(1, users))  # they scan the QR code within `think` s
        headers = {"X-Telegram-Init-Data": init_data(uid, code)}
        status, secs, body = await call(session, "/app/api/state", headers, {})
        tally.add(status, secs, False)
        headers = {"X-Telegram-Init-Data": init_data(uid, None)}
        for _ in range(100):
            if body is None or time.monotonic() > deadline:
                return
            prompt = (body.get("prompts") or [{}])[0]
            kind = prompt.get("kind")
            if kind == "consent":
                payload = {"choice": "yes"}
            elif kind == "question":
                choices = [c["id"] for c in prompt.get("choices", [])]
                navs = [c["id"] for c in prompt.get("nav", [])]
                if choices:
                    payload = {
                        "question_id": prompt["question_id"],
                        "choice": choices[j % len(choices)],
                    }
                elif "skip" in navs:
                    payload = {"question_id": prompt["question_id"], "choice": "skip"}
                else:
                    payload = {"question_id": prompt["question_id"], "text": "More visits."}
            else:
                finished += 1
                return
            if think:
                await asyncio.sleep(random.uniform(0.5 * think, 1.5 * think))
            status, secs, body = await call(session, "/app/api/answer", headers, payload)
            tally.add(status, secs, kind == "question")

    t0 = time.monotonic()
    async with _session(users) as session:  # a crowd: one connection per phone
        tasks = [asyncio.create_task(person(session, j)) for j in range(users)]
        await asyncio.wait(tasks, timeout=deadline_s + 30)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "users": users,
        "finished": finished,
        "answers_ok": tally.answers_ok,
        "duration_s": round(time.monotonic() - t0, 1),
        "answers_per_s": round(tally.answers_ok / max(time.monotonic() - t0, 1e-9), 1),
        "statuses": tally.statuses,
        "latency": latency_summary(tally.latencies),
        # split: question answers, and the arrival (opening with the code, the consent)
        "latency_questions": latency_summary(tally.answer_latencies),
        "latency_arrival": latency_summary(tally.other_latencies),
    }


# -- many open sessions -------------------------------------------------------------------------------


async def open_sessions(
    base: str, code: str, *, sessions: int, uid_base: int, concurrency: int = 50
):
    """`sessions` respondents open the survey (/start + consent) and stop there."""
    from bot import callback

    url = base + "/telegram/webhook"
    tag = bank_tag()
    tally = Tally()
    ids = iter(range(sessions))

    async def worker(session: aiohttp.ClientSession) -> None:
        for j in ids:
            uid = uid_base + j
            for upd in (
                message_update(uid, f"/start {code}"),
                tap_update(uid, 1, callback.encode(tag, callback.CONSENT, "yes")),
            ):
                t = time.perf_counter()
                status = await _post(session, url, json.dumps(upd).encode())
                tally.add(status, time.perf_counter() - t, False)

    t0 = time.monotonic()
    async with _session(concurrency) as session:
        tasks = [asyncio.create_task(worker(session)) for _ in range(concurrency)]
        await asyncio.wait(tasks, timeout=600)
        for t in tasks:
            t.cancel()
    return {
        "sessions": sessions,
        "seconds": round(time.monotonic() - t0, 1),
        "statuses": tally.statuses,
        "latency": latency_summary(tally.latencies),
    }
