"""The caller's own activity, as ``trading-activity`` shows it: orders, open positions with unrealized
P&L, the trade-log timeline, and a P&L summary (USDT).

Everything is read as the caller (``lib.stores.activity``): RLS decides what they see. Figures come
from what the executor and the tracker stored from the exchange's answers: the entry fill (price,
quantity, fee), and at the close the exit fills' average price, their fees, and the realized P&L net of
every fee. Unrealized P&L is priced at the last traded price from the exchange's public tickers; when
no price can be had, it is null with the reason, never an estimate.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from lib.db.session import Caller, Database
from lib.errors import AitradexError
from lib.exchange.access import MarketAccess
from lib.log import log_event
from lib.services.signals_query import decode_cursor, encode_cursor
from lib.stores import activity as activity_store
from lib.stores.activity import OrderKey

logger = logging.getLogger("aitradex.activity")
CATEGORY = "linear"


@dataclass(frozen=True, slots=True)
class Page:
    """Rows of one page (as dicts named like the response fields) and the next page's cursor."""

    rows: list[dict[str, Any]]
    next_cursor: str | None


def _order_fields(row: dict[str, Any]) -> dict[str, Any]:
    entry_fee = Decimal(row["fee"] or 0)
    exit_fee = Decimal(row["exit_fee"]) if row["exit_fee"] is not None else None
    return {
        **row,
        "entry_fee": entry_fee,
        "exit_fee": exit_fee,
        "fees": entry_fee + (exit_fee or 0),
        "exit_reason": row["close_reason"],
    }


async def list_orders(
    db: Database,
    caller: Caller,
    *,
    statuses: Sequence[str] | None,
    symbol: str | None,
    cursor: str | None,
    limit: int,
) -> Page:
    """One page of the caller's orders, newest first (keyset cursor over ``(created_at, id)``)."""
    after = None
    if cursor is not None:
        position = decode_cursor(cursor)
        after = OrderKey(created_at=position.created_at, id=position.id)
    rows = await activity_store.orders_page(
        db, caller, statuses=statuses, symbol=symbol, after=after, limit=limit + 1
    )
    more, rows = len(rows) > limit, rows[:limit]
    next_cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None
    return Page(rows=[_order_fields(r) for r in rows], next_cursor=next_cursor)


async def list_trade_logs(
    db: Database, caller: Caller, *, order_id: UUID | None, cursor: str | None, limit: int
) -> Page:
    """One page of the caller's trade-log events, newest first (one order's with ``order_id``)."""
    # The event ids are bigints: the cursor carries the last one in the id part of the shared format.
    after_id = decode_cursor(cursor).id.int if cursor is not None else None
    rows = await activity_store.trade_logs_page(
        db, caller, order_id=order_id, after_id=after_id, limit=limit + 1
    )
    more, rows = len(rows) > limit, rows[:limit]
    next_cursor = encode_cursor(rows[-1]["created_at"], UUID(int=rows[-1]["id"])) if more else None
    return Page(rows=rows, next_cursor=next_cursor)


async def _last_prices(
    market: MarketAccess, wanted: set[tuple[str, str]]
) -> dict[tuple[str, str], Decimal | str]:
    """The last traded price of each (environment, symbol), or the reason there is none."""
    prices: dict[tuple[str, str], Decimal | str] = {}
    for environment in sorted({env for env, _ in wanted}):
        symbols = sorted(s for env, s in wanted if env == environment)
        try:
            async with market.client(environment) as client:
                for symbol in symbols:
                    tickers = await client.tickers(CATEGORY, symbol)
                    last = tickers[0].last_price if tickers else None
                    ok = last is not None and Decimal(str(last)).is_finite() and last > 0
                    prices[(environment, symbol)] = (
                        Decimal(str(last))
                        if ok
                        else f"the {environment} exchange lists no last price for {symbol}"
                    )
        except AitradexError as exc:
            log_event(
                logger,
                "activity_price_unavailable",
                level=logging.WARNING,
                environment=environment,
                error=exc.code,
            )
            for symbol in symbols:
                prices.setdefault(
                    (environment, symbol), f"the {environment} exchange gave no price: {exc.message}"
                )
    return prices


def _position_fields(row: dict[str, Any], price: Decimal | str | None) -> dict[str, Any]:
    size = Decimal(row["filled_qty"])
    entry = Decimal(row["avg_fill_price"]) if row["avg_fill_price"] is not None else None
    fields: dict[str, Any] = {
        **row,
        "order_id": row["id"],
        "size": size,
        "entry_price": entry,
        "entry_fee": Decimal(row["fee"] or 0),
        "opened_at": row["filled_at"] or row["placed_at"],
        "last_price": None,
        "unrealized_pnl": None,
        "price_unavailable_reason": None,
    }
    if isinstance(price, Decimal) and entry is not None:
        sign = 1 if row["side"] == "Buy" else -1
        fields.update(last_price=price, unrealized_pnl=sign * (price - entry) * size)
    elif isinstance(price, Decimal):
        fields.update(last_price=price, price_unavailable_reason="the entry price is not known yet")
    else:
        fields["price_unavailable_reason"] = price or "no price"
    return fields


async def open_positions(db: Database, caller: Caller, market: MarketAccess) -> list[dict[str, Any]]:
    """The caller's open positions with unrealized P&L at the last price (null, with why, without one)."""
    rows = await activity_store.open_positions(db, caller)
    prices = await _last_prices(market, {(r["environment"], r["symbol"]) for r in rows}) if rows else {}
    return [_position_fields(r, prices.get((r["environment"], r["symbol"]))) for r in rows]


@dataclass(frozen=True, slots=True)
class SummaryFigures:
    """What ``summary`` answers (see ``functions/trading_activity/models.py``)."""

    as_of: datetime
    totals: activity_store.Totals
    open_positions: int
    open_risk: Decimal
    open_positions_without_stop: int
    series: list[dict[str, Any]]

    @property
    def win_rate(self) -> float | None:
        decided = self.totals.wins + self.totals.losses
        return round(self.totals.wins / decided, 6) if decided else None


def open_risk(positions: Sequence[dict[str, Any]]) -> tuple[Decimal, int]:
    """Sum of size x |entry - stop loss| over the positions that have both, and how many lack either."""
    risk, unbounded = Decimal(0), 0
    for p in positions:
        if p["avg_fill_price"] is None or p["stop_loss"] is None:
            unbounded += 1
            continue
        risk += Decimal(p["filled_qty"]) * abs(Decimal(p["avg_fill_price"]) - Decimal(p["stop_loss"]))
    return risk, unbounded


async def summary(db: Database, caller: Caller, *, now: datetime) -> SummaryFigures:
    """Realized P&L today (since 00:00 UTC), over the last 7 x 24 h and in total; fees; win rate; open
    risk; and the realized-P&L series by close time (oldest first)."""
    now = now.astimezone(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    totals, series, positions = await activity_store.summary(
        db, caller, day=day, week=now - timedelta(days=7)
    )
    risk, unbounded = open_risk(positions)
    return SummaryFigures(
        as_of=now,
        totals=totals,
        open_positions=len(positions),
        open_risk=risk,
        open_positions_without_stop=unbounded,
        series=list(reversed(series)),
    )
