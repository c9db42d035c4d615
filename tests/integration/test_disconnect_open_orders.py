"""Disconnecting an account with open orders or positions (issue 9, item 11): never silently untracked.

The rule: a disconnect is refused while the account has open orders or positions, unless the user
confirms; confirmed, they are marked ``untracked`` with a ``trade_logs`` event each and stop counting
against the open-position rules; connecting the same API key again re-links them and the tracker
resumes. Connecting another API key over the account untracks them the same way (they belong to the old
key's exchange account). Real users, keys and orders
on a paper exchange of this module's own.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from lib.crypto import KeyVault
from lib.db.session import Caller, Database
from lib.errors import Conflict
from lib.services.accounts import disconnect_account
from lib.services.execution.fanout import execute_pending
from lib.services.tracking import track_orders
from lib.stores import orders as orders_store
from tests.integration.execution_helpers import (
    PaperUser,
    Prefs,
    Seeder,
    Signals,
    advance_clock,
    executor_deps,
    order_rows,
    tracker_deps,
)

MAX_CANDLES = 600


def as_user(user_id: UUID) -> Caller:
    return Caller(role="authenticated", claims={"role": "authenticated", "sub": str(user_id)})


async def open_position(
    db: Database, vault: KeyVault, paper_url: str, signals: Signals, user: PaperUser, symbol: str, **kw: Any
) -> dict[str, Any]:
    """Execute a signal on ``symbol`` for ``user`` (only), and return their order row."""
    signal_id = await signals.insert(symbol, **kw)
    deps = executor_deps(db, vault, paper_url, worker=f"test-disconnect-{uuid.uuid4().hex[:8]}")
    await execute_pending(deps, now=datetime.now(UTC), signal_ids=[signal_id])
    [row] = await order_rows(db, user_ids=[user.id], signal_id=signal_id)
    assert row["status"] in ("placed", "filled"), row["status_reason"]
    return row


async def order_events(db: Database, order_id: UUID) -> list[dict[str, Any]]:
    async with db.read(Caller.service()) as conn:
        rows = await (
            await conn.execute(
                "select event, level, message, context from trade_logs where order_id = %s order by id",
                (order_id,),
            )
        ).fetchall()
    return list(rows)


async def account_of(db: Database, user_id: UUID) -> str | None:
    async with db.read(Caller.service()) as conn:
        row = await (
            await conn.execute(
                "select id::text as id from user_trading_accounts "
                "where user_id = %s and environment = 'paper'",
                (user_id,),
            )
        ).fetchone()
    return None if row is None else str(row["id"])


async def tracked_ids(db: Database, user_id: UUID) -> set[UUID]:
    """The user's rows the tracker's work list holds (past the grace period for requested ones)."""
    rows = await orders_store.orders_to_track(
        db, requested_before=datetime.now(UTC) + timedelta(days=1), limit=100, user_ids=[user_id]
    )
    return {r.id for r in rows}


async def test_a_disconnect_with_an_open_position_is_refused_with_the_count_and_changes_nothing(
    db: Database, vault: KeyVault, paper_url: str, seeder: Seeder, signals: Signals
) -> None:
    user = await seeder.user(Prefs())
    row = await open_position(db, vault, paper_url, signals, user, "ETHUSDT")
    account_id = await account_of(db, user.id)

    with pytest.raises(Conflict) as refused:
        await disconnect_account(db, as_user(user.id), str(user.id), "paper")

    assert refused.value.details == {"environment": "paper", "open_orders": 1}
    assert "confirm_open_orders" in refused.value.message
    assert await account_of(db, user.id) == account_id
    [after] = await order_rows(db, user_ids=[user.id])
    assert (after["status"], str(after["account_id"])) == (row["status"], account_id)
    assert await tracked_ids(db, user.id) == {row["id"]}


async def test_a_users_own_delete_through_the_api_is_refused_the_same_way(
    db: Database, vault: KeyVault, paper_url: str, seeder: Seeder, signals: Signals
) -> None:
    # Users hold DELETE on their own account rows (PostgREST would let them send it): the database
    # itself refuses while orders are open, so no path around the function orphans one.
    user = await seeder.user(Prefs())
    await open_position(db, vault, paper_url, signals, user, "ETHUSDT")

    with pytest.raises(Exception, match="refused"):
        async with db.write(as_user(user.id)) as conn:
            await conn.execute("delete from user_trading_accounts where user_id = %s", (user.id,))

    assert await account_of(db, user.id) is not None


async def test_a_confirmed_disconnect_untracks_each_order_with_an_event_and_they_stop_counting(
    db: Database, vault: KeyVault, paper_url: str, seeder: Seeder, signals: Signals
) -> None:
    user = await seeder.user(Prefs(max_open_positions=1))
    row = await open_position(db, vault, paper_url, signals, user, "ETHUSDT")
    old_account = await account_of(db, user.id)

    gone = await disconnect_account(db, as_user(user.id), str(user.id), "paper", confirm_open_orders=True)

    assert (gone.account_id, gone.untracked_orders) == (old_account, 1)
    [after] = await order_rows(db, user_ids=[user.id])
    assert after["status"] == "untracked"
    assert after["untracked_from"] == row["status"]
    assert after["account_id"] is None
    assert after["untracked_key_hint"] == user.api_key[-4:]
    events = await order_events(db, row["id"])
    assert events[-1]["event"] == "order_untracked"
    assert events[-1]["level"] == "warning"
    assert events[-1]["context"]["status"] == row["status"]
    assert user.api_key[-4:] in events[-1]["message"]
    assert await tracked_ids(db, user.id) == set()

    # Another exchange account: the untracked position is not re-linked to it, and it no longer counts
    # against max_open_positions = 1, so the next signal is executed.
    _, connected = await seeder.connect(user.id)
    assert connected.relinked_orders == 0
    second = await open_position(db, vault, paper_url, signals, user, "SOLUSDT")
    assert str(second["account_id"]) == connected.account.id


async def test_connecting_the_same_key_again_relinks_the_orders_and_the_tracker_resumes(
    db: Database, vault: KeyVault, paper_url: str, seeder: Seeder, signals: Signals
) -> None:
    user = await seeder.user(Prefs())
    tight = Decimal("0.3")
    row = await open_position(
        db, vault, paper_url, signals, user, "ETHUSDT", stop_pct=tight, target_pct=tight
    )
    await disconnect_account(db, as_user(user.id), str(user.id), "paper", confirm_open_orders=True)
    tracker = tracker_deps(db, vault, paper_url)
    now = datetime.now(UTC)

    # While untracked, its stop or target triggers on the exchange; the tracker does not look.
    candles = 0
    while candles < MAX_CANDLES:
        await advance_clock(paper_url, 6)
        candles += 6
        report = await track_orders(tracker, now=now, user_ids=[user.id])
        assert report.checked == 0
        position = user.session(paper_url).get_positions(category="linear", symbol="ETHUSDT")
        if Decimal(position["result"]["list"][0]["size"]) == 0:
            break
    else:
        pytest.fail(f"the position was still open after {candles} candles")
    [untracked] = await order_rows(db, user_ids=[user.id])
    assert (untracked["status"], untracked["closed_at"]) == ("untracked", None)

    _, connected = await seeder.connect(user.id, keys=user)

    assert connected.relinked_orders == 1
    [relinked] = await order_rows(db, user_ids=[user.id])
    assert relinked["status"] == row["status"]
    assert str(relinked["account_id"]) == connected.account.id
    assert relinked["untracked_from"] is None
    assert (await order_events(db, row["id"]))[-1]["event"] == "order_tracking_resumed"
    report = await track_orders(tracker, now=now + timedelta(minutes=5 * candles), user_ids=[user.id])
    assert report.checked == 1
    assert report.closed == 1
    [closed] = await order_rows(db, user_ids=[user.id])
    assert closed["close_reason"] in ("TakeProfit", "StopLoss")
    assert closed["realized_pnl"] is not None


async def test_connecting_another_key_untracks_the_old_keys_orders_and_the_old_key_relinks_them(
    db: Database, vault: KeyVault, paper_url: str, seeder: Seeder, signals: Signals
) -> None:
    # The account's orders belong to the exchange account of its key: tracking them with another
    # account's keys would mark them failed or closed wrongly.
    user = await seeder.user(Prefs())
    row = await open_position(db, vault, paper_url, signals, user, "ETHUSDT")

    # The same key again changes nothing for its orders.
    _, same = await seeder.connect(user.id, keys=user)
    assert (same.untracked_orders, same.relinked_orders) == (0, 0)
    [kept] = await order_rows(db, user_ids=[user.id])
    assert (kept["status"], str(kept["account_id"])) == (row["status"], same.account.id)

    other, replaced = await seeder.connect(user.id)
    assert other.api_key[-4:] != user.api_key[-4:]
    assert (replaced.untracked_orders, replaced.account.id) == (1, same.account.id)
    [untracked] = await order_rows(db, user_ids=[user.id])
    assert (untracked["status"], untracked["untracked_key_hint"]) == ("untracked", user.api_key[-4:])
    assert (await order_events(db, row["id"]))[-1]["event"] == "order_untracked"
    assert await tracked_ids(db, user.id) == set()

    _, back = await seeder.connect(user.id, keys=user)
    assert (back.relinked_orders, back.untracked_orders) == (1, 0)
    [relinked] = await order_rows(db, user_ids=[user.id])
    assert (relinked["status"], str(relinked["account_id"])) == (row["status"], back.account.id)
    assert await tracked_ids(db, user.id) == {row["id"]}
