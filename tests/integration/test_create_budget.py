"""Each account's order-create budget in Postgres, shared by every executor (issue 12, item 3).

- the one-statement bucket: a full bucket grants at once, an empty one books the next slot and says how
  long to wait (``1 / rate`` apart), it refills at its rate up to its burst on the database clock, and a
  take that would wait too long books nothing;
- takes from several connections at once never share a slot;
- two executors, each in its own thread with its own event loop, pool, exchange client and limiters
  (only Postgres and the exchange are shared), send one account's creates together: the exchange, which
  enforces Bybit's 10 per rolling second, refuses none (no 10006) and every order is on its book once.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID

import pytest

from lib.crypto import KeyVault
from lib.db.session import Caller, Database
from lib.db.target import DatabaseTarget
from lib.errors import Forbidden, RateLimited
from lib.exchange import bybit
from lib.ops.stack_replay import stack_symbols
from lib.paper_exchange.client import PaperControls
from lib.services.execution.budget import CreateBudget, bucket_for
from lib.services.execution.caches import LeverageMemo, key_fingerprint
from lib.services.execution.deps import ExecutionReport
from lib.services.execution.exits import close_order_link_id, close_position
from lib.services.execution.fanout import execute_pending
from lib.services.tracking import track_orders
from lib.stores import create_budget
from tests.integration.execution_helpers import (
    PaperUser,
    Prefs,
    Seeder,
    Signals,
    entry_orders,
    exchange_orders,
    executor_deps,
    order_rows,
    tracker_deps,
)

LEVERAGE = 2


async def account_of(db: Database, user: PaperUser) -> UUID:
    async with db.read(Caller.service()) as conn:
        row = await (
            await conn.execute("select id from user_trading_accounts where user_id = %s", (user.id,))
        ).fetchone()
    assert row is not None
    return UUID(str(row["id"]))


async def tokens_of(db: Database, account: UUID) -> float:
    async with db.read(Caller.service()) as conn:
        row = await (
            await conn.execute("select tokens from exchange_create_budget where account_id = %s", (account,))
        ).fetchone()
    assert row is not None
    return float(row["tokens"])


async def test_the_bucket_grants_its_burst_then_books_slots_a_rate_apart_and_refills_on_the_db_clock(
    db: Database, seeder: Seeder
) -> None:
    account = await account_of(db, await seeder.user(Prefs()))

    async def take(max_wait_s: float = 10.0) -> float | None:
        return await create_budget.take(db, account, burst=3, rate=2, max_wait_s=max_wait_s)

    started = time.monotonic()
    waits = [await take() for _ in range(5)]
    took = time.monotonic() - started
    # Three at once (the burst), then slots half a second apart (rate 2), less the time the takes took.
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert abs(waits[3] - 0.5) <= 2 * took + 0.01, waits
    assert abs(waits[4] - 1.0) <= 2 * took + 0.01, waits
    # A take that would wait 1.5 s books nothing when told to wait at most 0.6 s...
    assert await take(max_wait_s=0.6) is None
    # ...so the next slot is still 1.5 s out, not 2.
    assert abs((await take() or 0.0) - 1.5) <= 4 * (time.monotonic() - started) + 0.01

    # Ten seconds on the database clock later the bucket is full again, not fuller: its burst.
    async with db.write(Caller.service()) as conn:
        await conn.execute(
            "update exchange_create_budget set refilled_at = refilled_at - interval '10 seconds' "
            "where account_id = %s",
            (account,),
        )
    assert await take() == 0.0
    assert 1.9 <= await tokens_of(db, account) <= 2.0


async def test_takes_from_several_connections_at_once_never_share_a_slot(
    db: Database, seeder: Seeder
) -> None:
    account = await account_of(db, await seeder.user(Prefs()))
    rate, n = 10.0, 16

    started = time.monotonic()
    waits = await asyncio.gather(
        *(create_budget.take(db, account, burst=1, rate=rate, max_wait_s=30) for _ in range(n))
    )
    took = time.monotonic() - started

    booked = sorted(w for w in waits if w is not None)
    assert len(booked) == n
    # One slot each, 1/rate apart: each take's wait is its place in the queue, less the time it queued
    # behind the others (at most the whole gather).
    assert booked[0] == 0.0
    for place, wait in enumerate(booked):
        assert place / rate - took - 0.01 <= wait <= place / rate + 0.01, (place, booked, took)
    assert await tokens_of(db, account) < -(n - 2)


async def test_the_budget_reads_its_limit_from_app_settings_and_keeps_to_it_with_headroom(
    db: Database,
) -> None:
    budget = CreateBudget(db=db)
    assert await budget.limit() == 10  # the seeded executor.orders_per_second_per_account
    burst, rate = bucket_for(10)
    # A span of t seconds holds at most floor(burst + rate * t) takes: Bybit's 10 in any span shorter
    # than 1.25 s, so a quarter second of bunching on the way to the exchange still keeps to 10.
    assert math.floor(burst + rate * 1.0) == 9
    assert math.floor(burst + rate * 1.249) == 10
    assert (burst, rate) == (1.0, 8.0)


async def test_two_executors_on_two_threads_never_exceed_one_accounts_10_creates_per_second(
    db: Database, stack: DatabaseTarget, vault: KeyVault, paper_url: str, seeder: Seeder, signals: Signals
) -> None:
    symbols = list(stack_symbols())
    user = await seeder.user(
        Prefs(
            leverage=LEVERAGE,
            max_open_positions=100,
            max_position_usd=Decimal(200),
            risk_per_trade_pct=Decimal("0.5"),
        )
    )
    account = await account_of(db, user)
    # Leverage already set (the memo says so): the creates are the calls that matter here, and 24
    # set-leverage calls at once would meet that endpoint's own 10 per second.
    memo = LeverageMemo(db)
    for symbol in symbols:
        await memo.remember(account, symbol, LEVERAGE, key_fingerprint(user.api_key), at=datetime.now(UTC))
    ids = [await signals.insert(symbol) for symbol in symbols]
    before = await asyncio.to_thread(lambda: PaperControls(paper_url).stats())
    start = threading.Barrier(2, timeout=60)

    def executor(signal_ids: list[UUID], name: str) -> ExecutionReport:
        async def run() -> ExecutionReport:
            # Its own pool, client, wallet cache and limiters, on its own event loop: a separate process
            # in all but name. Only Postgres (the budget) and the exchange are shared.
            own = Database(stack.app_url, max_size=4)
            await own.open()
            try:
                deps = executor_deps(own, vault, paper_url, worker=name)
                await deps.filters("linear", "paper")
                start.wait()
                return await execute_pending(deps, now=datetime.now(UTC), signal_ids=signal_ids)
            finally:
                await own.close()

        return asyncio.run(run())

    first, second = await asyncio.gather(
        asyncio.to_thread(executor, ids[0::2], "test-budget-a"),
        asyncio.to_thread(executor, ids[1::2], "test-budget-b"),
    )

    after = await asyncio.to_thread(lambda: PaperControls(paper_url).stats())
    placed = [o for r in (first, second) for o in r.outcomes if o.outcome in ("placed", "filled")]
    assert first.count("placed") + first.count("filled") >= 8, first.outcomes
    assert second.count("placed") + second.count("filled") >= 8, second.outcomes
    assert after["rate_limited_10006"] == before["rate_limited_10006"]
    creates = after["requests"].get(bybit.ORDER_CREATE, 0) - before["requests"].get(bybit.ORDER_CREATE, 0)
    assert creates == len(placed)  # each sent once: none refused and retried
    book = await entry_orders(paper_url, user)
    assert sorted(o["orderLinkId"] for o in book) == sorted(o.order_link_id for o in placed)


async def test_a_close_by_hand_takes_a_slot_too_and_sends_nothing_while_the_budget_is_spent(
    db: Database, vault: KeyVault, paper_url: str, seeder: Seeder, signals: Signals
) -> None:
    user = await seeder.user(Prefs())
    signal_id = await signals.insert("ETHUSDT")
    now = datetime.now(UTC)
    await execute_pending(
        executor_deps(db, vault, paper_url, worker="budget-close"), now=now, signal_ids=[signal_id]
    )
    [row] = await order_rows(db, user_ids=[user.id])
    tracker = tracker_deps(db, vault, paper_url)
    await track_orders(tracker, now=now, user_ids=[user.id])
    owner = Caller.from_claims({"role": "authenticated", "sub": str(user.id)})
    account = await account_of(db, user)
    # Other executors have booked the account's next two minutes of creates.
    async with db.write(Caller.service()) as conn:
        await conn.execute(
            "update exchange_create_budget set tokens = -1000 where account_id = %s", (account,)
        )
    link = close_order_link_id(row["id"])

    with pytest.raises(RateLimited):
        await close_position(tracker, owner, row["id"], now=now)
    assert [o for o in await exchange_orders(paper_url, user) if o["orderLinkId"] == link] == []

    async with db.write(Caller.service()) as conn:
        await conn.execute("update exchange_create_budget set tokens = 1 where account_id = %s", (account,))
    await close_position(tracker, owner, row["id"], now=now)
    assert len([o for o in await exchange_orders(paper_url, user) if o["orderLinkId"] == link]) == 1


@pytest.mark.parametrize("who", ["anon", "user"])
async def test_the_create_budget_is_the_services_alone(db: Database, seeder: Seeder, who: str) -> None:
    user = await seeder.user(Prefs())
    account = await account_of(db, user)
    assert await create_budget.take(db, account, burst=1, rate=1, max_wait_s=1) == 0.0
    assert await tokens_of(db, account) == 0.0  # the row is there, for the service
    caller = (
        Caller.anon() if who == "anon" else Caller.from_claims({"role": "authenticated", "sub": str(user.id)})
    )
    with pytest.raises(Forbidden):
        async with db.read(caller) as conn:
            await conn.execute("select * from exchange_create_budget where account_id = %s", (account,))
