"""An order create answered 10000 ("server timeout") or 10016 ("server error") may be live: never "rejected".

The paper exchange records each order and then answers with one of those retCodes, as Bybit can. The
one retCode table (``lib.exchange.bybit``) makes both "outcome unknown", like a timeout or a 5xx: the
executor sends again with the same ``orderLinkId``, the exchange answers 110072 (duplicate), and the
executor looks the order up instead of sending it a third time. The verdict comes from the rows, the
trade log and each user's own order book on the exchange; then the tracker follows each order until
its stop-loss or take-profit closes it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from lib.config import Settings
from lib.core.order_ids import order_link_id
from lib.crypto import KeyVault
from lib.db.session import Caller, Database
from lib.services.execution.fanout import execute_pending
from lib.services.tracking import track_orders
from tests.integration.execution_helpers import (
    PaperUser,
    Prefs,
    Seeder,
    Signals,
    advance_clock,
    entry_orders,
    executor_deps,
    order_rows,
    set_faults,
    tracker_deps,
)

USERS = 3
CANDLES_PER_STEP = 3
MAX_CANDLES = 600


@pytest.fixture
async def users(
    db: Database, settings: Settings, owner_conn: psycopg.Connection, vault: KeyVault, paper_url: str
) -> AsyncIterator[list[PaperUser]]:
    seeder = Seeder(owner_conn, settings.jwt_secret.reveal(), db, vault, paper_url)
    try:
        yield await seeder.users(USERS, Prefs())
    finally:
        seeder.close()


async def events_of(db: Database, order_ids: list[object]) -> list[tuple[object, str]]:
    async with db.read(Caller.service()) as conn:
        rows = await (
            await conn.execute(
                "select order_id, event from trade_logs where order_id = any(%s) order by id", (order_ids,)
            )
        ).fetchall()
    return [(r["order_id"], r["event"]) for r in rows]


@pytest.mark.parametrize(
    ("fault", "ret_code"),
    [("accepted_server_timeout_probability", 10000), ("accepted_server_error_probability", 10016)],
)
async def test_an_order_answered_with_a_server_error_after_acceptance_is_placed_once_and_tracked(
    db: Database,
    vault: KeyVault,
    paper_url: str,
    users: list[PaperUser],
    signals: Signals,
    fault: str,
    ret_code: int,
) -> None:
    tight = Decimal("0.3")
    signal_id = await signals.insert("ETHUSDT", stop_pct=tight, target_pct=tight)
    user_ids = [u.id for u in users]
    now = datetime.now(UTC)
    # Every order create is recorded, then answered with the retCode; every other signed call answers.
    await set_faults(paper_url, {"seed": ret_code, "order": {fault: 1.0}})
    try:
        report = await execute_pending(
            executor_deps(db, vault, paper_url, worker=f"test-unknown-{ret_code}"),
            now=now,
            signal_ids=[signal_id],
        )
    finally:
        await set_faults(paper_url, {"seed": 0})

    assert sorted(o.outcome for o in report.outcomes if o.user_id in user_ids) == ["filled"] * USERS
    rows = await order_rows(db, user_ids=user_ids)
    assert sorted(r["user_id"] for r in rows) == sorted(user_ids)
    for user in users:
        (row,) = [r for r in rows if r["user_id"] == user.id]
        assert row["order_link_id"] == order_link_id(signal_id, user.id)
        # Not rejected: the retry with the same orderLinkId met the duplicate and looked the order up.
        assert row["status"] == "filled", (row["status"], row["status_reason"], row["ret_code"])
        assert row["ret_code"] is None
        assert row["attempts"] == 2
        # Sent once as far as the exchange is concerned: one order with that link, the row's own.
        on_exchange = await entry_orders(paper_url, user)
        assert [(o["orderLinkId"], o["orderId"]) for o in on_exchange] == [
            (row["order_link_id"], row["exchange_order_id"])
        ]
        (order,) = on_exchange
        assert row["filled_qty"] == row["qty"] == Decimal(order["cumExecQty"])
        assert row["avg_fill_price"] == Decimal(order["avgPrice"])

    # The tracker follows them like any other order, until the stop-loss or take-profit closes each one.
    tracker = tracker_deps(db, vault, paper_url)
    first = await track_orders(tracker, now=now, user_ids=user_ids)
    assert (first.errors, first.checked) == ([], USERS)
    candles = 0
    while candles < MAX_CANDLES:
        await advance_clock(paper_url, CANDLES_PER_STEP)
        candles += CANDLES_PER_STEP
        tracked = await track_orders(tracker, now=now + timedelta(minutes=candles * 5), user_ids=user_ids)
        assert tracked.errors == []
        if all(r["closed_at"] is not None for r in await order_rows(db, user_ids=user_ids)):
            break
    rows = await order_rows(db, user_ids=user_ids)
    assert all(r["closed_at"] is not None for r in rows), f"still open after {candles} candles"
    assert {r["close_reason"] for r in rows} <= {"TakeProfit", "StopLoss"}
    assert {r["status"] for r in rows} == {"filled"}

    events = await events_of(db, [r["id"] for r in rows])
    for row in rows:
        assert [e for order_id, e in events if order_id == row["id"]] == [
            "order_requested",
            "order_placed",
            "position_closed",
        ]
