"""The order tracker against a paper exchange of this module's own, whose clock the tests move.

Two users each take a LONG on ETHUSDT and a SHORT on SOLUSDT with stop and target 0.3 % away; the
tracker first records the fills, then, while the replay clock advances a few candles at a time, how
each position closed. The exchange's own numbers (fill prices, fees, the wallet) are the reference.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from lib.crypto import KeyVault
from lib.db.session import Caller, Database
from lib.services.execution.fanout import execute_pending
from lib.services.tracking import track_orders
from tests.integration.execution_helpers import (
    START_BALANCE,
    PaperUser,
    Prefs,
    Seeder,
    Signals,
    advance_clock,
    exchange_orders,
    executor_deps,
    order_rows,
    tracker_deps,
    wallet_balance,
)

CANDLES_PER_STEP = 3
MAX_CANDLES = 600


async def events_of(db: Database, order_ids: list[object]) -> list[tuple[object, str]]:
    async with db.read(Caller.service()) as conn:
        rows = await (
            await conn.execute(
                "select order_id, event from trade_logs where order_id = any(%s) order by id", (order_ids,)
            )
        ).fetchall()
    return [(r["order_id"], r["event"]) for r in rows]


async def test_the_tracker_records_each_fill_and_then_how_each_position_closed(
    db: Database, vault: KeyVault, paper_url: str, seeder: Seeder, signals: Signals
) -> None:
    users: list[PaperUser] = [await seeder.user(Prefs()) for _ in range(2)]
    tight = Decimal("0.3")
    long_id = await signals.insert("ETHUSDT", direction="LONG", stop_pct=tight, target_pct=tight)
    short_id = await signals.insert("SOLUSDT", direction="SHORT", stop_pct=tight, target_pct=tight)
    now = datetime.now(UTC)
    deps = executor_deps(db, vault, paper_url, worker="test-tracker")
    await execute_pending(deps, now=now, signal_ids=[long_id, short_id])
    tracker = tracker_deps(db, vault, paper_url)
    user_ids = [u.id for u in users]

    # First run: the market orders' fills, as the exchange reports them; nothing has closed yet.
    first = await track_orders(tracker, now=now, user_ids=user_ids)
    assert first.transitions == {"filled": 4}
    assert first.closed == 0
    rows = await order_rows(db, user_ids=user_ids)
    for user in users:
        book = {o["orderLinkId"]: o for o in await exchange_orders(paper_url, user)}
        for row in (r for r in rows if r["user_id"] == user.id):
            order = book[row["order_link_id"]]
            assert row["status"] == "filled"
            assert row["filled_qty"] == row["qty"] == Decimal(order["cumExecQty"])
            assert row["avg_fill_price"] == Decimal(order["avgPrice"])
            assert row["fee"] == Decimal(order["cumExecFee"]) > 0
            assert row["closed_at"] is None

    # Then the replay moves on until every stop-loss or take-profit has triggered.
    candles = 0
    while candles < MAX_CANDLES:
        await advance_clock(paper_url, CANDLES_PER_STEP)
        candles += CANDLES_PER_STEP
        await track_orders(tracker, now=now + timedelta(minutes=candles * 5), user_ids=user_ids)
        if all(r["closed_at"] is not None for r in await order_rows(db, user_ids=user_ids)):
            break
    rows = await order_rows(db, user_ids=user_ids)
    assert all(r["closed_at"] is not None for r in rows), f"still open after {candles} candles"

    for user in users:
        closes = {
            o["orderId"]: o
            for o in await exchange_orders(paper_url, user)
            if o["createType"].startswith("CreateBy")
        }
        mine = [r for r in rows if r["user_id"] == user.id]
        for row in mine:
            assert row["close_reason"] in ("TakeProfit", "StopLoss")
            [close] = [
                o
                for o in closes.values()
                if o["symbol"] == row["symbol"] and o["createType"] == f"CreateBy{row['close_reason']}"
            ]
            assert row["exit_price"] == Decimal(close["avgPrice"])
            # The exit is where the level said (or beyond it, if the candle gapped through).
            long = row["side"] == "Buy"
            if row["close_reason"] == "TakeProfit":
                assert (
                    row["exit_price"] >= row["take_profit"]
                    if long
                    else row["exit_price"] <= row["take_profit"]
                )
            else:
                assert (
                    row["exit_price"] <= row["stop_loss"] if long else row["exit_price"] >= row["stop_loss"]
                )
            sign = 1 if long else -1
            gross = sign * (row["exit_price"] - row["avg_fill_price"]) * row["filled_qty"]
            assert row["realized_pnl"] == gross - row["fee"] - Decimal(close["cumExecFee"])
        # The realized P&L of both positions is exactly what the account's wallet gained or lost.
        assert sum(r["realized_pnl"] for r in mine) == await wallet_balance(paper_url, user) - START_BALANCE

    events = await events_of(db, [r["id"] for r in rows])
    for row in rows:
        assert [e for order_id, e in events if order_id == row["id"]] == [
            "order_requested",
            "order_placed",
            "order_synced",
            "position_closed",
        ]

    # Closed positions are done: the next run has nothing to look at.
    again = await track_orders(tracker, now=now + timedelta(days=1), user_ids=user_ids)
    assert (again.checked, again.closed, again.transitions) == (0, 0, {})
