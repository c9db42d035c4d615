"""``/v5/order/history`` and ``/v5/execution/list``: an account's past orders and fills, as Bybit pages them.

Both take Bybit's filters (``symbol``, ``orderId``, ``orderLinkId``, ``startTime``/``endTime`` in epoch
ms) and cursor paging (``limit`` up to 50 orders or 100 executions, ``nextPageCursor``), newest first.
As on Bybit, the time window spans at most 7 days: with neither bound it is the last 7 days, with one
bound the 7 days after ``startTime`` (or before ``endTime``), and a wider one is a 10001 params error.
Times are the exchange's own: replay time, like every ``createdTime`` it reports.

The paper exchange fills an order whole, at one price (see :mod:`lib.paper_exchange.book`), so a filled
order has exactly one execution: its ``execId`` is derived from the order id (stable across restarts),
its ``execTime`` is the order's fill time (a filled order is never updated again). An order history
lists open and closed orders alike (a unified account's history does).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from lib.exchange.bybit import HISTORY_WINDOW_MS
from lib.paper_exchange.engine import PaperEngine
from lib.paper_exchange.instruments import CATEGORIES, SETTLE_COIN
from lib.paper_exchange.models import FILLED, Account, Order
from lib.paper_exchange.numbers import fmt, params_error, parse_integer
from lib.paper_exchange.queries import page
from lib.paper_exchange.views import order_view

Params = Mapping[str, Any]
_EXEC_NAMESPACE = uuid.UUID("8a1d6c2e-55b0-4d4e-9a57-3f0f4c8e7b10")


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """The filters both endpoints share."""

    category: str
    symbol: str | None
    order_id: str | None
    order_link_id: str | None
    start_ms: int
    end_ms: int

    def matches(self, order: Order, at_ms: int) -> bool:
        """Whether ``order`` (at its time ``at_ms``) passes every filter."""
        return (
            order.category == self.category
            and (self.symbol is None or order.symbol == self.symbol)
            and (self.order_id is None or order.order_id == self.order_id)
            and (self.order_link_id is None or order.order_link_id == self.order_link_id)
            and self.start_ms <= at_ms <= self.end_ms
        )


def _text(params: Params, name: str) -> str | None:
    value = params.get(name)
    return str(value) if value not in (None, "") else None


def _integer(params: Params, name: str, low: int, high: int) -> int | None:
    value = params.get(name)
    if value in (None, ""):
        return None
    number = parse_integer(value)
    if number is None or not low <= number <= high:
        raise params_error(f"params error: {name} must be an integer between {low} and {high}")
    return number


def _query(params: Params, now_ms: int) -> HistoryQuery:
    category = _text(params, "category")
    if category is None:
        raise params_error("params error: category is required")
    if category not in CATEGORIES:
        raise params_error(f"params error: category only support {', '.join(CATEGORIES)}")
    start, end = _integer(params, "startTime", 0, 2**62), _integer(params, "endTime", 0, 2**62)
    if start is None:
        start = (now_ms if end is None else end) - HISTORY_WINDOW_MS
    if end is None:
        end = now_ms if params.get("startTime") in (None, "") else start + HISTORY_WINDOW_MS
    if start > end:
        raise params_error("params error: startTime must not be after endTime")
    if end - start > HISTORY_WINDOW_MS:
        raise params_error("params error: the time range between startTime and endTime cannot exceed 7 days")
    return HistoryQuery(
        category=category,
        symbol=_text(params, "symbol"),
        order_id=_text(params, "orderId"),
        order_link_id=_text(params, "orderLinkId"),
        start_ms=start,
        end_ms=end,
    )


def _limit(params: Params, default: int, high: int) -> int:
    value = _integer(params, "limit", 1, high)
    return default if value is None else value


def order_history(engine: PaperEngine, account: Account, params: Params) -> dict[str, Any]:
    """``/v5/order/history``: the account's orders created in the window, newest first."""
    query = _query(params, engine.now_ms())
    orders = [o for o in engine.book.orders_of(account) if query.matches(o, o.created_time_ms)]
    chunk, cursor = page(orders, _limit(params, 20, 50), _text(params, "cursor"))
    return {"category": query.category, "nextPageCursor": cursor, "list": [order_view(o) for o in chunk]}


def execution_view(order: Order) -> dict[str, Any]:
    """The one execution of a filled order, as an element of ``/v5/execution/list``'s ``list``."""
    price = order.avg_price if order.avg_price is not None else Decimal(0)
    value = order.cum_exec_value
    maker = order.order_type == "Limit" and order.updated_time_ms > order.created_time_ms
    return {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderLinkId": order.order_link_id,
        "side": order.side,
        "orderPrice": fmt(order.price) if order.price is not None else fmt(price),
        "orderQty": fmt(order.qty),
        "leavesQty": "0",
        "createType": order.create_type,
        "orderType": order.order_type,
        "stopOrderType": order.stop_order_type,
        "execFee": fmt(order.cum_exec_fee),
        "execId": str(uuid.uuid5(_EXEC_NAMESPACE, order.order_id)),
        "execPrice": fmt(price),
        "execQty": fmt(order.cum_exec_qty),
        "execType": "Trade",
        "execValue": fmt(value),
        "execTime": str(order.updated_time_ms),
        "feeCurrency": SETTLE_COIN,
        "isMaker": maker,
        "feeRate": fmt(order.cum_exec_fee / value) if value else "0",
        "tradeIv": "",
        "markIv": "",
        "markPrice": fmt(price),
        "indexPrice": "",
        "underlyingPrice": "",
        "blockTradeId": "",
        # The paper exchange does not split a fill into its closing and opening parts.
        "closedSize": fmt(order.cum_exec_qty) if order.reduce_only else "0",
        "seq": 0,
    }


def execution_list(engine: PaperEngine, account: Account, params: Params) -> dict[str, Any]:
    """``/v5/execution/list``: the account's fills in the window (by execution time), newest first."""
    query = _query(params, engine.now_ms())
    filled = [o for o in engine.book.orders_of(account) if o.status == FILLED and o.cum_exec_qty > 0]
    fills = sorted(
        (o for o in filled if query.matches(o, o.updated_time_ms)),
        key=lambda o: o.updated_time_ms,
        reverse=True,
    )
    chunk, cursor = page(fills, _limit(params, 50, 100), _text(params, "cursor"))
    return {"category": query.category, "nextPageCursor": cursor, "list": [execution_view(o) for o in chunk]}
