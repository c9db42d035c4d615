"""What the executor and tracker tests share: real users with paper accounts, signals, the exchange's book.

- :class:`Seeder` creates users the way the system does: an ``auth.users`` row (``create_local_user``,
  what the ``make_user`` fixture calls), a funded account on the test's paper exchange, its keys checked
  and stored encrypted by ``lib.services.accounts.connect_account`` (the ``trading-account`` function's path),
  and a ``trading_preferences`` row written as the user, through RLS. It deletes its users at the end
  (the auth server's job, like creating them), which cascades to their accounts, preferences, orders and
  logs, so no user of a test lingers as a fan-out target of anyone's later signal.
- :class:`Signals` inserts signals as ``service_role`` at the exchange's current price and, at the end,
  hands back every one still ``new`` or ``processing`` as ``skipped``: the signals table is every
  executor's queue, and the tests also claim only their own (``execute_pending(signal_ids=...)``).
- :func:`exchange_orders` reads a user's orders from the paper exchange itself (signed, with their keys).
- ``python -m tests.integration.execution_helpers execute ...`` is an executor in a process of its own
  (the concurrency and crash tests start several, or kill one); it prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import httpx
import psycopg
from pybit.unified_trading import HTTP

from lib.core.clock import SystemClock
from lib.core.instruments import InstrumentFilters
from lib.crypto import KeyVault
from lib.db.session import Caller, Database
from lib.exchange.access import MarketAccess
from lib.exchange.ports import Credentials
from lib.exchange.trading import PybitExchange
from lib.paper_exchange import create_paper_account_async
from lib.paper_exchange.client import AsyncPaperControls
from lib.services.accounts import ConnectedAccount, connect_account
from lib.services.auth.users import create_local_user
from lib.services.execution.deps import ExecutorDeps, FiltersLookup, outcomes_summary
from lib.services.execution.fanout import execute_pending
from lib.services.instruments.cache import get_filters
from lib.services.tracking import TrackerDeps

#: The symbols the paper exchange lists (its bundled candles).
PAPER_SYMBOLS = ("ARBUSDT", "AVAXUSDT", "ETHUSDT", "SOLUSDT", "SUIUSDT", "DOGEUSDT", "XRPUSDT", "LINKUSDT")
LIVE_ENVIRONMENTS = ("mainnet", "testnet", "demo")
START_BALANCE = Decimal(10000)


def exchange_for(paper_url: str, *, timeout_s: float = 10) -> PybitExchange:
    """The real exchange client with every environment (mainnet too) pointed at the test's paper exchange."""
    return PybitExchange(
        paper_url=paper_url, endpoints=dict.fromkeys(LIVE_ENVIRONMENTS, paper_url), timeout_s=timeout_s
    )


def filters_for(db: Database, paper_url: str) -> FiltersLookup:
    """The executor's filters function: the shared instruments cache, refreshed from this paper exchange.

    The cache's own clock is the real one whatever ``now`` a test hands the executor, so no entry is
    ever stored as fetched in the future.
    """
    market = MarketAccess(paper_url=paper_url)

    async def filters(category: str, environment: str) -> dict[str, InstrumentFilters]:
        return await get_filters(db, market, category, SystemClock(), environment=environment)

    return filters


def executor_deps(
    db: Database,
    vault: KeyVault,
    paper_url: str,
    *,
    worker: str,
    exchange: PybitExchange | None = None,
    concurrency: int | None = None,
) -> ExecutorDeps:
    deps = ExecutorDeps(
        db=db,
        exchange=exchange or exchange_for(paper_url),
        vault=vault,
        filters=filters_for(db, paper_url),
        worker=worker,
    )
    if concurrency is not None:
        deps.concurrency = concurrency
    return deps


def tracker_deps(
    db: Database, vault: KeyVault, paper_url: str, *, exchange: PybitExchange | None = None
) -> TrackerDeps:
    return TrackerDeps(db=db, exchange=exchange or exchange_for(paper_url), vault=vault)


@dataclass(frozen=True)
class Prefs:
    """A ``trading_preferences`` row (the defaults trade ``unirail_core`` on the 60-minute timeframe)."""

    auto_trade_enabled: bool = True
    algorithms: tuple[str, ...] = ("unirail_core",)
    timeframes: tuple[str, ...] = ("60",)
    min_score: Decimal = Decimal(70)
    risk_per_trade_pct: Decimal = Decimal(1)
    max_position_usd: Decimal = Decimal(1000)
    leverage: int = 2
    max_open_positions: int = 5
    daily_loss_limit_pct: Decimal = Decimal(5)
    symbol_allowlist: tuple[str, ...] = ()
    symbol_blocklist: tuple[str, ...] = ()


@dataclass(frozen=True)
class PaperUser:
    """A seeded user: their id and their paper account's keys (to read the exchange's book as them)."""

    id: UUID
    environment: str
    api_key: str
    api_secret: str = field(repr=False)

    def session(self, paper_url: str) -> HTTP:
        session = HTTP(api_key=self.api_key, api_secret=self.api_secret, max_retries=1, retry_codes={-1})
        session.endpoint = paper_url
        return session


class Seeder:
    """Creates users with paper accounts and preferences; :meth:`close` deletes them again."""

    def __init__(
        self,
        owner_conn: psycopg.Connection,
        jwt_secret: str,
        db: Database,
        vault: KeyVault,
        paper_url: str,
    ) -> None:
        self.owner_conn = owner_conn
        self.jwt_secret = jwt_secret
        self.db = db
        self.vault = vault
        self.paper_url = paper_url
        self.exchange = exchange_for(paper_url)
        self.user_ids: list[UUID] = []

    async def user(
        self,
        prefs: Prefs | None = None,
        *,
        environment: str = "paper",
        account: bool = True,
        balance: Decimal = START_BALANCE,
    ) -> PaperUser:
        """One user; ``prefs=None`` leaves them without preferences, ``account=False`` without an account."""
        return await self._equip(self._auth_user(), prefs, environment, account, balance)

    def _auth_user(self) -> UUID:
        local = create_local_user(
            self.owner_conn, f"user-{uuid.uuid4().hex[:12]}@test.local", self.jwt_secret
        )
        self.user_ids.append(UUID(local.id))
        return UUID(local.id)

    async def _equip(
        self, user_id: UUID, prefs: Prefs | None, environment: str, account: bool, balance: Decimal
    ) -> PaperUser:
        caller = Caller(role="authenticated", claims={"role": "authenticated", "sub": str(user_id)})
        key = secret = ""
        if account:
            paper = await create_paper_account_async(self.paper_url, str(balance))
            key, secret = paper.api_key, paper.api_secret
            creds = Credentials(environment=environment, api_key=key, api_secret=secret)
            await connect_account(self.db, self.vault, self.exchange, caller, str(user_id), creds)
        if prefs is not None:
            async with self.db.write(caller) as conn:
                await conn.execute(
                    "insert into trading_preferences (user_id, auto_trade_enabled, algorithms, timeframes, "
                    "min_score, risk_per_trade_pct, max_position_usd, leverage, max_open_positions, "
                    "daily_loss_limit_pct, symbol_allowlist, symbol_blocklist) "
                    "values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (
                        user_id,
                        prefs.auto_trade_enabled,
                        list(prefs.algorithms),
                        list(prefs.timeframes),
                        prefs.min_score,
                        prefs.risk_per_trade_pct,
                        prefs.max_position_usd,
                        prefs.leverage,
                        prefs.max_open_positions,
                        prefs.daily_loss_limit_pct,
                        list(prefs.symbol_allowlist),
                        list(prefs.symbol_blocklist),
                    ),
                )
        return PaperUser(id=user_id, environment=environment, api_key=key, api_secret=secret)

    async def connect(
        self,
        user_id: UUID,
        *,
        keys: PaperUser | None = None,
        environment: str = "paper",
    ) -> tuple[PaperUser, ConnectedAccount]:
        """Connect ``keys`` (an account seeded earlier), or a new funded paper account, to the user, as
        the ``trading-account`` function does."""
        if keys is None:
            paper = await create_paper_account_async(self.paper_url, str(START_BALANCE))
            keys = PaperUser(
                id=user_id, environment=environment, api_key=paper.api_key, api_secret=paper.api_secret
            )
        caller = Caller(role="authenticated", claims={"role": "authenticated", "sub": str(user_id)})
        creds = Credentials(environment=environment, api_key=keys.api_key, api_secret=keys.api_secret)
        connected = await connect_account(self.db, self.vault, self.exchange, caller, str(user_id), creds)
        return keys, connected

    async def users(self, n: int, prefs: Prefs, *, parallel: int = 8) -> list[PaperUser]:
        """``n`` users with the same preferences (their accounts connected a few at a time)."""
        gate = asyncio.Semaphore(parallel)
        with self.owner_conn.transaction():
            ids = [self._auth_user() for _ in range(n)]

        async def one(user_id: UUID) -> PaperUser:
            async with gate:
                return await self._equip(user_id, prefs, "paper", True, START_BALANCE)

        return list(await asyncio.gather(*(one(i) for i in ids)))

    def close(self) -> None:
        if self.user_ids:
            with self.owner_conn.transaction():
                self.owner_conn.execute("delete from auth.users where id = any(%s)", (self.user_ids,))
            self.user_ids = []


async def current_price(paper_url: str, symbol: str) -> Decimal:
    """The paper exchange's replay price of ``symbol`` (its ``lastPrice``)."""
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.get(
            f"{paper_url}/v5/market/tickers", params={"category": "linear", "symbol": symbol}
        )
    return Decimal(answer.json()["result"]["list"][0]["lastPrice"])


async def advance_clock(paper_url: str, candles: int) -> None:
    await AsyncPaperControls(paper_url, timeout_s=30).advance(candles)


async def set_faults(paper_url: str, plan: dict[str, Any]) -> None:
    await AsyncPaperControls(paper_url).set_faults(plan)


class Signals:
    """Signals a test inserts; :meth:`close` hands back any still waiting or claimed as ``skipped``."""

    def __init__(self, db: Database, paper_url: str) -> None:
        self.db = db
        self.paper_url = paper_url
        self.ids: list[UUID] = []

    async def insert(
        self,
        symbol: str,
        *,
        direction: str = "LONG",
        algorithm: str = "unirail_core",
        timeframe: str = "60",
        score: Decimal = Decimal(85),
        stop_pct: Decimal = Decimal("1"),
        target_pct: Decimal = Decimal("2"),
        now: datetime | None = None,
        ttl: timedelta = timedelta(hours=2),
    ) -> UUID:
        """A signal at the exchange's current price, stop and target ``stop_pct``/``target_pct`` % away."""
        price = await current_price(self.paper_url, symbol)
        sign = Decimal(1) if direction == "LONG" else Decimal(-1)
        stop = price * (1 - sign * stop_pct / 100)
        target = price * (1 + sign * target_pct / 100)
        now = now or datetime.now(UTC)
        # A bar time of its own: (symbol, timeframe, algorithm, direction, bar_time) is unique.
        bar_time = now - timedelta(minutes=5, microseconds=uuid.uuid4().int % 10**10)
        async with self.db.write(Caller.service()) as conn:
            row = await (
                await conn.execute(
                    "insert into signals (symbol, timeframe, direction, algorithm, score, confidence, "
                    "entry_price, stop_loss, take_profit, atr, bar_time, expires_at) "
                    "values (%s, %s, %s, %s, %s, 0.8, %s, %s, %s, %s, %s, %s) returning id",
                    (
                        symbol,
                        timeframe,
                        direction,
                        algorithm,
                        score,
                        price,
                        stop,
                        target,
                        abs(price - stop),
                        bar_time,
                        now + ttl,
                    ),
                )
            ).fetchone()
        assert row is not None
        self.ids.append(row["id"])
        return UUID(str(row["id"]))

    async def status(self, signal_id: UUID) -> str:
        async with self.db.read(Caller.service()) as conn:
            row = await (
                await conn.execute("select status from signals where id = %s", (signal_id,))
            ).fetchone()
        assert row is not None
        return str(row["status"])

    async def close(self) -> None:
        if self.ids:
            async with self.db.write(Caller.service()) as conn:
                await conn.execute(
                    "update signals set status = 'skipped' "
                    "where id = any(%s) and status in ('new', 'processing')",
                    (self.ids,),
                )


def _all_pages(session: HTTP, open_only: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = ""
    while True:
        answer = session.get_open_orders(
            category="linear", settleCoin="USDT", openOnly=open_only, limit=50, cursor=cursor or None
        )
        items.extend(answer["result"]["list"])
        cursor = answer["result"].get("nextPageCursor") or ""
        if not cursor:
            return items


def exchange_orders_sync(paper_url: str, user: PaperUser) -> list[dict[str, Any]]:
    """Every order of the user's paper account, open and recently closed, as the exchange lists them."""
    session = user.session(paper_url)
    return _all_pages(session, 0) + _all_pages(session, 1)


async def exchange_orders(paper_url: str, user: PaperUser) -> list[dict[str, Any]]:
    return await asyncio.to_thread(exchange_orders_sync, paper_url, user)


async def entry_orders(paper_url: str, user: PaperUser) -> list[dict[str, Any]]:
    """The user's orders that carry an orderLinkId: the ones the executor sent (TP/SL closes carry none)."""
    return [o for o in await exchange_orders(paper_url, user) if o["orderLinkId"]]


async def wallet_balance(paper_url: str, user: PaperUser) -> Decimal:
    """The user's settle-coin wallet balance on the paper exchange."""

    def read() -> Decimal:
        answer = user.session(paper_url).get_wallet_balance(accountType="UNIFIED", coin="USDT")
        return Decimal(answer["result"]["list"][0]["coin"][0]["walletBalance"])

    return await asyncio.to_thread(read)


async def order_rows(
    db: Database, *, user_ids: Sequence[UUID] | None = None, signal_id: UUID | None = None
) -> list[dict[str, Any]]:
    """``execution_orders`` rows of these users and/or this signal, as ``service_role``."""
    async with db.read(Caller.service()) as conn:
        rows = await (
            await conn.execute(
                "select * from execution_orders "
                "where (%(users)s::uuid[] is null or user_id = any(%(users)s::uuid[])) "
                "and (%(signal)s::uuid is null or signal_id = %(signal)s) order by requested_at",
                {"users": None if user_ids is None else list(user_ids), "signal": signal_id},
            )
        ).fetchall()
    return list(rows)


# -- an executor in a process of its own ------------------------------------------------------------


async def _execute(args: argparse.Namespace) -> dict[str, Any]:
    from lib.config import load_settings
    from lib.db.target import database_target

    started = time.perf_counter()
    settings = load_settings(os.environ)
    db = Database(database_target(settings).app_url, max_size=4)
    await db.open()
    try:
        deps = executor_deps(
            db,
            KeyVault(settings.master_keys),
            args.paper_url,
            worker=args.worker,
            exchange=exchange_for(args.paper_url, timeout_s=args.timeout_s),
            concurrency=args.concurrency,
        )
        now = datetime.fromisoformat(args.now)
        ids = [UUID(i) for i in args.signal_ids.split(",")]
        claimed, outcomes = 0, []
        while True:
            report = await execute_pending(deps, now=now, batch_size=args.batch_size, signal_ids=ids)
            claimed += report.claimed
            outcomes.extend(report.outcomes)
            if not args.loop or report.claimed == 0:
                break
        return {
            "worker": args.worker,
            "claimed": claimed,
            "outcomes": outcomes_summary(outcomes),
            "reasons": sorted({o.reason for o in outcomes if o.reason}),
            "seconds": round(time.perf_counter() - started, 2),
        }
    finally:
        await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.integration.execution_helpers")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("execute", help="run execute_pending on the given signals, print a JSON summary")
    run.add_argument("--paper-url", required=True)
    run.add_argument("--worker", required=True)
    run.add_argument("--now", required=True, help="ISO time the executor takes as now")
    run.add_argument("--signal-ids", required=True, help="comma-separated: the only signals it may claim")
    run.add_argument("--batch-size", type=int, default=50)
    run.add_argument("--concurrency", type=int, default=None)
    run.add_argument("--timeout-s", type=float, default=10)
    run.add_argument("--loop", action="store_true", help="claim again until nothing is left")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_execute(args))), flush=True)


if __name__ == "__main__":
    main()
