"""One signal fanned out to many paper users, database included: how fast does the executor place orders?

What it does, in order:

1. starts a paper exchange in its own process (state in memory, clock frozen, access log off), so its
   CPU is not this process's GIL;
2. seeds N users the real way and times it separately: ``auth.users`` rows, a funded paper account
   each, keys checked and stored encrypted by ``lib.services.accounts.connect_account``, preference rows with
   auto-trade on (``quantum_ai`` on the 720-minute timeframe, which nobody else's defaults select);
3. inserts one LONG signal at the exchange's current price and warms the instruments cache (a cached
   filter read is what every executor run after the first one sees);
4. runs ``execute_pending`` for that signal only, on uvloop as the functions server does, timing the
   whole run and, per order, the time from the start of the run (the claim is its first statement) to
   the exchange's acknowledgement of the order;
5. prints the figures with the rows by status (every user should have one ``placed`` row) and the CPU
   time each process spent, then deletes its users again (cascading to their accounts, preferences,
   orders and logs).

Run: .venv/bin/python bench/fanout.py [--users 1000] [--concurrency N] [--threads 32] [--profile FILE]
The database is the one ``AITRADEX_DB_NAME`` names (default: the demo's); the stack's database must be up.
It is a benchmark, not a test: it prints figures and asserts nothing.

Measured on this 2-core machine with other test suites running beside it (load average 2-3), 1,000
users, back to back (seeding, not included below, took 9-11 s):

| executor | orders/s | ack p50 | ack p95 | CPU s: executor / exchange / postgres |
|---|---|---|---|---|
| before | 54-57 | 8.3-8.8 s | 16.5-17.4 s | 16.0-16.9 / 3.3 / 4.1-4.3 |
| after | 235-244 | 2.2-2.3 s | 3.9-4.1 s | 3.5-3.9 / 1.3-1.4 / 0.7 |

Before: one transaction per write (about seven per order), a requests session per account, a look-up
after every order. After: grouped writes, one urllib3 transport under every pybit session, no look-up
unless the exchange answered 110072.

Three signed calls per order remain (wallet, leverage, create) and set the floor: about 0.65 ms of
client CPU each in the executor and 0.45 ms each in the paper exchange. "ack" is measured from the start
of the run, so the p50 of a 1,000-order fan-out is mostly the queue in front of each order.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import httpx
import psutil  # type: ignore[import-untyped]
import uvloop

from lib.config import load_settings
from lib.core.clock import SystemClock
from lib.crypto import KeyVault
from lib.db.session import Caller, Database
from lib.db.target import admin_connection, database_target
from lib.exchange.access import MarketAccess
from lib.exchange.ports import Credentials, OrderRequest, TradingExchange
from lib.exchange.trading import PybitExchange
from lib.paper_exchange import create_paper_account_async
from lib.services.accounts import connect_account
from lib.services.auth.users import create_local_user
from lib.services.execution.deps import ExecutorDeps, outcomes_summary
from lib.services.execution.fanout import execute_pending
from lib.services.instruments.cache import get_filters

SYMBOL = "ETHUSDT"
ALGORITHM = "quantum_ai"
TIMEFRAME = "720"
ENVIRONMENTS = ("mainnet", "testnet", "demo")


def serve_paper_exchange() -> None:
    """Child mode: run a paper exchange, print its URL, serve until stdin closes."""
    from lib.paper_exchange import PaperExchangeConfig, running_paper_exchange

    with running_paper_exchange(PaperExchangeConfig(state_path=None, port=0)) as url:
        print(url, flush=True)
        sys.stdin.read()


@dataclass
class TimedExchange:
    """The real exchange, noting when each order create was acknowledged (perf_counter seconds)."""

    inner: TradingExchange
    acks: list[float] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    async def wallet_balance(self, creds: Credentials) -> Any:
        self._count("wallet_balance")
        return await self.inner.wallet_balance(creds)

    async def set_leverage(self, creds: Credentials, category: str, symbol: str, leverage: int) -> None:
        self._count("set_leverage")
        await self.inner.set_leverage(creds, category, symbol, leverage)

    async def place_order(self, creds: Credentials, order: OrderRequest) -> str:
        self._count("place_order")
        order_id = await self.inner.place_order(creds, order)
        self.acks.append(time.perf_counter())
        return order_id

    async def find_order(self, creds: Credentials, category: str, symbol: str, order_link_id: str) -> Any:
        self._count("find_order")
        return await self.inner.find_order(creds, category, symbol, order_link_id)

    async def recent_orders(self, creds: Credentials, category: str, symbol: str) -> Any:
        self._count("recent_orders")
        return await self.inner.recent_orders(creds, category, symbol)

    async def position(self, creds: Credentials, category: str, symbol: str) -> Any:
        self._count("position")
        return await self.inner.position(creds, category, symbol)


async def seed_users(
    db: Database,
    admin: Any,
    vault: KeyVault,
    exchange: PybitExchange,
    paper_url: str,
    n: int,
    run: str,
    jwt_secret: str,
) -> list[str]:
    """N users with a connected paper account and auto-trade preferences; returns their ids."""
    with admin.transaction():
        user_ids = [
            create_local_user(admin, f"bench-fanout-{run}-{i}@bench.local", jwt_secret).id for i in range(n)
        ]
    gate = asyncio.Semaphore(32)
    async with httpx.AsyncClient(timeout=30) as client:

        async def connect(user_id: str) -> None:
            async with gate:
                account = await create_paper_account_async(paper_url, "10000", client=client)
                caller = Caller(role="authenticated", claims={"role": "authenticated", "sub": user_id})
                creds = Credentials("paper", account.api_key, account.api_secret)
                await connect_account(db, vault, exchange, caller, user_id, creds)

        await asyncio.gather(*(connect(u) for u in user_ids))
    async with db.write(Caller.service()) as conn:
        await conn.execute(
            "insert into trading_preferences (user_id, auto_trade_enabled, algorithms, timeframes, "
            "min_score, risk_per_trade_pct, max_position_usd, leverage, max_open_positions) "
            "select u, true, %s, %s, 80, 1, 1000, 2, 5 from unnest(%s::uuid[]) u",
            ([ALGORITHM], [TIMEFRAME], user_ids),
        )
    return user_ids


async def insert_signal(db: Database, paper_url: str, now: datetime) -> UUID:
    async with httpx.AsyncClient(timeout=10) as client:
        body = (
            await client.get(
                f"{paper_url}/v5/market/tickers", params={"category": "linear", "symbol": SYMBOL}
            )
        ).json()
    price = Decimal(body["result"]["list"][0]["lastPrice"])
    async with db.write(Caller.service()) as conn:
        row = await (
            await conn.execute(
                "insert into signals (symbol, timeframe, direction, algorithm, score, confidence, "
                "entry_price, stop_loss, take_profit, atr, bar_time, expires_at) "
                "values (%s, %s, 'LONG', %s, 95, 0.9, %s, %s, %s, %s, %s, %s) returning id",
                (
                    SYMBOL,
                    TIMEFRAME,
                    ALGORITHM,
                    price,
                    price * Decimal("0.99"),
                    price * Decimal("1.02"),
                    price * Decimal("0.005"),
                    now - timedelta(microseconds=uuid.uuid4().int % 10**9),
                    now + timedelta(hours=1),
                ),
            )
        ).fetchone()
    assert row is not None
    return UUID(str(row["id"]))


def cpu_seconds(paper_pid: int) -> dict[str, float]:
    """CPU time so far of this process, the paper exchange, and every PostgreSQL process."""
    postgres = 0.0
    for proc in psutil.process_iter(["name", "cpu_times"]):
        if proc.info["name"] == "postgres" and proc.info["cpu_times"] is not None:
            times = proc.info["cpu_times"]
            postgres += times.user + times.system
    own = psutil.Process().cpu_times()
    paper = psutil.Process(paper_pid).cpu_times()
    return {
        "executor": own.user + own.system,
        "paper_exchange": paper.user + paper.system,
        "postgres": postgres,
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main(args: argparse.Namespace, paper_url: str, paper_pid: int) -> None:
    settings = load_settings()
    target = database_target(settings)
    db = Database(target.app_url, max_size=args.pool)
    await db.open()
    admin = admin_connection(target)
    vault = KeyVault(settings.master_keys)
    everywhere = dict.fromkeys(ENVIRONMENTS, paper_url)
    exchange = PybitExchange(paper_url=paper_url, endpoints=everywhere, threads=args.threads)
    market = MarketAccess(paper_url=paper_url)
    run = uuid.uuid4().hex[:8]
    user_ids: list[str] = []
    try:
        started = time.perf_counter()
        user_ids = await seed_users(
            db, admin, vault, exchange, paper_url, args.users, run, settings.jwt_secret.reveal()
        )
        seeding_s = time.perf_counter() - started
        now = datetime.now(UTC)
        signal_id = await insert_signal(db, paper_url, now)

        async def filters(category: str, environment: str) -> Any:
            return await get_filters(db, market, category, SystemClock(), environment=environment)

        await filters("linear", "paper")  # warm: every run after a deployment's first reads the cache
        # A fresh exchange client: seeding's wallet checks must not have warmed its sessions.
        timed = TimedExchange(PybitExchange(paper_url=paper_url, endpoints=everywhere, threads=args.threads))
        deps = ExecutorDeps(
            db=db,
            exchange=timed,
            vault=vault,
            filters=filters,
            worker=f"bench-{run}",
        )
        if args.concurrency:
            deps.concurrency = args.concurrency
        if args.batch_wait_ms is not None:
            deps.batch_wait_s = args.batch_wait_ms / 1000
        profiler = cProfile.Profile() if args.profile else None
        cpu_before = cpu_seconds(paper_pid)
        t0 = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        report = await execute_pending(deps, now=datetime.now(UTC), signal_ids=[signal_id])
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        total_s = time.perf_counter() - t0
        cpu_after = cpu_seconds(paper_pid)
        async with db.read(Caller.service()) as conn:
            rows = await (
                await conn.execute(
                    "select status, count(*) as n from execution_orders where signal_id = %s group by status",
                    (signal_id,),
                )
            ).fetchall()
        latencies_ms = [(ack - t0) * 1000 for ack in timed.acks]
        placed = len(timed.acks)
        print(
            json.dumps(
                {
                    "users": args.users,
                    "concurrency": deps.concurrency,
                    "batch_wait_ms": deps.batch_wait_s * 1000,
                    "pybit_threads": args.threads,
                    "db_pool": args.pool,
                    "seeding_s": round(seeding_s, 2),
                    "claimed": report.claimed,
                    "outcomes": outcomes_summary(report.outcomes),
                    "rows_by_status": {r["status"]: r["n"] for r in rows},
                    "exchange_calls": timed.calls,
                    "cpu_s_during_run": {k: round(cpu_after[k] - v, 2) for k, v in cpu_before.items()},
                    "total_s": round(total_s, 3),
                    "orders_per_s": round(placed / total_s, 1),
                    "ack_ms_p50": round(statistics.median(latencies_ms), 1) if latencies_ms else None,
                    "ack_ms_p95": round(percentile(latencies_ms, 0.95), 1) if latencies_ms else None,
                },
                indent=2,
            )
        )
    finally:
        if user_ids:
            with admin.transaction():
                admin.execute("delete from auth.users where id = any(%s::uuid[])", (user_ids,))
        admin.close()
        await db.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument(
        "--concurrency", type=int, help="executor's orders in flight (default: the executor's)"
    )
    parser.add_argument("--threads", type=int, default=32, help="pybit worker threads")
    parser.add_argument(
        "--batch-wait-ms", type=float, help="reservation batching window (default: the executor's)"
    )
    parser.add_argument("--pool", type=int, default=10, help="database connections")
    parser.add_argument("--profile", help="write a cProfile of the executor run to this file")
    parser.add_argument("--serve-paper-exchange", action="store_true", help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.serve_paper_exchange:
        serve_paper_exchange()
    else:
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve-paper-exchange"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdin is not None
        assert child.stdout is not None
        try:
            # uvloop: the loop the functions server runs the executor on (lib/ops/stack_runner.py).
            uvloop.run(main(parsed, child.stdout.readline().strip(), child.pid))
        finally:
            child.stdin.close()
            child.wait(timeout=30)
