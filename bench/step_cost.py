"""What each kind of update costs the server in CPU: a /start, a consent, a question tap.

    python -m bench.step_cost [--people 400] [--concurrency 8] [--rounds 3] [--profile]

One `serve` process (PostgreSQL, Redis, the fake Bot API with no rate limit), as `make bench`
starts it. Each round: `--people` new respondents send /start (phase "start"), then each taps
consent ("consent"), then each answers the first four questions ("taps"), `--concurrency` at a
time; the server's CPU seconds over each phase divided by its updates. Prints the median over
the rounds of the CPU milliseconds per update for each phase.

`--profile`: py-spy (`pip install -e '.[bench]'`) records the server during each phase of the
last round into bench/results/profile_step_<phase>.txt (collapsed stacks; read them with
`python -m bench.profile_top FILE`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
from typing import Any

from bench import common as C
from bench import load as L
from bench.run import Bench, config

PHASES = ("start", "consent", "taps")


async def _phase(
    proc: C.Proc,
    bodies: list[list[bytes]],
    concurrency: int,
    profile_to: str | None,
) -> tuple[float, int, dict[str, int]]:
    """Send each person's bodies in order, `concurrency` people at once: (cpu s, updates, statuses)."""
    url = proc.url + "/telegram/webhook"
    statuses: dict[str, int] = {}
    queue: asyncio.Queue[list[bytes]] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    spy = None
    if profile_to:
        exe = shutil.which("py-spy", path=C.PY.rsplit("/", 1)[0]) or "py-spy"
        spy = await asyncio.create_subprocess_exec(
            *(exe, "record", "-p", str(proc.pid), "-f", "raw", "-o", profile_to, "-r", "250"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        await asyncio.sleep(1.0)

    async def worker(session: Any) -> None:
        while not queue.empty():
            for body in queue.get_nowait():
                status = await L._post(session, url, body)
                statuses[str(status)] = statuses.get(str(status), 0) + 1

    cpu0 = C.cpu_seconds(proc.pid)
    async with L._session(concurrency) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    cpu = C.cpu_seconds(proc.pid) - cpu0
    if spy is not None:
        spy.send_signal(2)
        await asyncio.wait_for(spy.wait(), 30)
    return cpu, sum(len(b) for b in bodies), statuses


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    bench = Bench(config())
    await bench.setup_db()
    fake = await bench.fake_api()
    proc = await bench.ours(fake)
    tag, script = L.bank_tag(), L.learner_script()
    per_phase: dict[str, list[float]] = {p: [] for p in PHASES}
    statuses: dict[str, dict[str, int]] = {}
    try:
        for r in range(args.rounds):
            base = bench.uids(args.people)
            people = [
                L.respondent_updates(base + j, bench.invites["profile"], tag, script)
                for j in range(args.people)
            ]
            parts = {
                "start": [[json.dumps(u[0][1]).encode()] for u in people],
                "consent": [[json.dumps(u[1][1]).encode()] for u in people],
                "taps": [[json.dumps(x[1]).encode() for x in u[2:6]] for u in people],
            }
            last = r == args.rounds - 1
            for phase in PHASES:
                out = (
                    str(C.RESULTS / f"profile_step_{phase}.txt") if args.profile and last else None
                )
                cpu, n, st = await _phase(proc, parts[phase], args.concurrency, out)
                per_phase[phase].append(1000 * cpu / n)
                statuses[phase] = st
    finally:
        bench.stop(proc)
        bench.stop(fake)
        await C.drop_database(bench.db_name)
        await C.redis_prefix_cleanup(bench.prefix)
    return {
        "cpu_ms_per_update_median": {
            p: round(statistics.median(v), 3) for p, v in per_phase.items()
        },
        "rounds": {p: [round(x, 3) for x in v] for p, v in per_phase.items()},
        "statuses_last_round": statuses,
        "people": args.people,
        "load_average": os.getloadavg(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--people", type=int, default=400)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    print(json.dumps(asyncio.run(main_async(args)), indent=2))


if __name__ == "__main__":
    main()
