"""Open-loop latency of signals-api and diagnostics, per request rate and worker count, end to end.

For each worker count the bench starts its own functions server (:func:`lib.http.workers.running_workers`)
on the local stack's database (the demo's by default; ``AITRADEX_DB_NAME=aitradex_test`` for the
tests'), and for each rate it sends requests on a fixed schedule: request ``i`` is due at
``start + i / R``, whatever happened to the ones before it. Latency is measured from that due time,
not from when the request was written, so a server that falls behind cannot hide its queue (no
coordinated omission): a request that waited for a free connection, or sat in the server's backlog,
counts all of its wait.

Each case is one JSON line: ``endpoint``, ``rate``, ``workers``, ``p50_ms``, ``p95_ms``, ``p99_ms``,
``max_ms``, ``sent``, ``errors`` (not a 200, or no answer), ``achieved_rate`` (answers per second over
the case), and ``send_late_p99_ms``: how late the generator itself wrote its requests. If that is not
small against the latencies, the generator measured itself; ``--generators`` spreads it over several
processes (each sends every G-th request of the one schedule, on keep-alive connections of its own).

- ``signals-api``: ``{"action": "list", "limit": 50}`` as a signed-in user (an ES256 access token from
  this server's ``/auth/v1``), over 1,000 display signals the bench makes sure exist (status
  ``skipped``, so never execution work);
- ``diagnostics``: the anonymous summary (the anon key).

Run: .venv/bin/python bench/functions_latency.py [--rate 200,400,600,800] [--workers 1,2]
     [--seconds 10] [--generators 0 (auto)] [--endpoint signals-api,diagnostics]
It is a benchmark, not a test: it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import uvloop
from psycopg.types.json import Jsonb

from lib.config import Settings, load_settings
from lib.db.session import Caller, Database
from lib.db.target import admin_connection, database_target, start_database
from lib.http.workers import WorkerSpec, running_workers
from lib.local_state import read_services
from lib.ops.stack_replay import replay_start_ms, stack_symbols
from lib.paper_exchange.config import PaperExchangeConfig
from lib.paper_exchange.server import running_paper_exchange
from lib.services.auth.tokens import mint_api_key
from lib.services.auth.users import create_user_with_password

SEED_SIGNALS = 1000
#: Keep-alive connections per generator process: far more than a healthy server needs in flight.
CONNECTIONS = 48
#: A request with no answer after this long counts as an error (and its latency as this long).
REQUEST_TIMEOUT_S = 30.0
#: One generator process drives about this many requests per second with a small send lateness here.
PER_GENERATOR_RATE = 400


async def seed_signals(db: Database) -> int:
    """Make sure 1,000 display signals exist to page through; returns how many were added."""
    async with db.read(Caller.service()) as conn:
        row = await (
            await conn.execute("select count(*) as n from signals where symbol like 'BENCH%%'")
        ).fetchone()
    have = int(row["n"]) if row else 0
    if have >= SEED_SIGNALS:
        return 0
    base = datetime(2018, 1, 15, tzinfo=UTC)
    async with db.write(Caller.service()) as conn:
        for i in range(have, SEED_SIGNALS):
            bar = base + timedelta(minutes=5 * i)
            await conn.execute(
                "insert into signals (symbol, timeframe, direction, algorithm, score, confidence, "
                "entry_price, stop_loss, take_profit, atr, components, bar_time, expires_at, status) "
                "values (%s, '5', 'LONG', 'unirail_core', %s, 0.8, 100, 97, 106, 1.5, %s, %s, %s, 'skipped') "
                "on conflict do nothing",
                (
                    f"BENCH{i % 20}",
                    60 + i % 40,
                    Jsonb({"trend": 25.0, "momentum": 15.0}),
                    bar,
                    bar + timedelta(hours=1),
                ),
            )
    return SEED_SIGNALS - have


def encode(path: str, body: dict[str, object], token: str, host: str) -> bytes:
    """One pre-encoded keep-alive POST."""
    payload = json.dumps(body).encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\napikey: {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload


class Connection:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams: pre-encoded requests, sized answers.

    httpx's pool spent a full core to drive about 150 req/s here, which measured the client.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> int:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        start = head.lower().find(b"content-length:")
        length = int(head[start + 15 : head.index(b"\r\n", start)]) if start >= 0 else 0
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


async def _generate(
    host: str, port: int, raw: bytes, rate: float, count: int, start: float, index: int, generators: int
) -> dict[str, list[float] | int]:
    """Send requests ``index, index + G, ...`` of the schedule ``start + i / rate``; gather timings."""
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(CONNECTIONS):
        idle.put_nowait(await Connection.open(host, port))
    latencies: list[float] = []
    lateness: list[float] = []
    errors = 0

    async def one(due: float) -> None:
        nonlocal errors
        # The generator's own lateness: how long after its due time the request started (before any
        # wait for a free connection, which is the server's queue and counts in the latency only).
        lateness.append(time.monotonic() - due)
        connection = await idle.get()
        try:
            status = await asyncio.wait_for(connection.request(raw), REQUEST_TIMEOUT_S)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            errors += 1
            latencies.append(time.monotonic() - due)
            connection.close()
            idle.put_nowait(await Connection.open(host, port))
            return
        latencies.append(time.monotonic() - due)
        errors += status != 200
        idle.put_nowait(connection)

    tasks = []
    for i in range(index, count, generators):
        due = start + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    while not idle.empty():
        idle.get_nowait().close()
    return {"latencies": latencies, "lateness": lateness, "errors": errors}


def _generator_process(args: tuple[Any, ...]) -> dict[str, list[float] | int]:
    return uvloop.run(_generate(*args))


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, max(0, math.ceil(p * len(ordered)) - 1))]


def run_case(
    pool: Any, url: str, raw: bytes, rate: float, seconds: float, generators: int
) -> dict[str, float | int]:
    """One open-loop run at ``rate`` for ``seconds``, over ``generators`` processes."""
    parsed = httpx.URL(url)
    count = int(rate * seconds)
    # Every process connects first, then they all start on the same monotonic clock.
    start = time.monotonic() + 1.5
    jobs = [(parsed.host, parsed.port, raw, rate, count, start, g, generators) for g in range(generators)]
    results = pool.map(_generator_process, jobs)
    latencies = [x for r in results for x in r["latencies"]]
    lateness = [x for r in results for x in r["lateness"]]
    errors = sum(int(r["errors"]) for r in results)
    wall = max(latencies_end(start, count, rate, latencies), 1e-9)
    return {
        "sent": len(latencies),
        "errors": errors,
        "achieved_rate": round((len(latencies) - errors) / wall, 1),
        "p50_ms": round(_pct(latencies, 0.50), 2),
        "p95_ms": round(_pct(latencies, 0.95), 2),
        "p99_ms": round(_pct(latencies, 0.99), 2),
        "max_ms": round(_pct(latencies, 1.0), 2),
        "send_late_p99_ms": round(_pct(lateness, 0.99), 2),
    }


def latencies_end(start: float, count: int, rate: float, latencies: list[float]) -> float:
    """Seconds from the first due time to the last answer (the last due time plus its latency, at least)."""
    return (count - 1) / rate + max(latencies, default=0.0)


def user_token(settings: Settings, url: str) -> str:
    """A signed-in user's access token from the server's own ``/auth/v1`` (what the web app holds)."""
    email = f"bench-{uuid.uuid4().hex[:10]}@bench.local"
    with admin_connection(database_target(settings)) as admin:
        made = create_user_with_password(admin, email, settings.jwt_secret.reveal())
    anon = mint_api_key("anon", settings.jwt_secret.reveal())
    answer = httpx.post(
        f"{url}/auth/v1/token?grant_type=password",
        json={"email": email, "password": made.password},
        headers={"apikey": anon},
        timeout=30,
    )
    answer.raise_for_status()
    return str(answer.json()["access_token"])


@contextmanager
def paper_exchange(settings: Settings) -> Iterator[str]:
    """The local stack's paper exchange if it runs, else one in this process (diagnostics probes it)."""
    running = read_services(settings.state_dir, settings.database.db_name).get("paper_exchange_url")
    if running and _answers(str(running)):
        yield str(running)
        return
    config = PaperExchangeConfig(
        symbols=stack_symbols(), state_path=None, port=0, start_time_ms=replay_start_ms()
    )
    with running_paper_exchange(config) as url:
        yield url


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v5/market/time", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=_floats, default=[200.0, 400.0, 600.0, 800.0])
    parser.add_argument("--workers", type=_ints, default=[1, 2])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--generators", type=int, default=0, help="0: one per 400 req/s")
    parser.add_argument("--endpoint", default="signals-api,diagnostics")
    args = parser.parse_args()

    settings = load_settings()
    start_database(settings)

    async def seed() -> int:
        async with Database(database_target(settings).app_url) as db:
            return await seed_signals(db)

    added = asyncio.run(seed())
    anon = mint_api_key("anon", settings.jwt_secret.reveal())
    endpoints = [e.strip() for e in args.endpoint.split(",") if e.strip()]
    spawn = multiprocessing.get_context("spawn")
    most = args.generators or math.ceil(max(args.rate) / PER_GENERATOR_RATE)
    with paper_exchange(settings) as paper_url, spawn.Pool(most) as pool:
        for workers in args.workers:
            with running_workers(WorkerSpec(settings=settings, paper_url=paper_url), workers) as url:
                token = user_token(settings, url)
                host = str(httpx.URL(url).netloc.decode())
                raws = {
                    "signals-api": encode(
                        "/functions/v1/signals-api", {"action": "list", "limit": 50}, token, host
                    ),
                    "diagnostics": encode("/functions/v1/diagnostics", {}, anon, host),
                }
                for endpoint in endpoints:
                    run_case(pool, url, raws[endpoint], 100.0, 2.0, 1)  # warm-up: pools, caches, imports
                    for rate in args.rate:
                        generators = args.generators or math.ceil(rate / PER_GENERATOR_RATE)
                        figures = run_case(pool, url, raws[endpoint], rate, args.seconds, generators)
                        line = {"endpoint": endpoint, "rate": rate, "workers": workers, **figures}
                        print(json.dumps({**line, "generators": generators, "seeded": added}), flush=True)


if __name__ == "__main__":
    main()
