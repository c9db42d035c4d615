"""Fewer exchange calls per order (issue 12, item 4), counted on the paper exchange itself.

- a fan-out of N orders on warm caches (wallets read within the TTL, leverage in the shared memo) makes
  at most 1.2 N exchange calls: here exactly N, the creates;
- the leverage memo is in Postgres: a new executor (nothing shared in memory) does not set it again,
  and a different leverage is set again;
- 110043 ("leverage not modified", the exchange already had it) counts as success and is remembered;
- a fill the tracker records drops the account's cached wallet.

The exchange's own counters (``GET /_paper/stats``) are the truth: whatever the executor's code does,
only requests that reached the exchange count.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from lib.crypto import KeyVault
from lib.db.session import Caller, Database
from lib.errors import Forbidden
from lib.exchange import bybit
from lib.exchange.access import MarketAccess
from lib.exchange.ports import Credentials, WalletBalance
from lib.paper_exchange.client import PaperControls
from lib.services.execution.caches import LeverageMemo, WalletCache, key_fingerprint
from lib.services.execution.deps import ExecutorDeps
from lib.services.execution.fanout import execute_pending
from lib.services.execution.manual import ManualOrder, execute_manual_for_user
from lib.services.tracking import track_orders
from tests.integration.execution_helpers import (
    PaperUser,
    Prefs,
    Seeder,
    Signals,
    entry_orders,
    exchange_for,
    executor_deps,
    tracker_deps,
)

SYMBOL = "ETHUSDT"
LEVERAGE = 2
PRIVATE_PATHS = (bybit.WALLET_BALANCE, bybit.SET_LEVERAGE, bybit.ORDER_CREATE, bybit.ORDER_REALTIME)


async def requests_by_path(paper_url: str) -> dict[str, int]:
    stats = await asyncio.to_thread(lambda: PaperControls(paper_url).stats())
    return dict(stats["requests"])


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {p: after.get(p, 0) - before.get(p, 0) for p in after if after.get(p, 0) != before.get(p, 0)}


async def account_ids(db: Database, users: list[PaperUser]) -> dict[UUID, UUID]:
    async with db.read(Caller.service()) as conn:
        rows = await (
            await conn.execute(
                "select user_id, id from user_trading_accounts where user_id = any(%s::uuid[])",
                ([u.id for u in users],),
            )
        ).fetchall()
    return {UUID(str(r["user_id"])): UUID(str(r["id"])) for r in rows}


async def memo_rows(db: Database, accounts: list[UUID]) -> dict[UUID, int]:
    async with db.read(Caller.service()) as conn:
        rows = await (
            await conn.execute(
                "select account_id, leverage from exchange_leverage_memo "
                "where symbol = %s and account_id = any(%s::uuid[])",
                (SYMBOL, accounts),
            )
        ).fetchall()
    return {UUID(str(r["account_id"])): int(r["leverage"]) for r in rows}


def fresh_deps(db: Database, vault: KeyVault, paper_url: str) -> ExecutorDeps:
    """A new executor: its own exchange client, wallet cache and limiters (only Postgres is shared)."""
    return executor_deps(db, vault, paper_url, worker=f"test-calls-{uuid.uuid4().hex[:8]}")


def creds_of(user: PaperUser) -> Credentials:
    return Credentials(user.environment, user.api_key, user.api_secret)


async def test_a_fan_out_on_warm_caches_makes_at_most_1_2_calls_per_order(
    db: Database, vault: KeyVault, paper_url: str, seeder: Seeder, signals: Signals
) -> None:
    n = 12
    users = await seeder.users(n, Prefs(leverage=LEVERAGE))
    accounts = await account_ids(db, users)
    deps = fresh_deps(db, vault, paper_url)
    await deps.filters("linear", "paper")
    # Warm: what an earlier signal and a recent read left behind, leverage on the exchange and in the
    # shared memo, and each wallet read through the executor's cache.
    memo = LeverageMemo(db)
    for user in users:
        creds = creds_of(user)
        await deps.exchange.set_leverage(creds, "linear", SYMBOL, LEVERAGE)
        account = accounts[user.id]
        fingerprint = key_fingerprint(user.api_key)
        await memo.remember(account, SYMBOL, LEVERAGE, fingerprint, at=datetime.now(UTC))
        deps.wallets.put(account, await deps.exchange.wallet_balance(creds))
    signal_id = await signals.insert(SYMBOL)
    before = await requests_by_path(paper_url)

    report = await execute_pending(deps, now=datetime.now(UTC), signal_ids=[signal_id])

    calls = delta(before, await requests_by_path(paper_url))
    assert len(report.outcomes) == n
    assert {o.outcome for o in report.outcomes} <= {"placed", "filled"}
    assert calls.get(bybit.WALLET_BALANCE, 0) == 0
    assert calls.get(bybit.SET_LEVERAGE, 0) == 0
    assert calls.get(bybit.ORDER_CREATE, 0) == n
    assert sum(calls.values()) <= 1.2 * n, calls
    # The wallets the orders moved are not used again.
    assert all(deps.wallets.get(accounts[u.id]) is None for u in users)


async def test_a_cold_fan_out_reads_each_wallet_sets_each_leverage_once_and_remembers_it(
    db: Database, vault: KeyVault, paper_url: str, seeder: Seeder, signals: Signals
) -> None:
    users = await seeder.users(3, Prefs(leverage=LEVERAGE))
    accounts = await account_ids(db, users)
    deps = fresh_deps(db, vault, paper_url)
    await deps.filters("linear", "paper")
    signal_id = await signals.insert(SYMBOL)
    before = await requests_by_path(paper_url)

    await execute_pending(deps, now=datetime.now(UTC), signal_ids=[signal_id])

    calls = delta(before, await requests_by_path(paper_url))
    assert {p: calls.get(p, 0) for p in PRIVATE_PATHS[:3]} == {
        bybit.WALLET_BALANCE: 3,
        bybit.SET_LEVERAGE: 3,
        bybit.ORDER_CREATE: 3,
    }
    assert await memo_rows(db, list(accounts.values())) == dict.fromkeys(accounts.values(), LEVERAGE)


async def test_the_leverage_memo_survives_a_new_executor_and_a_new_leverage_is_set_again(
    db: Database, vault: KeyVault, paper_url: str, seeder: Seeder, signals: Signals
) -> None:
    user = await seeder.user(Prefs(leverage=LEVERAGE))
    signal_id = await signals.insert(SYMBOL)
    first = fresh_deps(db, vault, paper_url)
    await first.filters("linear", "paper")
    await execute_pending(first, now=datetime.now(UTC), signal_ids=[signal_id])
    account = (await account_ids(db, [user]))[user.id]
    assert await memo_rows(db, [account]) == {account: LEVERAGE}

    # A new executor: nothing in memory from the first, its own client; only Postgres is shared.
    second = fresh_deps(db, vault, paper_url)
    market = MarketAccess(paper_url=paper_url)
    order = ManualOrder(
        symbol=SYMBOL, side="Buy", amount_usd=Decimal(100), client_order_id=uuid.uuid4().hex[:16]
    )
    before = await requests_by_path(paper_url)
    outcome = await execute_manual_for_user(
        second, market, user_id=user.id, order=order, now=datetime.now(UTC)
    )
    calls = delta(before, await requests_by_path(paper_url))
    assert outcome.outcome in ("placed", "filled")
    assert calls.get(bybit.SET_LEVERAGE, 0) == 0
    assert calls.get(bybit.ORDER_CREATE) == 1

    # The user's leverage changes: the memo does not match, leverage is set again and remembered.
    async with db.write(Caller.service()) as conn:
        await conn.execute(
            "update trading_preferences set leverage = %s where user_id = %s", (LEVERAGE + 1, user.id)
        )
    third = fresh_deps(db, vault, paper_url)
    order = ManualOrder(
        symbol=SYMBOL, side="Buy", amount_usd=Decimal(100), client_order_id=uuid.uuid4().hex[:16]
    )
    before = await requests_by_path(paper_url)
    await execute_manual_for_user(third, market, user_id=user.id, order=order, now=datetime.now(UTC))
    calls = delta(before, await requests_by_path(paper_url))
    assert calls.get(bybit.SET_LEVERAGE) == 1
    assert await memo_rows(db, [account]) == {account: LEVERAGE + 1}


async def test_leverage_the_exchange_already_has_110043_counts_as_success_and_is_remembered(
    db: Database, vault: KeyVault, paper_url: str, seeder: Seeder, signals: Signals
) -> None:
    user = await seeder.user(Prefs(leverage=LEVERAGE))
    # Set by hand on the exchange beforehand: the executor's set-leverage is answered 110043.
    session = user.session(paper_url)
    await asyncio.to_thread(
        lambda: session.set_leverage(
            category="linear", symbol=SYMBOL, buyLeverage=str(LEVERAGE), sellLeverage=str(LEVERAGE)
        )
    )
    signal_id = await signals.insert(SYMBOL)
    deps = fresh_deps(db, vault, paper_url)
    await deps.filters("linear", "paper")
    before = await requests_by_path(paper_url)

    report = await execute_pending(deps, now=datetime.now(UTC), signal_ids=[signal_id])

    calls = delta(before, await requests_by_path(paper_url))
    assert calls.get(bybit.SET_LEVERAGE) == 1  # answered 110043
    assert [o.outcome for o in report.outcomes] in (["placed"], ["filled"])
    assert len(await entry_orders(paper_url, user)) == 1
    account = (await account_ids(db, [user]))[user.id]
    assert await memo_rows(db, [account]) == {account: LEVERAGE}


async def test_a_fill_the_tracker_records_drops_the_accounts_cached_wallet(
    db: Database, vault: KeyVault, paper_url: str, seeder: Seeder, signals: Signals
) -> None:
    user = await seeder.user(Prefs(leverage=LEVERAGE))
    account = (await account_ids(db, [user]))[user.id]
    signal_id = await signals.insert(SYMBOL)
    deps = fresh_deps(db, vault, paper_url)
    await deps.filters("linear", "paper")
    await execute_pending(deps, now=datetime.now(UTC), signal_ids=[signal_id])
    async with db.write(Caller.service()) as conn:
        # The executor's record says placed; the fill is the tracker's to find and record.
        await conn.execute("update execution_orders set status = 'placed' where signal_id = %s", (signal_id,))
    exchange = exchange_for(paper_url)
    wallets = WalletCache()
    wallets.put(account, await exchange.wallet_balance(creds_of(user)))
    other = uuid.uuid4()
    wallets.put(other, await exchange.wallet_balance(creds_of(user)))

    report = await track_orders(
        _with_wallets(tracker_deps(db, vault, paper_url, exchange=exchange), wallets),
        now=datetime.now(UTC),
        user_ids=[user.id],
    )

    assert report.transitions.get("filled") == 1
    assert wallets.get(account) is None
    assert wallets.get(other) is not None  # only the filled account's wallet is dropped


def _with_wallets(deps: Any, wallets: WalletCache) -> Any:
    deps.wallets = wallets
    return deps


def test_a_cached_wallet_expires_after_its_ttl() -> None:
    now = [100.0]
    cache = WalletCache(ttl_s=30.0, clock=lambda: now[0])
    account = uuid.uuid4()
    wallet = WalletBalance(total_equity=Decimal(1), total_available=Decimal(1), coins={})
    cache.put(account, wallet)
    now[0] += 29.9
    assert cache.get(account) == wallet
    now[0] += 0.1
    assert cache.get(account) is None


@pytest.mark.parametrize("who", ["anon", "user"])
async def test_the_leverage_memo_is_the_services_alone(
    db: Database, vault: KeyVault, paper_url: str, seeder: Seeder, signals: Signals, who: str
) -> None:
    user = await seeder.user(Prefs(leverage=LEVERAGE))
    signal_id = await signals.insert(SYMBOL)
    deps = fresh_deps(db, vault, paper_url)
    await deps.filters("linear", "paper")
    await execute_pending(deps, now=datetime.now(UTC), signal_ids=[signal_id])
    account = (await account_ids(db, [user]))[user.id]
    assert await memo_rows(db, [account]) == {account: LEVERAGE}  # the row is there, for the service
    caller = (
        Caller.anon() if who == "anon" else Caller.from_claims({"role": "authenticated", "sub": str(user.id)})
    )
    with pytest.raises(Forbidden):
        async with db.read(caller) as conn:
            await conn.execute("select * from exchange_leverage_memo where account_id = %s", (account,))
