"""Request and response models of ``trading-activity``: the caller's own orders, positions, trade log
and P&L, read as the caller (RLS decides what they see).

Money is in USDT (every market the system trades settles in USDT) and travels as decimal strings, so
no client rounds a fee or a P&L through a float.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import Field

from lib.core.vocabulary import Environment, OrderStatus, Symbol
from lib.http.spec import Request, Response, StatusRequest, StatusResponse

MAX_LIMIT = 200
DEFAULT_LIMIT = 50

Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT, description=f"page size, at most {MAX_LIMIT}")]
Cursor = Annotated[
    str, Field(min_length=1, max_length=200, description="next_cursor of the previous page, as is")
]
CloseReason = Literal["TakeProfit", "StopLoss", "Closed"]


class ListOrders(Request):
    """The caller's orders, newest first (by request time), optionally of some statuses and one symbol."""

    action: Literal["orders"]
    status: Annotated[list[OrderStatus], Field(min_length=1, max_length=8)] | None = Field(
        default=None, description="only orders in one of these statuses"
    )
    symbol: Symbol | None = None
    limit: Limit = DEFAULT_LIMIT
    cursor: Cursor | None = None


class ListPositions(Request):
    """The caller's open positions (filled orders not yet closed), with unrealized P&L at the last price."""

    action: Literal["positions"]


class ListTradeLogs(Request):
    """The caller's trade-log events, newest first; only one order's with ``order_id``."""

    action: Literal["trade_logs"]
    order_id: UUID | None = None
    limit: Limit = DEFAULT_LIMIT
    cursor: Cursor | None = None


class GetSummary(Request):
    """Realized P&L (today UTC, 7 days, total), fees, win rate, open risk and the realized-P&L series."""

    action: Literal["summary"]


TradingActivityRequest = Annotated[
    ListOrders | ListPositions | ListTradeLogs | GetSummary | StatusRequest, Field(discriminator="action")
]


class OrderView(Response):
    """One order as the caller sees it."""

    id: UUID
    signal_id: UUID | None
    order_link_id: str
    environment: Environment
    symbol: str
    side: Literal["Buy", "Sell"]
    status: OrderStatus
    status_reason: str | None
    qty: Decimal
    filled_qty: Decimal
    avg_fill_price: Decimal | None
    stop_loss: Decimal | None
    take_profit: Decimal | None
    leverage: int
    entry_fee: Decimal = Field(description="fee paid on the entry fill (USDT)")
    exit_fee: Decimal | None = Field(description="fees paid on the fills that closed the position (USDT)")
    fees: Decimal = Field(description="entry fee plus exit fees (USDT)")
    exit_price: Decimal | None
    exit_reason: CloseReason | None = Field(description="how the position ended, when known")
    realized_pnl: Decimal | None = Field(description="net of every fee, once the position is closed (USDT)")
    close_requested_at: datetime | None = Field(description="when the caller asked to close it by hand")
    requested_at: datetime
    placed_at: datetime | None
    filled_at: datetime | None
    closed_at: datetime | None
    updated_at: datetime


class OrdersPage(Response):
    """One page of orders; pass ``next_cursor`` back for the next page (null on the last one)."""

    orders: list[OrderView]
    next_cursor: str | None


class PositionView(Response):
    """An open position: the filled order that opened it, and its unrealized P&L at the last price.

    ``last_price`` and ``unrealized_pnl`` are null, with ``price_unavailable_reason`` saying why, when
    the exchange's public tickers could not give a price: never a made-up number.
    """

    order_id: UUID
    signal_id: UUID | None
    order_link_id: str
    environment: Environment
    symbol: str
    side: Literal["Buy", "Sell"]
    size: Decimal
    entry_price: Decimal | None
    stop_loss: Decimal | None
    take_profit: Decimal | None
    leverage: int
    entry_fee: Decimal
    opened_at: datetime | None
    close_requested_at: datetime | None
    last_price: Decimal | None
    unrealized_pnl: Decimal | None = Field(description="(last - entry) x size, signed by side, before fees")
    price_unavailable_reason: str | None = None


class PositionsList(Response):
    """Every open position of the caller (USDT)."""

    currency: Literal["USDT"] = "USDT"
    positions: list[PositionView]
    as_of: datetime


class TradeLogView(Response):
    """One event of an order's (or the caller's) timeline."""

    id: int
    order_id: UUID | None
    level: Literal["debug", "info", "warning", "error"]
    event: str
    message: str
    context: dict[str, Any]
    created_at: datetime


class TradeLogsPage(Response):
    """One page of events, newest first; ``next_cursor`` for the next page (null on the last one)."""

    trade_logs: list[TradeLogView]
    next_cursor: str | None


class PnlPoint(Response):
    """One closed position on the realized-P&L curve, in close-time order."""

    order_id: UUID
    symbol: str
    closed_at: datetime
    realized_pnl: Decimal
    cumulative_pnl: Decimal = Field(description="total realized P&L up to and including this close")


class Summary(Response):
    """The caller's results in USDT. Win rate counts closed positions with a known P&L (> 0 is a win)."""

    currency: Literal["USDT"] = "USDT"
    as_of: datetime
    realized_pnl_today: Decimal = Field(description="positions closed since 00:00 UTC today")
    realized_pnl_7d: Decimal = Field(description="positions closed in the last 7 x 24 hours")
    realized_pnl_total: Decimal
    fees_paid: Decimal = Field(description="every entry and exit fee recorded on the caller's orders")
    closed_positions: int
    wins: int
    losses: int
    win_rate: float | None = Field(description="wins / (wins + losses); null before the first close")
    open_positions: int
    open_risk: Decimal = Field(description="sum over open positions of size x |entry - stop loss|")
    open_positions_without_stop: int = Field(
        description="open positions with no stop loss or entry price: unbounded risk, not summed"
    )
    pnl_series: list[PnlPoint] = Field(
        description="the most recent closes (at most 1000), oldest first, cumulative over all closes"
    )


TradingActivityResponse = OrdersPage | PositionsList | TradeLogsPage | Summary | StatusResponse
