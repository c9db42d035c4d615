"""Latency and throughput of signals-api and diagnostics under concurrent load, end to end.

The functions server under test is the local stack's own process (started by the rebuild, or here if
it is not running), so the load generator in this process does not share a GIL with the server. Each
request is a real HTTP call through the adapter: auth, validation, a role-scoped database transaction,
JSON. Before measuring it makes sure there are 1,000 display signals to page through. They are
inserted with status 'skipped', so they are never execution work.

Run: .venv/bin/python bench/functions_latency.py [--seconds 10] [--concurrency 32]
It is a benchmark, not a test: it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from datetime import UTC, datetime, timedelta

import httpx
from psycopg.types.json import Jsonb

from lib.config import load_settings
from lib.db.session import Caller, Database
from lib.db.target import database_target
from lib.ops import stack_runner
from lib.services.auth.tokens import mint_api_key

SEED_SIGNALS = 1000


async def seed_signals(db: Database) -> int:
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


class KeepAliveClient:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams.

    httpx's pool spent a full core to drive about 150 req/s here, which measured the client, not the
    server. This sends pre-encoded requests and reads Content-Length bodies, nothing else.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await self.reader.readexactly(length)
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def encode(path: str, body: dict[str, object], token: str, host: str) -> bytes:
    payload = json.dumps(body).encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload


async def load(host: str, port: int, raw: bytes, seconds: float, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        client = KeepAliveClient(host, port)
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                status = await client.request(raw)
                latencies.append(time.perf_counter() - started)
                errors += status != 200
        finally:
            await client.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return 1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))]

    return {
        "requests": len(latencies),
        "errors": errors,
        "req/s": len(latencies) / wall,
        "p50": 1000 * statistics.median(latencies),
        "p95": pct(0.95),
        "p99": pct(0.99),
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()

    settings = load_settings()
    facts = stack_runner.running_facts(settings)
    if facts is None:
        print("starting the local stack (make demo normally does this) ...")
        facts = stack_runner.start_detached(settings, dict(os.environ))
    async with Database(database_target(settings).app_url) as db:
        added = await seed_signals(db)
    print(f"functions server: {facts['api_url']} (pid {facts['pid']}); seeded {added} display signals")
    anon = mint_api_key("anon", settings.jwt_secret.reveal())
    url = httpx.URL(str(facts["api_url"]))
    host, port = str(url.host), int(url.port or 80)
    cases = [
        ("signals-api list, 50 newest", "signals-api", {"action": "list", "limit": 50}),
        (
            "signals-api list, symbol + min_score",
            "signals-api",
            {"action": "list", "symbol": "BENCH3", "min_score": 70},
        ),
        ("diagnostics, anon summary", "diagnostics", {}),
    ]
    print(
        f"{args.concurrency} concurrent clients, {args.seconds:.0f} s per case, "
        "2-core machine, server in its own process"
    )
    print(f"{'case':<40}{'requests':>9}{'errors':>8}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}")
    for label, name, body in cases:
        raw = encode(f"/functions/v1/{name}", body, anon, f"{host}:{port}")
        await load(host, port, raw, 1.0, args.concurrency)  # warm-up
        r = await load(host, port, raw, args.seconds, args.concurrency)
        print(
            f"{label:<40}{r['requests']:>9.0f}{r['errors']:>8.0f}{r['req/s']:>9.0f}"
            f"{r['p50']:>9.1f}{r['p95']:>9.1f}{r['p99']:>9.1f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
