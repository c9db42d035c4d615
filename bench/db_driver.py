"""Which Postgres driver for role-scoped requests: psycopg 3 (+ psycopg_pool) or asyncpg?

Each simulated request does what ``lib.db.session`` does for an API call: take a pooled connection as
``authenticator``, BEGIN READ ONLY, ``set_config`` role / claims / headers / statement_timeout in one
statement, read 50 signals newest first, COMMIT. Both drivers get the same pool size and concurrency.

Run against the local stack (``make demo`` first):  .venv/bin/python bench/db_driver.py [--requests N]
It is a benchmark, not a test: it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable

import asyncpg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from lib.config import load_settings
from lib.db.target import database_target

SET_CONFIG = (
    "select set_config('role', {}, true), set_config('request.jwt.claims', {}, true), "
    "set_config('request.headers', {}, true), set_config('statement_timeout', {}, true)"
)
QUERY = "select id, symbol, score, created_at from signals order by created_at desc, id desc limit 50"
CLAIMS = json.dumps({"role": "anon"})


async def run(
    label: str, request: Callable[[], Awaitable[None]], n: int, concurrency: int
) -> dict[str, float]:
    latencies: list[float] = []
    queue = iter(range(n))

    async def worker() -> None:
        for _ in queue:
            t0 = time.perf_counter()
            await request()
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        "req/s": n / wall,
        "p50 ms": 1000 * statistics.median(latencies),
        "p95 ms": 1000 * latencies[int(0.95 * len(latencies)) - 1],
        "p99 ms": 1000 * latencies[int(0.99 * len(latencies)) - 1],
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--pool", type=int, default=8)
    args = parser.parse_args()
    url = database_target(load_settings()).app_url

    pg_pool: AsyncConnectionPool = AsyncConnectionPool(
        url, min_size=args.pool, max_size=args.pool, open=False, kwargs={"row_factory": dict_row}
    )
    await pg_pool.open(wait=True)
    apg_pool = await asyncpg.create_pool(url, min_size=args.pool, max_size=args.pool)
    assert apg_pool is not None

    async def psycopg_request() -> None:
        async with pg_pool.connection() as conn:
            await conn.set_read_only(True)
            async with conn.transaction():
                await conn.execute(SET_CONFIG.format("%s", "%s", "%s", "%s"), ("anon", CLAIMS, "{}", "3s"))
                await (await conn.execute(QUERY)).fetchall()

    async def psycopg_pipeline_request() -> None:
        async with pg_pool.connection() as conn:
            await conn.set_read_only(True)
            async with conn.pipeline(), conn.transaction():
                await conn.execute(SET_CONFIG.format("%s", "%s", "%s", "%s"), ("anon", CLAIMS, "{}", "3s"))
                cur = await conn.execute(QUERY)
            await cur.fetchall()

    async def asyncpg_request() -> None:
        async with apg_pool.acquire() as conn, conn.transaction(readonly=True):
            await conn.execute(SET_CONFIG.format("$1", "$2", "$3", "$4"), "anon", CLAIMS, "{}", "3s")
            await conn.fetch(QUERY)

    print(f"{args.requests} role-scoped read requests, concurrency {args.concurrency}, pool {args.pool}")
    for _round in range(2):  # the first round warms both pools and the server's caches
        results = {
            "psycopg 3 + psycopg_pool": await run(
                "psycopg", psycopg_request, args.requests, args.concurrency
            ),
            "psycopg 3, pipeline mode": await run(
                "pipeline", psycopg_pipeline_request, args.requests, args.concurrency
            ),
            "asyncpg": await run("asyncpg", asyncpg_request, args.requests, args.concurrency),
        }
    print(f"{'driver':<26}{'req/s':>10}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}")
    for name, r in results.items():
        print(f"{name:<26}{r['req/s']:>10.0f}{r['p50 ms']:>10.2f}{r['p95 ms']:>10.2f}{r['p99 ms']:>10.2f}")
    base = results["psycopg 3 + psycopg_pool"]["req/s"]
    for name in ("psycopg 3, pipeline mode", "asyncpg"):
        print(f"{name} / plain psycopg throughput: {results[name]['req/s'] / base:.2f}x")
    await pg_pool.close()
    await apg_pool.close()


if __name__ == "__main__":
    asyncio.run(main())
