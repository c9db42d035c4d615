"""One signal fanned out to many paper users, database included, inside Bybit's limits: how fast, and how many
exchange calls per order?

What it does, in order:

1. starts a paper exchange in its own process (state in memory, clock frozen, access log off), so its
   CPU is not this process's GIL. It enforces Bybit's limits (600 requests per 5 s per source address,
   then a 403 ban; 10 creates per second per account, then 10006) unless ``--no-limits``;
2. seeds N users the real way and times it separately: ``auth.users`` rows, a funded paper account
   each, keys checked and stored encrypted by ``lib.services.accounts.connect_account``, preference rows with
   auto-trade on (``quantum_ai`` on the 720-minute timeframe, which nobody else's defaults select);
   every client of the process (seeding, market data, the executor) shares one IP budget at the
   deployment's share (``--share``, default 50 %), as one host does;
3. **cold run**: one LONG signal of SOLUSDT at the exchange's current price, ``execute_pending`` for it
   only (on uvloop, as the functions server runs it), with nothing cached: wallet, leverage and create
   per order;
4. **warm run** (unless ``--no-warm``): what earlier signals leave behind (leverage set and in the
   shared memo, each wallet read within the cache's TTL), then one LONG signal of ETHUSDT, timed the
   same way. That is the steady state of the per-order budget; the warm-up's own calls are printed apart;
5. prints one JSON object per run: ``hosts``, ``users``, ``total_s``, ``orders_per_s``, ``ack_ms_p50`` and
   ``ack_ms_p95`` (from the start of the run to the exchange's acknowledgement), and, counted on the
   exchange itself (``GET /_paper/stats``): ``exchange_calls_per_order`` (every request it received
   during the run over the orders placed), ``rate_limited_10006``, ``bans_403`` and ``duplicates``
   (entry orders beyond one per account on the signal's symbol), with the rows by status and the CPU
   each process spent; then deletes its users again (cascading to their accounts, preferences, orders,
   logs and leverage memo).

``--hosts 1,2,4`` runs the warm signal instead on N executor host processes per round, each with its
own source address and IP budget, sharing the signal through its shards; one JSON object per host
count, with each host's orders, shards, first and last acknowledgement and CPU seconds
(``bench/fanout_hosts.py``; ``--trace`` adds where each host's time went).

Run: .venv/bin/python bench/fanout.py [--users 1000] [--share 0.5] [--no-limits] [--no-warm]
[--concurrency N] [--threads 32] [--profile FILE] [--hosts 1,2,4 [--trace]]. The database is the one
``AITRADEX_DB_NAME`` names (default: the demo's); the stack's database must be up. It is a benchmark,
not a test: it prints figures and asserts nothing. Every load loop is bounded (one signal per run) and
all traffic goes to 127.0.0.1 (the hosts': 127.0.0.10 and up, loopback addresses that need no setup on
Linux).

It is about 530 lines, over the 400 of the layout rule: the seeding, the exchange's counts and the
figures are shared by the single-host runs and the ``--hosts`` rounds, whose host processes live
apart in ``bench/fanout_hosts.py``.

Inside the limits, one host's share (300 requests per 5 s) is the ceiling: about 60 calls per second,
so 20 orders per second cold (three calls each) and 60 warm (one each). Figures: README, "Measured".

Before the limits (``--no-limits``), measured on this 2-core machine with other suites beside it, 1,000
users: 235-244 orders/s, ack p50 2.2-2.3 s, p95 3.9-4.1 s, after grouping the writes and one urllib3
transport under every pybit session (54-57 orders/s before that).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import psutil  # type: ignore[import-untyped]
import uvloop
from fanout_hosts import HOST_SYMBOLS, run_hosts, serve_host

from lib.config import load_settings
from lib.core.clock import SystemClock
from lib.crypto import KeyVault
from lib.db.session import Caller, Database
from lib.db.target import admin_connection, database_target
from lib.exchange.access import MarketAccess
from lib.exchange.ports import Credentials, OrderRequest, TradingExchange
from lib.exchange.rate_limit import DEFAULT_SHARE, RateLimiter
from lib.exchange.trading import PybitExchange
from lib.paper_exchange import create_paper_account_async
from lib.paper_exchange.client import AsyncPaperControls
from lib.services.accounts import connect_account
from lib.services.auth.users import create_local_user
from lib.services.execution.deps import ExecutorDeps, outcomes_summary
from lib.services.execution.fanout import execute_pending
from lib.services.execution.pair import ensure_leverage
from lib.services.execution.run import Run
from lib.services.instruments.cache import get_filters

#: The cold run's signal (nothing cached) and the warm run's (leverage memo'd, wallets cached).
COLD_SYMBOL = "SOLUSDT"
WARM_SYMBOL = "ETHUSDT"
LEVERAGE = 2
ALGORITHM = "quantum_ai"
TIMEFRAME = "720"
ENVIRONMENTS = ("mainnet", "testnet", "demo")


def host_counts(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",") if part.strip()]
    if not counts or any(n < 1 or n > 32 for n in counts) or len(counts) > len(HOST_SYMBOLS):
        raise argparse.ArgumentTypeError(f"1 to {len(HOST_SYMBOLS)} host counts of 1..32, like 1,2,4")
    return counts


def serve_paper_exchange(limits_on: bool) -> None:
    """Child mode: run a paper exchange (Bybit's limits on unless told), print its URL, serve until stdin
    closes."""
    from lib.paper_exchange import PaperExchangeConfig, running_paper_exchange
    from lib.paper_exchange.ratelimit import ExchangeLimits

    limits = ExchangeLimits() if limits_on else ExchangeLimits.off()
    with running_paper_exchange(PaperExchangeConfig(state_path=None, port=0, limits=limits)) as url:
        print(url, flush=True)
        sys.stdin.read()


def environments_at(paper_url: str) -> dict[str, str]:
    """Every live environment's endpoint pointed at the paper exchange."""
    return dict.fromkeys(ENVIRONMENTS, paper_url)


@dataclass
class TimedExchange:
    """The real exchange, noting when each order create was acknowledged (``clock`` seconds)."""

    inner: TradingExchange
    acks: list[float] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    clock: Callable[[], float] = time.perf_counter

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
        self.acks.append(self.clock())
        return order_id

    async def cancel_order(self, creds: Credentials, category: str, symbol: str, order_link_id: str) -> None:
        self._count("cancel_order")
        await self.inner.cancel_order(creds, category, symbol, order_link_id)

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
) -> dict[str, Credentials]:
    """N users with a connected paper account and auto-trade preferences; their keys by user id."""
    with admin.transaction():
        user_ids = [
            create_local_user(admin, f"bench-fanout-{run}-{i}@bench.local", jwt_secret).id for i in range(n)
        ]
    gate = asyncio.Semaphore(32)
    keys: dict[str, Credentials] = {}
    async with httpx.AsyncClient(timeout=30) as client:

        async def connect(user_id: str) -> None:
            async with gate:
                account = await create_paper_account_async(paper_url, "10000", client=client)
                caller = Caller(role="authenticated", claims={"role": "authenticated", "sub": user_id})
                creds = Credentials("paper", account.api_key, account.api_secret)
                await connect_account(db, vault, exchange, caller, user_id, creds)
                keys[user_id] = creds

        await asyncio.gather(*(connect(u) for u in user_ids))
    async with db.write(Caller.service()) as conn:
        await conn.execute(
            "insert into trading_preferences (user_id, auto_trade_enabled, algorithms, timeframes, "
            "min_score, risk_per_trade_pct, max_position_usd, leverage, max_open_positions) "
            "select u, true, %s, %s, 80, 1, 1000, %s, 5 from unnest(%s::uuid[]) u",
            ([ALGORITHM], [TIMEFRAME], LEVERAGE, user_ids),
        )
    return keys


async def insert_signal(db: Database, paper_url: str, now: datetime, symbol: str) -> UUID:
    async with httpx.AsyncClient(timeout=10) as client:
        body = (
            await client.get(
                f"{paper_url}/v5/market/tickers", params={"category": "linear", "symbol": symbol}
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
                    symbol,
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


async def signal_status(db: Database, signal_id: UUID) -> str:
    async with db.read(Caller.service()) as conn:
        row = await (await conn.execute("select status from signals where id = %s", (signal_id,))).fetchone()
    assert row is not None
    return str(row["status"])


async def account_ids(db: Database, user_ids: list[str]) -> dict[str, UUID]:
    """Each user's trading account id."""
    async with db.read(Caller.service()) as conn:
        rows = await (
            await conn.execute(
                "select user_id, id from user_trading_accounts where user_id = any(%s::uuid[])", (user_ids,)
            )
        ).fetchall()
    return {str(r["user_id"]): UUID(str(r["id"])) for r in rows}


async def warm_caches(deps: ExecutorDeps, keys: dict[str, Credentials], accounts: dict[str, UUID]) -> None:
    """What earlier signals leave behind: leverage set and in the shared memo, then each wallet read
    through the executor's cache (within its TTL when the signal comes)."""
    run = Run(deps, datetime.now(UTC))
    gate = asyncio.Semaphore(deps.concurrency)

    async def leverage(user_id: str) -> None:
        async with gate:
            await ensure_leverage(run, accounts[user_id], keys[user_id], WARM_SYMBOL, LEVERAGE)

    async def wallet(user_id: str) -> None:
        async with gate:
            await run.wallet(accounts[user_id], keys[user_id])

    # In the fan-out's order (eligible targets come by user id), so each wallet is about as old as the
    # warm-up's wallet pass lasts when its order is sent.
    await asyncio.gather(*(leverage(u) for u in sorted(keys)))
    await asyncio.gather(*(wallet(u) for u in sorted(keys)))


def _postgres_processes() -> list[psutil.Process]:
    """This stack's PostgreSQL: the postmaster of ``<state_dir>/pgdata`` (its pid file) and its children.
    Other servers on the machine (other checkouts' test servers) are not counted; with an external
    ``DATABASE_URL`` nothing is."""
    pid_file = load_settings().state_dir / "pgdata" / "postmaster.pid"
    try:
        postmaster = psutil.Process(int(pid_file.read_text().split()[0]))
        return [postmaster, *postmaster.children(recursive=True)]
    except (OSError, ValueError, IndexError, psutil.Error):
        return []


def cpu_seconds(paper_pid: int) -> dict[str, float]:
    """CPU time so far of this process, the paper exchange, and the stack's PostgreSQL processes (a
    backend that exits between two readings takes its time with it: the database's figure is a floor)."""
    postgres = 0.0
    for proc in _postgres_processes():
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
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


def exchange_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What the exchange counted between two ``/_paper/stats``: requests per path, 403s, 10006s."""
    paths = set(before["requests"]) | set(after["requests"])
    requests = {
        p: after["requests"].get(p, 0) - before["requests"].get(p, 0)
        for p in sorted(paths)
        if after["requests"].get(p, 0) != before["requests"].get(p, 0)
    }
    return {
        "requests": requests,
        "bans_403": after["ip_refused_403"] - before["ip_refused_403"],
        "rate_limited_10006": after["rate_limited_10006"] - before["rate_limited_10006"],
    }


def duplicates(stats: dict[str, Any], symbol: str) -> int:
    """Entry orders beyond one per account on ``symbol`` (every account here gets one signal of it)."""
    return sum(max(0, by_symbol.get(symbol, 0) - 1) for by_symbol in stats["orders_by_account"].values())


async def timed_run(
    args: argparse.Namespace,
    db: Database,
    deps: ExecutorDeps,
    controls: AsyncPaperControls,
    paper_pid: int,
    symbol: str,
    phase: str,
) -> dict[str, Any]:
    """One signal of ``symbol`` fanned out to every bench user, timed; the figures as a dict."""
    assert isinstance(deps.exchange, TimedExchange)
    deps.exchange.acks.clear()
    signal_id = await insert_signal(db, controls.base_url, datetime.now(UTC), symbol)
    profiler = cProfile.Profile() if args.profile and phase == "warm" else None
    stats_before = await controls.stats()
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
    stats_after = await controls.stats()
    async with db.read(Caller.service()) as conn:
        rows = await (
            await conn.execute(
                "select status, count(*) as n from execution_orders where signal_id = %s group by status",
                (signal_id,),
            )
        ).fetchall()
    latencies_ms = [(ack - t0) * 1000 for ack in deps.exchange.acks]
    placed = len(latencies_ms)
    counted = exchange_delta(stats_before, stats_after)
    calls = sum(counted["requests"].values())
    return {
        "phase": phase,
        "hosts": 1,
        "users": args.users,
        "symbol": symbol,
        "total_s": round(total_s, 3),
        "orders_per_s": round(placed / total_s, 1),
        "ack_ms_p50": round(statistics.median(latencies_ms), 1) if latencies_ms else None,
        "ack_ms_p95": round(percentile(latencies_ms, 0.95), 1) if latencies_ms else None,
        "exchange_calls_per_order": round(calls / placed, 3) if placed else None,
        "rate_limited_10006": counted["rate_limited_10006"],
        "bans_403": counted["bans_403"],
        "duplicates": duplicates(stats_after, symbol),
        "exchange_requests": counted["requests"],
        "claimed": report.claimed,
        "outcomes": outcomes_summary(report.outcomes),
        "rows_by_status": {r["status"]: r["n"] for r in rows},
        "cpu_s_during_run": {k: round(cpu_after[k] - v, 2) for k, v in cpu_before.items()},
    }


async def host_rounds(
    args: argparse.Namespace,
    db: Database,
    controls: AsyncPaperControls,
    paper_pid: int,
    keys: dict[str, Credentials],
    accounts: dict[str, UUID],
    seeding_s: float,
) -> None:
    """``--hosts``: one round per host count (``bench/fanout_hosts.py``), one JSON object each."""
    users = {
        "keys": {u: {"api_key": c.api_key, "api_secret": c.api_secret} for u, c in keys.items()},
        "accounts": {u: str(a) for u, a in accounts.items()},
    }
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        users_file = Path(tmp) / "users.json"
        users_file.write_text(json.dumps(users))
        users_file.chmod(0o600)
        for hosts, symbol in zip(args.hosts, HOST_SYMBOLS, strict=False):
            figures = await run_hosts(args, db, controls, paper_pid, users_file, hosts, symbol)
            common = {
                "share": args.share,
                "exchange_limits": not args.no_limits,
                "seeding_s": round(seeding_s, 2),
            }
            print(json.dumps({**figures, **common}, indent=2), flush=True)


async def main(args: argparse.Namespace, paper_url: str, paper_pid: int) -> None:
    settings = load_settings()
    target = database_target(settings)
    db = Database(target.app_url, max_size=args.pool)
    await db.open()
    admin = admin_connection(target)
    vault = KeyVault(settings.master_keys)
    everywhere = environments_at(paper_url)
    # One host: one IP budget for every client of the process, at the deployment's share.
    limiter = RateLimiter(share=args.share)
    exchange = PybitExchange(paper_url=paper_url, endpoints=everywhere, threads=args.threads, limiter=limiter)
    market = MarketAccess(paper_url=paper_url, limiter=limiter)
    controls = AsyncPaperControls(paper_url)
    run = uuid.uuid4().hex[:8]
    user_ids: list[str] = []
    try:
        started = time.perf_counter()
        keys = await seed_users(
            db, admin, vault, exchange, paper_url, args.users, run, settings.jwt_secret.reveal()
        )
        user_ids = list(keys)
        seeding_s = time.perf_counter() - started
        accounts = await account_ids(db, user_ids)

        async def filters(category: str, environment: str) -> Any:
            return await get_filters(db, market, category, SystemClock(), environment=environment)

        await filters("linear", "paper")  # warm: every run after a deployment's first reads the cache
        if args.hosts:
            await host_rounds(args, db, controls, paper_pid, keys, accounts, seeding_s)
            return
        # A fresh exchange client: seeding's wallet checks must not have warmed its sessions.
        timed = TimedExchange(
            PybitExchange(paper_url=paper_url, endpoints=everywhere, threads=args.threads, limiter=limiter)
        )
        deps = ExecutorDeps(db=db, exchange=timed, vault=vault, filters=filters, worker=f"bench-{run}")
        if args.concurrency:
            deps.concurrency = args.concurrency
        if args.batch_wait_ms is not None:
            deps.batch_wait_s = args.batch_wait_ms / 1000
        common = {
            "concurrency": deps.concurrency,
            "share": args.share,
            "exchange_limits": not args.no_limits,
            "wallet_ttl_s": deps.wallets.ttl_s,
            "seeding_s": round(seeding_s, 2),
        }
        cold = await timed_run(args, db, deps, controls, paper_pid, COLD_SYMBOL, "cold")
        print(json.dumps({**cold, **common}, indent=2), flush=True)
        if not args.no_warm:
            before = await controls.stats()
            t0 = time.perf_counter()
            await warm_caches(deps, keys, accounts)
            warm_up = exchange_delta(before, await controls.stats())
            warm = await timed_run(args, db, deps, controls, paper_pid, WARM_SYMBOL, "warm")
            warm["warm_up"] = {"s": round(time.perf_counter() - t0 - warm["total_s"], 2), **warm_up}
            print(json.dumps({**warm, **common}, indent=2), flush=True)
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
    parser.add_argument(
        "--no-limits",
        action="store_true",
        help="the paper exchange enforces no rate limit (default: Bybit's)",
    )
    parser.add_argument(
        "--share", type=float, default=DEFAULT_SHARE, help="the IP budget's share the clients keep to"
    )
    parser.add_argument(
        "--no-warm", action="store_true", help="only the cold run (no warm-cache run after it)"
    )
    parser.add_argument(
        "--hosts",
        type=host_counts,
        help="comma-separated host counts, e.g. 1,2,4: one round each, N executor host processes",
    )
    parser.add_argument(
        "--trace",
        action="store_true",
        help="--hosts: each host reports the time it spent in a few store calls",
    )
    parser.add_argument("--round-timeout-s", type=float, default=300, help="--hosts: give up a round after")
    parser.add_argument("--serve-paper-exchange", action="store_true", help=argparse.SUPPRESS)
    # The host child's (--serve-host) arguments.
    parser.add_argument("--serve-host", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--paper-url", help=argparse.SUPPRESS)
    parser.add_argument("--source-address", help=argparse.SUPPRESS)
    parser.add_argument("--users-file", help=argparse.SUPPRESS)
    parser.add_argument("--symbol", help=argparse.SUPPRESS)
    parser.add_argument("--slice-index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--slice-count", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--interval-s", type=float, default=0.05, help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.serve_host:
        serve_host(parsed)
    elif parsed.serve_paper_exchange:
        serve_paper_exchange(not parsed.no_limits)
    else:
        child = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve-paper-exchange",
                *(["--no-limits"] if parsed.no_limits else []),
            ],
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
