"""What the exchange allows, and what the executor does about it (issue 9, items 12, 13 and 15).

- leverage above the instrument's ``maxLeverage`` (100 for BTCUSDT and ETHUSDT on the paper exchange, 50
  or 25 for the others; preferences allow 100) is capped at sizing time, and the order's ``trade_logs``
  say so;
- a manual market order is checked as a signal's is: the ticker's last price need not lie on the tick
  (TIAUSDT's does not at the replay start), and an unlisted symbol is a 404 with suggestions;
- a wallet that answers nonsense (``1e999999``, ``Infinity``) is a skip with a reason, not an
  arithmetic error.

Real users, keys and orders on a paper exchange of this module's own.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from lib.core.instruments import on_multiple
from lib.crypto import KeyVault
from lib.db.session import Caller, Database
from lib.errors import NotFound
from lib.exchange.access import MarketAccess
from lib.exchange.ports import Credentials, TradingExchange, WalletBalance
from lib.services.execution.deps import ExecutorDeps
from lib.services.execution.fanout import execute_pending
from lib.services.execution.manual import ManualOrder, execute_manual_for_user
from tests.integration.execution_helpers import (
    Prefs,
    Seeder,
    Signals,
    current_price,
    exchange_for,
    executor_deps,
    order_rows,
)

CAPPED_SYMBOL, PAPER_MAX_LEVERAGE = "SUNUSDT", 25  # maxLeverage 25
OFF_TICK_SYMBOL, OFF_TICK_MAX_LEVERAGE = "TIAUSDT", 50  # last price 13.9241 at the start, tick 0.001


def deps_for(db: Database, vault: KeyVault, paper_url: str, **kw: Any) -> ExecutorDeps:
    return executor_deps(db, vault, paper_url, worker=f"test-limits-{uuid.uuid4().hex[:8]}", **kw)


def manual(symbol: str = OFF_TICK_SYMBOL, amount: str = "100") -> ManualOrder:
    return ManualOrder(
        symbol=symbol, side="Buy", amount_usd=Decimal(amount), client_order_id=uuid.uuid4().hex[:16]
    )


async def events(db: Database, user_id: uuid.UUID) -> list[dict[str, Any]]:
    async with db.read(Caller.service()) as conn:
        rows = await (
            await conn.execute(
                "select order_id, event, message, context from trade_logs where user_id = %s order by id",
                (user_id,),
            )
        ).fetchall()
    return list(rows)


# -- item 12: leverage the exchange refuses -----------------------------------------------------------


async def test_leverage_above_the_instruments_maximum_is_capped_and_the_order_log_says_so(
    db: Database, vault: KeyVault, paper_url: str, seeder: Seeder, signals: Signals
) -> None:
    user = await seeder.user(Prefs(leverage=50))
    signal_id = await signals.insert(CAPPED_SYMBOL)

    report = await execute_pending(
        deps_for(db, vault, paper_url), now=datetime.now(UTC), signal_ids=[signal_id]
    )

    assert [o.outcome for o in report.outcomes] == ["placed"], report.outcomes
    [row] = await order_rows(db, user_ids=[user.id])
    assert (row["status"], row["leverage"]) == ("placed", PAPER_MAX_LEVERAGE)
    [capped] = [e for e in await events(db, user.id) if e["event"] == "leverage_capped"]
    assert capped["order_id"] == row["id"]
    assert capped["context"] == {"requested": 50, "used": PAPER_MAX_LEVERAGE}
    assert "50x" in capped["message"]
    position = user.session(paper_url).get_positions(category="linear", symbol=CAPPED_SYMBOL)["result"][
        "list"
    ]
    assert Decimal(position[0]["leverage"]) == PAPER_MAX_LEVERAGE


async def test_btcusdt_takes_100x_uncapped(
    db: Database, vault: KeyVault, paper_url: str, seeder: Seeder, signals: Signals
) -> None:
    user = await seeder.user(Prefs(leverage=100))
    signal_id = await signals.insert("BTCUSDT")

    await execute_pending(deps_for(db, vault, paper_url), now=datetime.now(UTC), signal_ids=[signal_id])

    [row] = await order_rows(db, user_ids=[user.id])
    assert (row["status"], row["leverage"]) == ("placed", 100)
    assert "leverage_capped" not in {e["event"] for e in await events(db, user.id)}
    position = user.session(paper_url).get_positions(category="linear", symbol="BTCUSDT")["result"]["list"]
    assert position[0]["leverage"] == "100"


async def test_leverage_within_the_maximum_is_sent_as_it_is_and_logs_no_cap(
    db: Database, vault: KeyVault, paper_url: str, seeder: Seeder, signals: Signals
) -> None:
    user = await seeder.user(Prefs(leverage=PAPER_MAX_LEVERAGE))
    signal_id = await signals.insert("SOLUSDT")

    await execute_pending(deps_for(db, vault, paper_url), now=datetime.now(UTC), signal_ids=[signal_id])

    [row] = await order_rows(db, user_ids=[user.id])
    assert (row["status"], row["leverage"]) == ("placed", PAPER_MAX_LEVERAGE)
    assert "leverage_capped" not in {e["event"] for e in await events(db, user.id)}


# -- item 13: a manual trade is checked as a signal's order is ------------------------------------------


async def test_a_manual_market_order_is_placed_although_the_last_price_is_off_the_tick(
    db: Database, vault: KeyVault, paper_url: str, seeder: Seeder, signals: Signals
) -> None:
    price = await current_price(paper_url, OFF_TICK_SYMBOL)
    assert not on_multiple(price, Decimal("0.001")), "the premise: TIAUSDT's last price is off its tick"
    by_signal = await seeder.user(Prefs())
    by_hand = await seeder.user(Prefs(auto_trade_enabled=False, leverage=100))
    signal_id = await signals.insert(OFF_TICK_SYMBOL)
    deps = deps_for(db, vault, paper_url)

    pending = await execute_pending(deps, now=datetime.now(UTC), signal_ids=[signal_id])
    outcome = await execute_manual_for_user(
        deps, MarketAccess(paper_url=paper_url), user_id=by_hand.id, order=manual(), now=datetime.now(UTC)
    )

    assert [(o.user_id, o.outcome) for o in pending.outcomes] == [(by_signal.id, "placed")]
    assert outcome.outcome in ("placed", "filled"), outcome
    [row] = await order_rows(db, user_ids=[by_hand.id])
    assert row["status"] in ("placed", "filled")
    assert row["qty"] * price <= 100
    # The manual path caps leverage the same way.
    assert row["leverage"] == OFF_TICK_MAX_LEVERAGE
    assert "leverage_capped" in {e["event"] for e in await events(db, by_hand.id)}


async def test_an_unlisted_well_formed_symbol_is_a_404_with_suggestions_not_the_exchanges_error(
    db: Database, vault: KeyVault, paper_url: str, seeder: Seeder
) -> None:
    user = await seeder.user(Prefs())

    with pytest.raises(NotFound) as unlisted:
        await execute_manual_for_user(
            deps_for(db, vault, paper_url),
            MarketAccess(paper_url=paper_url),
            user_id=user.id,
            order=manual("ETHUSDC"),
            now=datetime.now(UTC),
        )

    assert unlisted.value.details["symbol"] == "ETHUSDC"
    assert unlisted.value.details["environment"] == "paper"
    assert "ETHUSDT" in unlisted.value.details["suggestions"]
    assert await order_rows(db, user_ids=[user.id]) == []


# -- item 15: a wallet that answers nonsense ----------------------------------------------------------------


@dataclass
class NonsenseWallet:
    """The real exchange, except that the wallet reports ``equity``."""

    inner: TradingExchange
    equity: Decimal

    async def wallet_balance(self, creds: Credentials) -> WalletBalance:
        return WalletBalance(
            total_equity=self.equity, total_available=self.equity, coins={"USDT": self.equity}
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize("equity", ["1e999999", "9.99e999999", "Infinity", "NaN", "1e16"])
async def test_a_wallet_equity_out_of_any_sane_range_is_a_skip_with_a_reason(
    db: Database, vault: KeyVault, paper_url: str, seeder: Seeder, signals: Signals, equity: str
) -> None:
    user = await seeder.user(Prefs())
    signal_id = await signals.insert("ETHUSDT")
    exchange = NonsenseWallet(exchange_for(paper_url), Decimal(equity))

    report = await execute_pending(
        deps_for(db, vault, paper_url, exchange=exchange), now=datetime.now(UTC), signal_ids=[signal_id]
    )

    assert [(o.outcome, o.reason) for o in report.outcomes] == [("skipped", "out_of_range")]
    [skipped] = [e for e in await events(db, user.id) if e["event"] == "sizing_skipped"]
    assert skipped["context"]["reason"] == "out_of_range"
    assert "wallet's equity" in skipped["message"]
    assert await order_rows(db, user_ids=[user.id]) == []
