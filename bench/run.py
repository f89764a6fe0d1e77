"""`make bench`: every measurement of bench/README.md in one run; writes bench/results/latest.*.

    python -m bench.run            (BENCH_QUICK=1 for the ~2 minute version)

Sizes come from environment variables (defaults: full / quick):
    BENCH_USERS          closed-loop virtual users               64 / 32
    BENCH_SECONDS        closed-loop measuring time (s)          15 / 6
    BENCH_RATE           open-loop offered updates/s             200 / 200
    BENCH_OPEN_SECONDS   open-loop length (s)                    36 / 12
    BENCH_SESSIONS       sessions opened for the memory figure   5000 / 5000
    BENCH_BURST_USERS    respondents of the outbound burst       300 / 20
    BENCH_MINIAPP_USERS  respondents through the Mini App        1000 / 300
    BENCH_THINK          Mini App think time per answer (s, ±50%) 2.0 / 2.0
    BENCH_MINIAPP_SWEEP  Mini App crowds after it, one process   400,600,800 / (none)
                         (which crowd it still serves at p99 < 100 ms, at how many answers/s)
    BENCH_MINIAPP_TWO    a Mini App crowd over two `serve`        1000 / 0 (none)
                         processes, round robin per request
    BENCH_BURST_DEADLINE outbound burst time limit (s)           420 / 60
    BENCH_SEED_SCHOOLS / BENCH_SEED_RESPONDENTS / BENCH_SEED_ANSWERS   100,1000,20 / 20,500,20
    BENCH_PROFILE=1      py-spy (if installed) records ours during the closed loop
    BENCH_ONLY=a,b       run only some parts: ceiling, reference, ours, two, outbound, miniapp,
                         seed ("two": the closed loop over two `serve` processes, round robin)
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

from bench import common as C
from bench import load as L
from bot.ratelimit import CHAT_BURST, CHAT_RATE


def config() -> dict[str, Any]:
    q = C.quick()
    return {
        "quick": q,
        "users": C.env_int("BENCH_USERS", 32 if q else 64),
        "seconds": C.env_float("BENCH_SECONDS", 6 if q else 15),
        "rate": C.env_float("BENCH_RATE", 200),
        "open_seconds": C.env_float("BENCH_OPEN_SECONDS", 12 if q else 36),
        "sessions": C.env_int("BENCH_SESSIONS", 5000),
        "burst_users": C.env_int("BENCH_BURST_USERS", 20 if q else 300),
        "miniapp_users": C.env_int("BENCH_MINIAPP_USERS", 300 if q else 1000),
        "think": C.env_float("BENCH_THINK", 2.0),
        "miniapp_sweep": [
            int(n)
            for n in os.environ.get("BENCH_MINIAPP_SWEEP", "" if q else "400,600,800").split(",")
            if n.strip()
        ],
        "miniapp_two": C.env_int("BENCH_MINIAPP_TWO", 0 if q else 1000),
        "burst_deadline": C.env_float("BENCH_BURST_DEADLINE", 60 if q else 420),
        "seed_schools": C.env_int("BENCH_SEED_SCHOOLS", 20 if q else 100),
        "seed_respondents": C.env_int("BENCH_SEED_RESPONDENTS", 500 if q else 1000),
        "seed_answers": C.env_int("BENCH_SEED_ANSWERS", 20),
        "profile": os.environ.get("BENCH_PROFILE", "") not in ("", "0"),
        "only": {p for p in os.environ.get("BENCH_ONLY", "").split(",") if p},
    }


def wanted(cfg: dict[str, Any], part: str) -> bool:
    return not cfg["only"] or part in cfg["only"]


def system_busy_seconds() -> float:
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + parts[4]
    return (sum(parts[:8]) - idle) / C.CLK_TCK


class Bench:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.db_name = ""
        self.db_url = ""
        self.prefix = f"bench:{secrets.token_hex(4)}:"
        self.invites: dict[str, str] = {}
        self.cycle_ids: dict[str, int] = {}  # one cycle per phase: its answers are counted
        self.procs: list[C.Proc] = []
        self.tmp = C.RESULTS / "tmp"
        self.uid = 7_100_000_000

    def uids(self, n: int) -> int:
        base = self.uid
        self.uid += n + 1000
        return base

    # -- infrastructure ------------------------------------------------------------------------

    async def setup_db(self) -> None:
        from storage.migrate import upgrade

        self.db_name, self.db_url = await C.create_database("bench")
        await upgrade(self.db_url)
        from conversations.model import load_model
        from storage import responses, schools
        from storage.db import create_engine, make_sessionmaker

        engine = create_engine(self.db_url)
        try:
            async with make_sessionmaker(engine).begin() as s:
                school = await schools.create_school(s, "bench", "Bench Vocational School")
                for phase in (
                    "ref_closed",
                    "ref_open",
                    "ours_closed",
                    "ours_open",
                    "ours_sessions",
                    "ceiling",
                    "burst",
                    "miniapp",
                    "two",
                    "profile",
                ):
                    cycle = await schools.create_cycle(s, school.id, phase, load_model().version)
                    (inv,) = await responses.create_invites(
                        s, cycle.id, "learner", 1, max_uses=None, label=phase
                    )
                    self.invites[phase] = inv.code
                    self.cycle_ids[phase] = cycle.id
        finally:
            await engine.dispose()

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> C.Proc:
        port = C.free_port()
        args = [a.replace("{port}", str(port)) for a in args]
        proc = C.spawn(name, args, port, env)
        self.procs.append(proc)
        return proc

    def stop(self, proc: C.Proc) -> None:
        proc.stop()
        if proc in self.procs:
            self.procs.remove(proc)

    async def fake_api(self, rate: float = 0) -> C.Proc:
        args = [C.PY, "-m", "bench.fake_bot_api", "--port", "{port}", "--rate", str(rate)]
        proc = self.start(f"fake_bot_api_rate{int(rate)}", args)
        await C.wait_http(proc.url + "/_bench/stats", proc=proc)
        return proc

    async def ours(self, fake: C.Proc, name: str = "ours") -> C.Proc:
        self.tmp.mkdir(parents=True, exist_ok=True)
        env = {
            "DATABASE_URL": self.db_url,
            "REDIS_URL": C.REDIS_URL,
            "REDIS_PREFIX": self.prefix,
            "TELEGRAM_BOT_TOKEN": C.TOKEN,
            "TELEGRAM_API_BASE_URL": fake.url,
            "TELEGRAM_WEBHOOK_SECRET": C.SECRET,
            "PUBLIC_URL": "",
            "HOST": "127.0.0.1",
            "PORT": "{port}",
            "SECRET_KEY": "bench-secret-key-" + "x" * 24,
            "DATA_DIR": str(self.tmp),
        }
        port = C.free_port()
        env["PORT"] = str(port)
        exe = shutil.which("guidance-survey", path=os.path.dirname(C.PY)) or "guidance-survey"
        proc = C.spawn(name, [exe, "serve"], port, env)
        self.procs.append(proc)
        await C.wait_http(proc.url + "/healthz", timeout=90, proc=proc)
        return proc

    async def ceiling(self) -> C.Proc:
        proc = self.start("ceiling", [C.PY, "-m", "bench.ceiling", "--port", "{port}"])
        await C.wait_http(proc.url + "/healthz", proc=proc)
        return proc

    async def reference(self, fake: C.Proc) -> C.Proc:
        data = self.tmp / f"reference_{secrets.token_hex(3)}"
        args = [
            C.PY,
            "-m",
            "bench.reference_bot",
            "--port",
            "{port}",
            "--api",
            fake.url,
            "--data",
            str(data),
        ]
        proc = self.start("reference_bot", args)
        proc.extra["data"] = data
        await C.wait_http(proc.url + "/healthz", proc=proc)
        return proc

    # -- measurements ----------------------------------------------------------------------------

    async def closed(self, proc: C.Proc, code_key: str) -> dict[str, Any]:
        cpu0, busy0 = C.cpu_seconds(proc.pid), system_busy_seconds()
        t0 = time.monotonic()
        res = await L.closed_loop(
            proc.url,
            self.invites[code_key],
            users=self.cfg["users"],
            seconds=self.cfg["seconds"],
            uid_base=self.uids(10**6),
            warmup=1.0,
        )
        wall = time.monotonic() - t0
        cpu = C.cpu_seconds(proc.pid) - cpu0
        busy = system_busy_seconds() - busy0
        total = res["updates_ok"] * (wall / max(res["seconds"], 1e-9))  # incl. warm-up, approx.
        res["server_cpu_s"] = round(cpu, 2)
        res["server_cpu_util"] = round(cpu / wall, 2)
        res["cpu_s_per_1000"] = round(1000 * cpu / max(total, 1), 2)
        res["machine_cpu_s_per_1000"] = round(1000 * busy / max(total, 1), 2)
        res["rss_mb"] = round(C.rss_bytes(proc.pid) / 2**20, 1)
        return res

    async def two_processes(self, fake: C.Proc) -> dict[str, Any]:
        """The closed loop over two `serve` processes on one PostgreSQL and Redis, each
        request to the next process in turn (a respondent's updates alternate)."""
        procs = [await self.ours(fake, f"ours_two_{i}") for i in (1, 2)]
        cpu0 = [C.cpu_seconds(p.pid) for p in procs]
        res = await L.closed_loop(
            [p.url for p in procs],
            self.invites["two"],
            users=self.cfg["users"],
            seconds=self.cfg["seconds"],
            uid_base=self.uids(10**6),
            warmup=1.0,
        )
        res["server_cpu_s"] = [
            round(C.cpu_seconds(p.pid) - c, 2) for p, c in zip(procs, cpu0, strict=True)
        ]
        for p in procs:
            self.stop(p)
        res["answers_in_db"] = await self.answers_in_db("two")
        return res

    async def opened(self, proc: C.Proc, code_key: str) -> dict[str, Any]:
        cpu0 = C.cpu_seconds(proc.pid)
        res = await L.open_loop(
            proc.url,
            self.invites[code_key],
            rate=self.cfg["rate"],
            seconds=self.cfg["open_seconds"],
            uid_base=self.uids(10**5),
        )
        res["server_cpu_s"] = round(C.cpu_seconds(proc.pid) - cpu0, 2)
        res["cpu_s_per_1000"] = round(1000 * res["server_cpu_s"] / max(res["updates_ok"], 1), 2)
        res["rss_mb"] = round(C.rss_bytes(proc.pid) / 2**20, 1)
        return res

    async def answers_in_db(self, phase: str) -> int:
        import asyncpg

        conn = await asyncpg.connect(C.asyncpg_url(self.db_url))
        try:
            return await conn.fetchval(
                "SELECT count(*) FROM answer a JOIN response r ON r.id = a.response_id "
                "WHERE r.cycle_id = $1",
                self.cycle_ids[phase],
            )
        finally:
            await conn.close()

    async def redis_figures(self, sessions: int, used_before: int) -> dict[str, Any]:
        import redis.asyncio as aioredis

        r = aioredis.from_url(C.REDIS_URL)
        out: dict[str, Any] = {}
        try:
            for kind, pattern in (
                ("session", self.prefix + "session:r:*"),
                ("card", self.prefix + "session:tgcard:*"),
                ("update_dedup", self.prefix + "update:*"),
            ):
                keys: list[bytes] = []
                count = 0
                async for k in r.scan_iter(match=pattern, count=2000):
                    count += 1
                    if len(keys) < 300:
                        keys.append(k)
                sizes = [await r.memory_usage(k) or 0 for k in keys]
                ttls = [await r.ttl(k) for k in keys[:20]]
                out[kind] = {
                    "keys": count,
                    "avg_bytes": round(sum(sizes) / len(sizes)) if sizes else None,
                    "sample": len(sizes),
                    "ttl_s_example": ttls[0] if ttls else None,
                }
            info = await r.info("memory")
            out["used_memory_delta_per_session"] = round(
                (info["used_memory"] - used_before) / max(sessions, 1)
            )
            sess = out["session"]["avg_bytes"] or 0
            card = out["card"]["avg_bytes"] or 0
            out["per_active_respondent_bytes"] = sess + card
        finally:
            await r.aclose()
        return out

    async def redis_used(self) -> int:
        import redis.asyncio as aioredis

        r = aioredis.from_url(C.REDIS_URL)
        try:
            return (await r.info("memory"))["used_memory"]
        finally:
            await r.aclose()

    async def metrics_text(self, proc: C.Proc) -> str:
        """The server's /metrics over loopback (with METRICS_TOKEN when the server has one)."""
        import aiohttp

        token = os.environ.get("METRICS_TOKEN", "")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with (
            aiohttp.ClientSession() as s,
            s.get(proc.url + "/metrics", headers=headers) as r,
        ):
            r.raise_for_status()  # a 404/401 is no empty set of counters
            return await r.text()


def metric_sum(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def fake_stats(fake: C.Proc) -> dict[str, Any]:
    import aiohttp

    async with aiohttp.ClientSession() as s, s.get(fake.url + "/_bench/stats") as r:
        return await r.json()


async def run_all(cfg: dict[str, Any]) -> dict[str, Any]:
    b = Bench(cfg)
    out: dict[str, Any] = {}
    await b.setup_db()
    try:
        fake = await b.fake_api(0)

        out["loadavg_at_start"] = os.getloadavg()
        if wanted(cfg, "ceiling"):
            print("== ceiling", flush=True)
            p = await b.ceiling()
            out["ceiling"] = {
                "closed": await b.closed(p, "ceiling"),
                "open": await b.opened(p, "ceiling"),
            }
            out["ceiling"]["rss_mb"] = round(C.rss_bytes(p.pid) / 2**20, 1)
            b.stop(p)

        if wanted(cfg, "reference"):
            print("== reference bot (PTB ConversationHandler + PicklePersistence)", flush=True)
            p = await b.reference(fake)
            ref = {"closed": await b.closed(p, "ref_closed"), "open": await b.opened(p, "ref_open")}
            ref["rss_mb"] = round(C.rss_bytes(p.pid) / 2**20, 1)
            b.stop(p)
            pickle = p.extra["data"] / "reference_bot.pickle"
            ref["pickle_bytes"] = pickle.stat().st_size if pickle.exists() else None
            out["reference"] = ref

        if wanted(cfg, "ours"):
            print("== ours (guidance-survey serve)", flush=True)
            p = await b.ours(fake)
            rss_start = C.rss_bytes(p.pid)
            prof = None
            if cfg["profile"] and shutil.which("py-spy", path=os.path.dirname(C.PY)):
                prof = subprocess.Popen(  # noqa: S603, ASYNC220
                    [
                        shutil.which("py-spy", path=os.path.dirname(C.PY)),
                        "record",
                        "--pid",
                        str(p.pid),
                        "--duration",
                        str(int(cfg["seconds"]) + 1),
                        "--format",
                        "raw",
                        "--output",
                        str(C.RESULTS / "profile_ours.txt"),
                        "--nonblocking",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            ours: dict[str, Any] = {"closed": await b.closed(p, "ours_closed")}
            if prof is not None:
                prof.wait(60)
            ours["closed"]["answers_in_db"] = await b.answers_in_db("ours_closed")
            ours["open"] = await b.opened(p, "ours_open")
            ours["open"]["answers_in_db"] = await b.answers_in_db("ours_open")
            # Requests the client gave up on (30 s) may still be stored: none answered 200 may be missing.
            ours["open"]["durable"] = ours["open"]["answers_in_db"] >= ours["open"]["answers_ok"]
            m = await b.metrics_text(p)
            ours["outbound_gave_up"] = metric_sum(m, "gs_bot_api_calls_total", outcome="gave_up")
            b.stop(p)
            # Memory with many sessions open: a fresh process, then N people /start + consent.
            p = await b.ours(fake, "ours_sessions")
            used0 = await b.redis_used()
            rss0 = C.rss_bytes(p.pid)
            sess = await L.open_sessions(
                p.url,
                b.invites["ours_sessions"],
                sessions=cfg["sessions"],
                uid_base=b.uids(cfg["sessions"]),
            )
            sess["rss_mb_before"] = round(rss0 / 2**20, 1)
            sess["rss_mb"] = round(C.rss_bytes(p.pid) / 2**20, 1)
            sess["peak_rss_mb"] = round(C.peak_rss_bytes(p.pid) / 2**20, 1)
            m = await b.metrics_text(p)
            sess["outbound_queue_at_end"] = metric_sum(m, "gs_outbound_queue_depth")
            sess["redis"] = await b.redis_figures(cfg["sessions"], used0)
            b.stop(p)
            ours["sessions"] = sess
            ours["rss_mb_start"] = round(rss_start / 2**20, 1)
            out["ours"] = ours
        if wanted(cfg, "two"):
            print("== two serve processes, round robin", flush=True)
            out["two"] = await b.two_processes(fake)
        b.stop(fake)

        if wanted(cfg, "outbound") or wanted(cfg, "miniapp"):
            print("== outbound: fake Bot API at 30 messages/s with 429", flush=True)
            fake30 = await b.fake_api(30)
            p = await b.ours(fake30, "ours_outbound")
            if wanted(cfg, "outbound"):
                res = await L.telegram_burst(
                    p.url,
                    fake30.url,
                    b.invites["burst"],
                    users=cfg["burst_users"],
                    uid_base=b.uids(cfg["burst_users"]),
                    deadline_s=cfg["burst_deadline"],
                )
                st = await fake_stats(fake30)
                m = await b.metrics_text(p)
                answered = await b.answers_in_db("burst")
                calls = st["message_calls_ok"]
                res["fake_api"] = st
                res["answers_in_db"] = answered
                res["messages_given_up"] = metric_sum(
                    m, "gs_bot_api_calls_total", outcome="gave_up"
                )
                res["calls_429"] = st["limited_429"]
                res["message_calls_per_answer"] = round(calls / max(answered, 1), 3)
                # Without the two cards every respondent gets before the first question
                # (the /start consent card and the consent tap's edit into question 1).
                res["message_calls_per_answer_after_consent"] = round(
                    (calls - 2 * res["finished"]) / max(answered, 1), 3
                )
                # The physical limit: Telegram's 30 message calls/s for the bot, and the
                # pacing of one chat (bot.ratelimit: CHAT_BURST at once, then CHAT_RATE/s),
                # which the busiest chat cannot beat however idle the bot is.
                busiest = st["busiest_chat_calls"]
                res["limit_global_s"] = round(calls / 30, 1)
                res["limit_chat_s"] = round(max(busiest - CHAT_BURST, 0) / CHAT_RATE, 1)
                res["busiest_chat_calls"] = busiest
                limit = max(calls / 30, max(busiest - CHAT_BURST, 0) / CHAT_RATE)
                res["physical_limit_s"] = round(limit, 1)
                span = st["message_span_s"] or 0
                res["message_span_s"] = round(span, 1)
                res["over_physical_limit"] = round(span / max(limit, 1e-9) - 1, 3)
                out["outbound"] = res
            if wanted(cfg, "miniapp"):

                async def crowd(users: int, *more: C.Proc) -> dict[str, Any]:
                    """One crowd through the Mini App (each request to the next server: this
                    one, then `more`), with the servers' CPU and the answers stored (this
                    crowd's only)."""
                    servers = [p, *more]
                    stored0 = await b.answers_in_db("miniapp")
                    cpu0 = [C.cpu_seconds(s.pid) for s in servers]
                    res = await L.miniapp_burst(
                        [s.url for s in servers],
                        b.invites["miniapp"],
                        users=users,
                        uid_base=b.uids(users),
                        think=cfg["think"],
                    )
                    cpus = [C.cpu_seconds(s.pid) - c for s, c in zip(servers, cpu0, strict=True)]
                    res["answers_in_db"] = await b.answers_in_db("miniapp") - stored0
                    res["server_cpu_s"] = [round(c, 2) for c in cpus]
                    calls = sum(res["statuses"].values())
                    res["server_cpu_ms_per_call"] = round(1000 * sum(cpus) / max(calls, 1), 2)
                    return res

                print("== Mini App", flush=True)
                out["miniapp"] = await crowd(cfg["miniapp_users"])
                out["miniapp_sweep"] = sweep = []
                for users in cfg["miniapp_sweep"]:
                    print(f"== Mini App crowd of {users}", flush=True)
                    sweep.append(await crowd(users))
                if cfg["miniapp_two"]:
                    print(f"== Mini App crowd of {cfg['miniapp_two']}, two processes", flush=True)
                    second = await b.ours(fake30, "ours_miniapp_2")
                    out["miniapp_two"] = await crowd(cfg["miniapp_two"], second)
                    b.stop(second)
            b.stop(p)
            b.stop(fake30)
    finally:
        for proc in list(b.procs):
            b.stop(proc)
        await C.redis_prefix_cleanup(b.prefix)
        await C.drop_database(b.db_name)
        shutil.rmtree(b.tmp, ignore_errors=True)

    if wanted(cfg, "seed"):
        print("== triangulation at scale (bench.seed)", flush=True)
        args = [
            C.PY,
            "-m",
            "bench.seed",
            "--schools",
            str(cfg["seed_schools"]),
            "--respondents",
            str(cfg["seed_respondents"]),
            "--answers",
            str(cfg["seed_answers"]),
            "--repeat",
            "3" if cfg["quick"] else "5",
        ]
        subprocess.run(args, cwd=C.ROOT, check=True, stdout=subprocess.DEVNULL, timeout=900)  # noqa: S603, ASYNC221
        out["seed"] = json.loads((C.RESULTS / "seed.json").read_text())
    return out


# -- the table ------------------------------------------------------------------------------------


def _g(d: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def _f(v: Any, nd: int = 1) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def _ratio(a: Any, b: Any) -> str:
    if not a or not b:
        return "–"
    return f"{a / b:.2f}"


def table(res: dict[str, Any], cfg: dict[str, Any]) -> str:
    c, r, o = res.get("ceiling", {}), res.get("reference", {}), res.get("ours", {})
    lines = [
        "| measure | ceiling | reference (PTB) | ours | ours/ceiling | ours/reference | target | met |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def row(name, cv, rv, ov, target="", met="", nd=1, ratios=True):
        rc = _ratio(ov, cv) if ratios else ""
        rr = _ratio(ov, rv) if ratios else ""
        lines.append(
            f"| {name} | {_f(cv, nd)} | {_f(rv, nd)} | {_f(ov, nd)} | {rc} | {rr} | {target} | {met} |"
        )

    ct, rt, ot = (_g(x, "closed", "updates_per_s") for x in (c, r, o))
    row(
        f"sustained updates/s (closed loop, {cfg['users']} users)",
        ct,
        rt,
        ot,
        ">= 10% of ceiling, >= 3x reference",
        _f(bool(ot and ct and rt and ot >= 0.1 * ct and ot >= 3 * rt)) if ot and ct and rt else "–",
    )
    for p in ("p50_ms", "p95_ms", "p99_ms"):
        vals = [_g(x, "open", "latency", p) for x in (c, r, o)]
        tgt, met = (
            (
                "< 50 ms and below the reference",
                _f(bool(vals[2] < 50 and (vals[1] is None or vals[2] < vals[1])))
                if vals[2] is not None
                else "–",
            )
            if p == "p99_ms"
            else ("", "")
        )
        row(f"latency {p[:3]} at {cfg['rate']:.0f} updates/s (ms)", *vals, tgt, met)
    for part, what in (
        ("latency_answers", "question taps"),
        ("latency_start_consent", "/start and consent"),
    ):
        row(
            f"latency p99 at {cfg['rate']:.0f} updates/s, {what} only (ms)",
            *[_g(x, "open", part, "p99_ms") for x in (c, r, o)],
        )
    row(
        "offered rate reached (updates/s)",
        *[_g(x, "open", "offered_rate") for x in (c, r, o)],
        f"{cfg['rate']:.0f}",
        "",
        ratios=False,
    )
    ocpu = _g(o, "closed", "cpu_s_per_1000")
    row(
        "server CPU s per 1,000 updates = ms per update (closed loop)",
        *[_g(x, "closed", "cpu_s_per_1000") for x in (c, r, o)],
        "<= 2.0",
        _f(bool(ocpu is not None and ocpu <= 2.0)) if ocpu is not None else "–",
        nd=2,
    )
    row(
        "server CPU s per 1,000 updates (at fixed rate)",
        *[_g(x, "open", "cpu_s_per_1000") for x in (c, r, o)],
        nd=2,
    )
    row(
        "machine CPU s per 1,000 updates (all processes)",
        *[_g(x, "closed", "machine_cpu_s_per_1000") for x in (c, r, o)],
        nd=2,
    )
    row("server RSS after the runs (MB)", _g(c, "rss_mb"), _g(r, "rss_mb"), _g(o, "open", "rss_mb"))
    op = o.get("open", {})
    if op:
        row(
            "answers in PostgreSQL / question taps answered 200 (fixed rate)",
            None,
            None,
            f"{op.get('answers_in_db')} / {op.get('answers_ok')}",
            ">= (none lost)",
            _f(op.get("durable")),
            ratios=False,
        )
    s = o.get("sessions", {})
    if s:
        rb = _g(s, "redis", "per_active_respondent_bytes")
        row(
            "Redis bytes per active session (state + card key)",
            None,
            None,
            rb,
            "< 1024",
            _f(bool(rb is not None and rb < 1024)),
            ratios=False,
        )
        row(
            "Redis bytes per session (used_memory delta, incl. dedup keys)",
            None,
            None,
            _g(s, "redis", "used_memory_delta_per_session"),
            "",
            "",
            ratios=False,
        )
        row(
            f"server RSS with {s.get('sessions')} sessions open (MB)",
            None,
            None,
            s.get("rss_mb"),
            "< 250",
            _f(bool(s.get("rss_mb") and s["rss_mb"] < 250)),
            ratios=False,
        )
    tw = res.get("two")
    if tw:
        lines += [
            "",
            "| two `serve` processes, one PostgreSQL and Redis, round robin per request | value | target | met |",
            "|---|---|---|---|",
            f"| sustained updates/s (closed loop, {tw['users']} users) | {_f(tw['updates_per_s'])} | | |",
            f"| server CPU s of each process | {' / '.join(_f(x, 2) for x in tw['server_cpu_s'])} | both busy | {_f(all(x > 0.5 for x in tw['server_cpu_s']))} |",
            f"| answers in PostgreSQL / question taps answered 200 (warm-up included) | {tw['answers_in_db']} / {tw['answers_ok_all']} | >= (none lost) | {_f(tw['answers_in_db'] >= tw['answers_ok_all'])} |",
            f"| statuses | {tw['statuses']} | | |",
        ]
    ob = res.get("outbound")
    if ob:
        lines += [
            "",
            "| outbound burst (fake Bot API 30 msg/s, 429 + retry_after) | value | target | met |",
            "|---|---|---|---|",
        ]
        lines.append(
            f"| respondents finished / started | {ob['finished']} / {ob['users']} (unfinished at the {cfg['burst_deadline']:.0f} s deadline: {ob['stuck']}) | all | {_f(ob['finished'] == ob['users'])} |"
        )
        lines.append(
            f"| messages lost (given up) | {int(ob['messages_given_up'])} | 0 | {_f(ob['messages_given_up'] == 0)} |"
        )
        lines.append(f"| 429 answers received | {ob['calls_429']} | | |")
        lines.append(
            f"| Bot API message calls per answered question (all / after the consent card) | {ob['message_calls_per_answer']} / {ob['message_calls_per_answer_after_consent']} | <= 1.02 | {_f(ob['message_calls_per_answer'] <= 1.02)} |"
        )
        lines.append(
            f"| burst duration (first to last message call) vs physical limit = max(message calls / 30 = {ob['limit_global_s']} s, busiest chat's {ob['busiest_chat_calls']} calls at {CHAT_RATE:g}/s after a burst of {CHAT_BURST} = {ob['limit_chat_s']} s) | {ob['message_span_s']} s vs {ob['physical_limit_s']} s ({ob['over_physical_limit'] * 100:+.1f}%) | within 10% | {_f(ob['over_physical_limit'] <= 0.10)} |"
        )
        lines.append(
            f"| tap -> card shown p50 / p99 (ms) | {_f(ob['tap_to_card']['p50_ms'])} / {_f(ob['tap_to_card']['p99_ms'])} | | |"
        )
        lines.append(f"| webhook latency p99 (ms) | {_f(ob['webhook_latency']['p99_ms'])} | | |")
    ma = res.get("miniapp")
    if ma:
        lines += [
            "",
            "| Mini App (same survey, HTTP + signed initData) | value | target | met |",
            "|---|---|---|---|",
        ]
        lines.append(
            f"| respondents finished / started | {ma['finished']} / {ma['users']} | all | {_f(ma['finished'] == ma['users'])} |"
        )
        lines.append(
            f"| answers stored / answered 200 | {ma['answers_in_db']} / {ma['answers_ok']} | equal | {_f(ma['answers_in_db'] == ma['answers_ok'])} |"
        )
        p99 = ma["latency"]["p99_ms"]
        lines.append(
            f"| latency per answer p50 / p95 / p99 (ms), {ma['users']} respondents | {_f(ma['latency']['p50_ms'])} / {_f(ma['latency']['p95_ms'])} / {_f(p99)} | p99 < 100 ms with 1,000 | {_f(bool(ma['users'] >= 1000 and p99 is not None and p99 < 100)) if ma['users'] >= 1000 else '– (fewer than 1,000)'} |"
        )
        lines.append(
            f"| latency p99, question answers / arrival (code + consent) (ms) | {_f(_g(ma, 'latency_questions', 'p99_ms'))} / {_f(_g(ma, 'latency_arrival', 'p99_ms'))} | | |"
        )
        lines.append(
            f"| answers/s one process carried (answers answered 200 / whole burst) | {_f(ma.get('answers_per_s'))} | | |"
        )
        lines.append(
            f"| server CPU ms per call (state, consent and answers) | {_f(ma.get('server_cpu_ms_per_call'))} | | |"
        )
        lines.append(
            f"| whole burst duration (s), think time {cfg['think']} s ±50% per answer | {ma['duration_s']} | as fast as they tap | |"
        )
    crowds = res.get("miniapp_sweep") or []
    if crowds:
        lines += [
            "",
            f"| Mini App crowds, one process, think time {cfg['think']} s ±50% | answers/s carried | p50 / p99, every call (ms) | p99, question answers / arrival (code + consent) (ms) | server CPU ms per call | finished | answers stored / answered 200 | p99 < 100 ms |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for c in crowds:
            p99 = c["latency"]["p99_ms"]
            lines.append(
                f"| {c['users']} respondents | {_f(c.get('answers_per_s'))} | {_f(c['latency']['p50_ms'])} / {_f(p99)} | {_f(c['latency_questions']['p99_ms'])} / {_f(c['latency_arrival']['p99_ms'])} | {_f(c.get('server_cpu_ms_per_call'))} | {c['finished']} / {c['users']} | {c['answers_in_db']} / {c['answers_ok']} | {_f(p99 is not None and p99 < 100)} |"
            )
        served = [
            c for c in crowds if c["latency"]["p99_ms"] is not None and c["latency"]["p99_ms"] < 100
        ]
        best = max(served, key=lambda c: c.get("answers_per_s") or 0, default=None)
        lines.append(
            "| the most one process carried at p99 < 100 ms | "
            + (
                f"{_f(best.get('answers_per_s'))} answers/s ({best['users']} respondents)"
                if best
                else "none of these crowds"
            )
            + " | | | | | | |"
        )
    two = res.get("miniapp_two")
    if two:
        p99 = two["latency"]["p99_ms"]
        lines += [
            "",
            f"| Mini App crowd over two `serve` processes (round robin per request), think time {cfg['think']} s ±50% | value | target | met |",
            "|---|---|---|---|",
            f"| respondents finished / started | {two['finished']} / {two['users']} | all | {_f(two['finished'] == two['users'])} |",
            f"| answers stored / answered 200 | {two['answers_in_db']} / {two['answers_ok']} | equal | {_f(two['answers_in_db'] == two['answers_ok'])} |",
            f"| answers/s carried | {_f(two.get('answers_per_s'))} | | |",
            f"| latency p50 / p99, every call (ms) | {_f(two['latency']['p50_ms'])} / {_f(p99)} | p99 < 100 ms | {_f(p99 is not None and p99 < 100)} |",
            f"| latency p99, question answers / arrival (code + consent) (ms) | {_f(two['latency_questions']['p99_ms'])} / {_f(two['latency_arrival']['p99_ms'])} | | |",
            f"| server CPU s of each process; ms per call in all | {' / '.join(str(c) for c in two['server_cpu_s'])}; {_f(two.get('server_cpu_ms_per_call'))} | both busy | {_f(all(c > 0.5 for c in two['server_cpu_s']))} |",
        ]
    sd = res.get("seed")
    if sd:
        w, i = sd.get("without_index", {}), sd.get("with_index", {})
        lines += [
            "",
            f"| triangulation at scale: {sd['seed']['answers']:,} answers, {sd['seed']['schools']} schools | without index | with candidate index | target | met |",
            "|---|---|---|---|---|",
        ]
        br, bri = (
            _g(w, "build_report_one_school", "median_ms"),
            _g(i, "build_report_one_school", "median_ms"),
        )
        cl, cli = _g(w, "cluster_sql", "median_ms"), _g(i, "cluster_sql", "median_ms")
        lines.append(f"| seeding (COPY) answers/s | {sd['seed']['answers_per_s_copy']:,} | | | |")
        lines.append(
            f"| the anonymity gate: first release of one school (ms; question states) | {_f(w.get('release_first_ms'))} ({w.get('release_first_states')}) | {_f(i.get('release_first_ms'))} ({i.get('release_first_states')}) | | |"
        )
        lines.append(
            f"| the gate: look again, nothing changed (ms, median) | {_f(_g(w, 'release_unchanged', 'median_ms'))} | {_f(_g(i, 'release_unchanged', 'median_ms'))} | | |"
        )
        lines.append(
            f"| the gate: look again after a change, nothing new to release (ms, median) | {_f(_g(w, 'release_after_change', 'median_ms'))} | {_f(_g(i, 'release_after_change', 'median_ms'))} | | |"
        )
        lines.append(
            f"| build_report from the releases, one school (ms, median) | {_f(br)} | {_f(bri)} | < 300 | {_f(bool(br and br < 300))} |"
        )
        lines.append(
            f"| cluster view, one SQL, per-person means (ms) | {_f(cl)} | {_f(cli)} | < 2000 | {_f(bool(cl and cl < 2000))} |"
        )
        lines.append(
            f"| cluster view, one SQL, per-answer means (ms) | {_f(_g(w, 'cluster_sql_flat', 'median_ms'))} | {_f(_g(i, 'cluster_sql_flat', 'median_ms'))} | | |"
        )
        lines.append(
            f"| same figures in Python (load rows, aggregate) (ms) | {_f(_g(w, 'cluster_python', 'median_ms'))} | {_f(_g(i, 'cluster_python', 'median_ms'))} | | |"
        )
        lines.append(
            f"| Python / SQL | {_f(w.get('python_over_sql'))}x | {_f(i.get('python_over_sql'))}x | | |"
        )
        cp = sd.get("cluster_page")
        if cp:
            stored = _g(cp, "all_stored", "median_ms")
            lines += [
                "",
                f"| the dashboard's cluster view ({cp['schools']} schools, stored summaries) | ms | summaries built | target | met |",
                "|---|---|---|---|---|",
                f"| first release of every school's answers (once per cycle; question states) | {_f(cp.get('first_release_ms'))} | ({cp.get('first_release_states')}) | | |",
                f"| nothing stored (a report per school) | {_f(cp['nothing_stored_ms'])} | {cp['nothing_stored_built']} | | |",
                f"| everything stored (median) | {_f(stored)} | {cp['all_stored_built']} | < 2000 | {_f(bool(stored and stored < 2000))} |",
                f"| one school changed since (median) | {_f(cp['one_school_changed_ms'])} | {cp['one_school_changed_built']} | < 2000 | {_f(cp['one_school_changed_ms'] < 2000)} |",
            ]
    return "\n".join(lines)


def _load(v: Any) -> str:
    return "/".join(f"{x:.1f}" for x in v) if v else "–"


def main() -> None:
    cfg = config()
    C.RESULTS.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    res = asyncio.run(run_all(cfg))
    cmd = "make bench" + (" BENCH_QUICK=1" if cfg["quick"] else "")
    meta = {
        "command": cmd,
        "argv": " ".join(shlex.quote(a) for a in sys.argv),
        "env": {k: v for k, v in os.environ.items() if k.startswith("BENCH_")},
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": C.machine(),
        "git": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
            cwd=C.ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip(),
        "config": {k: v for k, v in cfg.items() if k != "only"} | {"only": sorted(cfg["only"])},
        "total_s": round(time.monotonic() - started, 1),
        "loadavg_at_end": os.getloadavg(),
    }
    md = table(res, cfg)
    m = meta["machine"]
    header = (
        f"# Benchmark: {meta['when']}\n\n"
        f"`{cmd}` on {m['nproc']} x {m['cpu_model']}, {m['mem_gb']} GB, Python {m['python']}, "
        f"git {meta['git']}; {meta['total_s']} s in all. Load average (1/5/15 min) at the start "
        f"{_load(res.get('loadavg_at_start'))}, at the end {_load(meta['loadavg_at_end'])}: other "
        "work on the machine shares its 2 cores with every process measured here.\n\n"
    )
    (C.RESULTS / "latest.json").write_text(
        json.dumps({"meta": meta, "results": res}, indent=2) + "\n"
    )
    (C.RESULTS / "latest.md").write_text(header + md + "\n")
    print(header + md)


if __name__ == "__main__":
    main()
