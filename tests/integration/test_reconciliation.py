"""The reconciliation after a restore, against a paper exchange of this module's own.

The "restore" is imitated by deleting what a restored database would lack (the orders of a signal
executed after the backup, and that signal's ``executed`` mark): the exchange still has them. Real
executor, real tracker, real exchange client; the exchange's own book is the reference.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID

import pytest

from lib.crypto import KeyVault
from lib.db.session import Caller, Database
from lib.services.execution.exits import close_order_link_id, close_position
from lib.services.execution.fanout import execute_pending
from lib.services.execution.halt import set_trading_halted, trading_state
from lib.services.reconciliation import RESTORE_HALT_BY, ReconcileDeps, reconcile
from lib.services.tracking import track_orders
from tests.integration.execution_helpers import (
    PaperUser,
    Prefs,
    Seeder,
    Signals,
    exchange_for,
    exchange_orders,
    executor_deps,
    order_rows,
    tracker_deps,
)

OPERATOR = Caller(
    role="service_role", claims={"role": "service_role"}, headers={"user-agent": "reconcile-test"}
)


@pytest.fixture
async def resumed(db: Database) -> AsyncIterator[None]:
    """Trading is enabled again after the test (the switch is global)."""
    yield
    await set_trading_halted(db, OPERATOR, halted=False, reason=None, by="test", now=datetime.now(UTC))


async def _forget(db: Database, signal_id: UUID) -> None:
    """What a restore to before this signal's execution looks like: no orders, the signal ``new``."""
    async with db.write(Caller.service()) as conn:
        await conn.execute("delete from execution_orders where signal_id = %s", (signal_id,))
        await conn.execute(
            "update signals set status = 'new', processed_at = null, claimed_at = null, claimed_by = null "
            "where id = %s",
            (signal_id,),
        )


async def _signal_status(db: Database, signal_id: UUID) -> str:
    async with db.read(Caller.service()) as conn:
        row = await (await conn.execute("select status from signals where id = %s", (signal_id,))).fetchone()
    assert row is not None
    return str(row["status"])


async def _recovered_events(db: Database, user_ids: list[UUID]) -> list[UUID]:
    async with db.read(Caller.service()) as conn:
        rows = await (
            await conn.execute(
                "select order_id from trade_logs "
                "where event = 'recovered_from_exchange' and user_id = any(%s)",
                (user_ids,),
            )
        ).fetchall()
    return [r["order_id"] for r in rows]


async def _book(paper_url: str, users: list[PaperUser]) -> dict[str, dict[str, object]]:
    book: dict[str, dict[str, object]] = {}
    for user in users:
        for order in await exchange_orders(paper_url, user):
            book[str(order["orderLinkId"]) or str(order["orderId"])] = order
    return book


async def test_reconcile_imports_what_the_exchange_has_marks_signals_and_leaves_foreign_orders_alone(
    db: Database, vault: KeyVault, paper_url: str, seeder: Seeder, signals: Signals, resumed: None
) -> None:
    users = [await seeder.user(Prefs()) for _ in range(2)]
    user_ids = [u.id for u in users]
    kept = await signals.insert("ETHUSDT")
    lost = await signals.insert("SOLUSDT")
    await execute_pending(
        executor_deps(db, vault, paper_url, worker="reconcile-test"),
        now=datetime.now(UTC),
        signal_ids=[kept, lost],
    )
    # A trade placed by hand on the exchange, with an orderLinkId of the user's own.
    users[0].session(paper_url).place_order(
        category="linear", symbol="XRPUSDT", side="Buy", orderType="Market", qty="10", orderLinkId="by-hand-1"
    )
    await _forget(db, lost)
    assert len(await order_rows(db, user_ids=user_ids)) == 2
    deps = ReconcileDeps(db=db, exchange=exchange_for(paper_url), vault=vault)

    report = await reconcile(deps, since=None, user_ids=user_ids)

    assert report.errors == []
    assert sorted(o["user_id"] for o in report.imported) == sorted(str(u) for u in user_ids)
    book = await _book(paper_url, users)
    rows = {r["order_link_id"]: r for r in await order_rows(db, user_ids=user_ids)}
    ours = {link for link in book if link.startswith("ax-")}
    assert set(rows) == ours  # every order of ours on the exchange is in the database again
    for imported in report.imported:
        row, order = rows[imported["order_link_id"]], book[imported["order_link_id"]]
        assert (row["signal_id"], row["status"], row["exchange_order_id"]) == (
            lost,
            "filled",
            order["orderId"],
        )
        assert row["filled_qty"] == Decimal(str(order["cumExecQty"])) > 0
        assert row["avg_fill_price"] == Decimal(str(order["avgPrice"]))
        assert row["fee"] == Decimal(str(order["cumExecFee"])) > 0
        assert row["stop_loss"] == Decimal(str(order["stopLoss"]))
        assert row["take_profit"] == Decimal(str(order["takeProfit"]))
    assert sorted(map(str, await _recovered_events(db, user_ids))) == sorted(o["id"] for o in report.imported)
    assert await _signal_status(db, lost) == "executed"
    assert [o["order_link_id"] for o in report.foreign] == ["by-hand-1"]
    assert "by-hand-1" not in rows  # reported, left alone

    # The signal is not traded again, and a second run imports nothing.
    await execute_pending(
        executor_deps(db, vault, paper_url, worker="reconcile-test-2"),
        now=datetime.now(UTC),
        signal_ids=[lost],
    )
    again = await reconcile(deps, since=None, user_ids=user_ids)
    assert again.imported == []
    assert again.errors == []
    assert len(await _recovered_events(db, user_ids)) == 2
    links = [str(o["orderLinkId"]) for u in users for o in await exchange_orders(paper_url, u)]
    counts = Counter(link for link in links if link)
    assert set(counts.values()) == {1}  # no order was sent twice


async def test_a_dry_run_reports_and_writes_nothing(
    db: Database, vault: KeyVault, paper_url: str, seeder: Seeder, signals: Signals, resumed: None
) -> None:
    user = await seeder.user(Prefs())
    lost = await signals.insert("ETHUSDT")
    await execute_pending(
        executor_deps(db, vault, paper_url, worker="reconcile-dry"), now=datetime.now(UTC), signal_ids=[lost]
    )
    await _forget(db, lost)
    deps = ReconcileDeps(db=db, exchange=exchange_for(paper_url), vault=vault)
    await set_trading_halted(
        db, OPERATOR, halted=True, reason="restored", by=RESTORE_HALT_BY, now=datetime.now(UTC)
    )

    report = await reconcile(deps, since=None, dry_run=True, user_ids=[user.id])

    assert [o["signal_id"] for o in report.imported] == [str(lost)]
    assert await order_rows(db, user_ids=[user.id]) == []
    assert await _signal_status(db, lost) == "new"
    assert (await trading_state(db)).halted is True  # a dry run never resumes trading


async def test_the_restores_halt_is_cleared_and_an_operators_halt_stays(
    db: Database, vault: KeyVault, paper_url: str, seeder: Seeder, resumed: None
) -> None:
    user = await seeder.user(Prefs())
    deps = ReconcileDeps(db=db, exchange=exchange_for(paper_url), vault=vault)

    await set_trading_halted(
        db, OPERATOR, halted=True, reason="incident", by="cli:ops", now=datetime.now(UTC)
    )
    kept = await reconcile(deps, since=None, user_ids=[user.id])
    assert (await trading_state(db)).halted is True
    assert not kept.halt_cleared
    assert "stays halted" in kept.halt_note

    await set_trading_halted(
        db, OPERATOR, halted=True, reason="restored", by=RESTORE_HALT_BY, now=datetime.now(UTC)
    )
    cleared = await reconcile(deps, since=None, user_ids=[user.id])
    state = await trading_state(db)
    assert (state.halted, state.by, cleared.halt_cleared) == (False, "aitradex reconcile", True)


async def test_an_account_error_keeps_the_restores_halt(
    db: Database, vault: KeyVault, paper_url: str, seeder: Seeder, resumed: None
) -> None:
    user = await seeder.user(Prefs())
    # A key that no longer decrypts (the ciphertext of the other field): this account cannot be asked.
    deps = ReconcileDeps(db=db, exchange=exchange_for(paper_url), vault=vault)
    async with db.write(Caller.service()) as conn:
        await conn.execute(
            "update user_trading_accounts set api_key_encrypted = api_secret_encrypted where user_id = %s",
            (user.id,),
        )
    await set_trading_halted(
        db, OPERATOR, halted=True, reason="restored", by=RESTORE_HALT_BY, now=datetime.now(UTC)
    )

    report = await reconcile(deps, since=None, user_ids=[user.id])

    assert [e["account_id"] for e in report.errors]
    assert not report.halt_cleared
    assert (await trading_state(db)).halted is True


async def test_a_position_the_database_thinks_open_is_recorded_closed_as_the_tracker_does(
    db: Database, vault: KeyVault, paper_url: str, seeder: Seeder, signals: Signals, resumed: None
) -> None:
    user = await seeder.user(Prefs())
    signal_id = await signals.insert("ETHUSDT")
    await execute_pending(
        executor_deps(db, vault, paper_url, worker="reconcile-pos"),
        now=datetime.now(UTC),
        signal_ids=[signal_id],
    )
    [row] = await order_rows(db, user_ids=[user.id])
    # The restored database knew the order only as placed; meanwhile it filled and was closed by hand.
    async with db.write(Caller.service()) as conn:
        await conn.execute("update execution_orders set status = 'placed' where id = %s", (row["id"],))
    session = user.session(paper_url)
    session.place_order(
        category="linear",
        symbol="ETHUSDT",
        side="Sell",
        orderType="Market",
        qty=str(row["qty"]),
        reduceOnly=True,
        orderLinkId="by-hand-close",
    )
    [close] = [o for o in await exchange_orders(paper_url, user) if o["orderLinkId"] == "by-hand-close"]
    deps = ReconcileDeps(db=db, exchange=exchange_for(paper_url), vault=vault)

    report = await reconcile(deps, since=None, user_ids=[user.id])

    [after] = await order_rows(db, user_ids=[user.id])
    assert report.errors == []
    assert report.imported == []
    assert after["status"] == "filled"
    assert after["closed_at"] is not None
    assert (after["close_reason"], after["exit_price"]) == ("Closed", Decimal(str(close["avgPrice"])))
    assert report.tracker is not None
    assert report.tracker.closed == 1
    assert [o["order_link_id"] for o in report.foreign] == ["by-hand-close"]


async def test_a_close_by_hand_the_database_lost_gets_its_claim_and_close_back(
    db: Database, vault: KeyVault, paper_url: str, seeder: Seeder, signals: Signals, resumed: None
) -> None:
    user = await seeder.user(Prefs())
    signal_id = await signals.insert("ETHUSDT")
    now = datetime.now(UTC)
    await execute_pending(
        executor_deps(db, vault, paper_url, worker="reconcile-close"), now=now, signal_ids=[signal_id]
    )
    [row] = await order_rows(db, user_ids=[user.id])
    tracker = tracker_deps(db, vault, paper_url)
    await track_orders(tracker, now=now, user_ids=[user.id])
    owner = Caller(role="authenticated", claims={"role": "authenticated", "sub": str(user.id)})
    await close_position(tracker, owner, row["id"], now=now)
    link = close_order_link_id(row["id"])
    # The restored database had the filled entry, but neither the close claim nor the close.
    async with db.write(Caller.service()) as conn:
        await conn.execute(
            "update execution_orders set close_order_link_id = null, close_requested_at = null, "
            "closed_at = null, exit_price = null, close_reason = null, realized_pnl = null, exit_fee = null "
            "where id = %s",
            (row["id"],),
        )
    [close] = [o for o in await exchange_orders(paper_url, user) if o["orderLinkId"] == link]
    deps = ReconcileDeps(db=db, exchange=exchange_for(paper_url), vault=vault)

    report = await reconcile(deps, since=None, user_ids=[user.id])

    [after] = await order_rows(db, user_ids=[user.id])
    assert report.errors == []
    assert [c["order_link_id"] for c in report.closes_recovered] == [link]
    assert report.foreign == []
    assert report.imported == []
    assert after["close_order_link_id"] == link
    assert after["closed_at"] is not None
    assert (after["close_reason"], after["exit_price"]) == ("Closed", Decimal(str(close["avgPrice"])))
    assert await _recovered_events(db, [user.id]) == [row["id"]]
