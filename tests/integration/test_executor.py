"""The executor end to end: real database, real users and keys, a paper exchange of this module's own.

One signal (ETHUSDT, LONG, ``unirail_core``, 60 minutes, score 85) is fanned out once, in a module
fixture, to users who each differ from an eligible one in exactly one way; the tests then read what it
left behind: rows, logs, and the exchange's own order book. Two earlier signals (on timeframes only
two users trade) give one user a position in ETHUSDT and another their maximum of one open position.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID

import psycopg
import pytest

from lib.config import Settings
from lib.core.order_ids import order_link_id
from lib.crypto import KeyVault
from lib.db.session import Caller, Database
from lib.services.execution.deps import ExecutionReport
from lib.services.execution.fanout import execute_pending
from tests.integration.execution_helpers import (
    PaperUser,
    Prefs,
    Seeder,
    Signals,
    entry_orders,
    executor_deps,
    order_rows,
)

SYMBOL = "ETHUSDT"
BOTH = ("unirail_core", "quantum_ai")

ELIGIBLE = {
    "defaults": Prefs(),
    "symbol_in_allowlist": Prefs(symbol_allowlist=("SOLUSDT", SYMBOL)),
    "both_algorithms_and_timeframes": Prefs(algorithms=BOTH, timeframes=("15", "60")),
}
EXCLUDED = {
    "auto_trade_off": Prefs(auto_trade_enabled=False),
    "other_algorithm": Prefs(algorithms=("quantum_ai",)),
    "other_timeframe": Prefs(timeframes=("15",)),
    "min_score_above_the_signal": Prefs(min_score=Decimal(90)),
    "symbol_blocked": Prefs(symbol_blocklist=(SYMBOL,)),
    "symbol_not_in_allowlist": Prefs(symbol_allowlist=("SOLUSDT",)),
    "mainnet_account_while_live_trading_is_off": Prefs(),
    "max_open_positions_reached": Prefs(algorithms=BOTH, timeframes=("60", "720"), max_open_positions=1),
    "position_already_open_in_the_symbol": Prefs(algorithms=BOTH, timeframes=("60", "240")),
    "no_trading_account": Prefs(),
}


@dataclass
class FanOut:
    signal_id: UUID
    eligible: dict[str, PaperUser]
    excluded: dict[str, PaperUser]
    too_small: PaperUser
    earlier: list[UUID]
    report: ExecutionReport
    live_trading_enabled: bool


@pytest.fixture(scope="module")
async def fan_out(
    db: Database, settings: Settings, owner_conn: psycopg.Connection, paper_url: str
) -> AsyncIterator[FanOut]:
    vault = KeyVault(settings.master_keys)
    seeder = Seeder(owner_conn, settings.jwt_secret.reveal(), db, vault, paper_url)
    signals = Signals(db, paper_url)
    try:
        eligible = {name: await seeder.user(prefs) for name, prefs in ELIGIBLE.items()}
        excluded = {
            name: await seeder.user(
                prefs,
                environment="mainnet" if name.startswith("mainnet") else "paper",
                account=name != "no_trading_account",
            )
            for name, prefs in EXCLUDED.items()
        }
        # Sized below the instrument's minimum: eligible by the rules, skipped by sizing.
        too_small = await seeder.user(Prefs(max_position_usd=Decimal("0.01")))
        deps = executor_deps(db, vault, paper_url, worker=f"test-executor-{uuid.uuid4().hex[:8]}")
        now = datetime.now(UTC)
        earlier = [
            await signals.insert("SOLUSDT", algorithm="quantum_ai", timeframe="720"),
            await signals.insert(SYMBOL, algorithm="quantum_ai", timeframe="240"),
        ]
        await execute_pending(deps, now=now, signal_ids=earlier)
        signal_id = await signals.insert(SYMBOL, score=Decimal(85))
        report = await execute_pending(deps, now=now, signal_ids=[signal_id])
        async with db.read(Caller.service()) as conn:
            row = await (
                await conn.execute("select value from app_settings where key = 'live_trading_enabled'")
            ).fetchone()
        yield FanOut(
            signal_id=signal_id,
            eligible=eligible,
            excluded=excluded,
            too_small=too_small,
            earlier=earlier,
            report=report,
            live_trading_enabled=row is not None and row["value"] is True,
        )
    finally:
        await signals.close()
        seeder.close()


async def test_the_signal_is_executed_for_every_eligible_user_and_nobody_else(
    fan_out: FanOut, db: Database
) -> None:
    rows = await order_rows(db, signal_id=fan_out.signal_id)
    assert {r["user_id"] for r in rows} == {u.id for u in fan_out.eligible.values()}
    assert fan_out.report.claimed == 1
    assert sorted(o.user_id for o in fan_out.report.outcomes if o.outcome in ("placed", "filled")) == sorted(
        u.id for u in fan_out.eligible.values()
    )


@pytest.mark.parametrize("case", sorted(EXCLUDED))
async def test_the_signal_leaves_out_a_user_with(
    case: str, fan_out: FanOut, db: Database, paper_url: str
) -> None:
    user = fan_out.excluded[case]
    assert await order_rows(db, user_ids=[user.id], signal_id=fan_out.signal_id) == []
    if user.api_key:
        link = order_link_id(fan_out.signal_id, user.id)
        assert [o for o in await entry_orders(paper_url, user) if o["orderLinkId"] == link] == []


async def test_the_users_left_out_for_open_positions_really_hold_the_earlier_ones(
    fan_out: FanOut, db: Database
) -> None:
    # The preconditions of two exclusions above: each holds exactly the earlier signal's order.
    for case, earlier in (
        ("max_open_positions_reached", fan_out.earlier[0]),
        ("position_already_open_in_the_symbol", fan_out.earlier[1]),
    ):
        rows = await order_rows(db, user_ids=[fan_out.excluded[case].id])
        assert [(r["signal_id"], r["status"]) for r in rows] == [(earlier, "placed")]
    assert fan_out.live_trading_enabled is False


async def test_a_user_whose_order_would_be_below_the_minimum_is_skipped_with_the_reason_logged(
    fan_out: FanOut, db: Database
) -> None:
    user = fan_out.too_small
    assert await order_rows(db, user_ids=[user.id]) == []
    async with db.read(Caller.service()) as conn:
        logs = await (
            await conn.execute(
                "select event, level, context from trade_logs "
                "where user_id = %s and context ->> 'signal_id' = %s order by id",
                (user.id, str(fan_out.signal_id)),
            )
        ).fetchall()
    assert [(log["event"], log["level"]) for log in logs] == [("sizing_skipped", "warning")]
    assert logs[0]["context"]["reason"] in ("below_min_qty", "below_min_notional")


async def test_each_order_is_on_the_exchange_once_with_its_link_id_stop_loss_and_take_profit(
    fan_out: FanOut, db: Database, paper_url: str
) -> None:
    rows = {r["user_id"]: r for r in await order_rows(db, signal_id=fan_out.signal_id)}
    for user in fan_out.eligible.values():
        row = rows[user.id]
        [order] = await entry_orders(paper_url, user)
        assert order["orderLinkId"] == order_link_id(fan_out.signal_id, user.id) == row["order_link_id"]
        assert order["orderId"] == row["exchange_order_id"]
        assert (order["symbol"], order["side"], order["orderType"]) == (SYMBOL, "Buy", "Market")
        assert Decimal(order["qty"]) == row["qty"]
        assert Decimal(order["stopLoss"]) == row["stop_loss"]
        assert Decimal(order["takeProfit"]) == row["take_profit"]
        assert row["stop_loss"] < row["price"] < row["take_profit"]
        assert order["orderStatus"] == "Filled"


async def test_the_rows_record_the_placed_orders(fan_out: FanOut, db: Database) -> None:
    async with db.read(Caller.service()) as conn:
        signal = await (
            await conn.execute(
                "select entry_price, stop_loss, take_profit, status from signals where id = %s",
                (fan_out.signal_id,),
            )
        ).fetchone()
    assert signal is not None
    assert signal["status"] == "executed"
    for row in await order_rows(db, signal_id=fan_out.signal_id):
        assert row["status"] == "placed"  # the exchange's fill is the tracker's to record
        assert row["placed_at"] is not None
        assert row["attempts"] == 1
        assert (row["symbol"], row["side"], row["environment"], row["leverage"]) == (
            SYMBOL,
            "Buy",
            "paper",
            2,
        )
        # Levels on the tick grid, never closer to the entry than the signal's.
        assert row["stop_loss"] <= signal["stop_loss"]
        assert row["take_profit"] >= signal["take_profit"]
        assert abs(row["price"] - signal["entry_price"]) < Decimal("0.000001")


async def test_trade_logs_record_each_step_of_each_order(fan_out: FanOut, db: Database) -> None:
    rows = await order_rows(db, signal_id=fan_out.signal_id)
    async with db.read(Caller.service()) as conn:
        logs = await (
            await conn.execute(
                "select order_id, user_id, event from trade_logs where order_id = any(%s) order by id",
                ([r["id"] for r in rows],),
            )
        ).fetchall()
    for row in rows:
        events = [(log["user_id"], log["event"]) for log in logs if log["order_id"] == row["id"]]
        assert events == [(row["user_id"], "order_requested"), (row["user_id"], "order_placed")]


async def test_running_the_executor_again_adds_nothing_even_if_the_signal_is_queued_again(
    fan_out: FanOut, db: Database, settings: Settings, paper_url: str
) -> None:
    deps = executor_deps(db, KeyVault(settings.master_keys), paper_url, worker="test-executor-again")
    before = await order_rows(db, signal_id=fan_out.signal_id)

    again = await execute_pending(deps, now=datetime.now(UTC), signal_ids=[fan_out.signal_id])
    assert again.claimed == 0

    async with db.write(Caller.service()) as conn:
        await conn.execute("update signals set status = 'new' where id = %s", (fan_out.signal_id,))
    requeued = await execute_pending(deps, now=datetime.now(UTC), signal_ids=[fan_out.signal_id])
    assert requeued.claimed == 1
    # Only the user sizing skipped is looked at again; everyone with an order is left alone.
    assert [(o.user_id, o.outcome) for o in requeued.outcomes] == [(fan_out.too_small.id, "skipped")]

    after = await order_rows(db, signal_id=fan_out.signal_id)
    assert [(r["id"], r["status"]) for r in after] == [(r["id"], r["status"]) for r in before]
    for user in fan_out.eligible.values():
        assert len(await entry_orders(paper_url, user)) == 1
    async with db.read(Caller.service()) as conn:
        row = await (
            await conn.execute("select status from signals where id = %s", (fan_out.signal_id,))
        ).fetchone()
    assert row is not None
    assert row["status"] == "executed"
