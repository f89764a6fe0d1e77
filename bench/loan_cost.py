"""What lending one pooled PostgreSQL connection costs in CPU, with nothing run on it.

    python -m bench.loan_cost [--loans 5000] [--database-url postgresql+asyncpg://...]

Two ways, alternating, twice each: a SQLAlchemy `Connection` of an AUTOCOMMIT engine around
the pool's connection (how `storage.driver.connect` lent it until the seventh hot-path pass
of bench/README.md), and the pool's connection as it is (`raw_connection`, how it lends it
now). Prints the process's CPU microseconds per loan.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from sqlalchemy.ext.asyncio import AsyncEngine

from storage import driver
from storage.db import create_engine

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


async def _through_connection(engine: AsyncEngine, loans: int) -> None:
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
    for _ in range(loans):
        async with autocommit.connect() as conn:
            _ = (await conn.get_raw_connection()).driver_connection


async def _through_driver(engine: AsyncEngine, loans: int) -> None:
    for _ in range(loans):
        async with driver.connect(engine, transaction=False):
            pass


async def main_async(args: argparse.Namespace) -> dict[str, list[float]]:
    engine = create_engine(args.database_url)
    out: dict[str, list[float]] = {"connection": [], "raw_connection": []}
    try:
        await _through_driver(engine, 100)  # the pool's connections exist before timing
        for _ in range(2):
            for name, way in (
                ("connection", _through_connection),
                ("raw_connection", _through_driver),
            ):
                started = time.process_time()
                await way(engine, args.loans)
                out[name].append(round((time.process_time() - started) / args.loans * 1e6, 1))
    finally:
        await engine.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loans", type=int, default=5000)
    ap.add_argument("--database-url", default=DEFAULT_URL)
    args = ap.parse_args()
    print(json.dumps({"cpu_us_per_loan": asyncio.run(main_async(args))}, indent=2))


if __name__ == "__main__":
    main()
