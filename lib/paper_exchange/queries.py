"""Which orders and positions a private query returns, and Bybit's cursor paging over them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from lib.paper_exchange.book import Book
from lib.paper_exchange.instruments import SETTLE_COIN
from lib.paper_exchange.models import Account, Order, Position
from lib.paper_exchange.numbers import params_error

RECENT_CLOSED_ORDERS = 500
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class OrderQuery:
    """The filters of ``/v5/order/realtime``."""

    category: str
    symbol: str | None = None
    base_coin: str | None = None
    settle_coin: str | None = None
    order_id: str | None = None
    order_link_id: str | None = None
    open_only: int = 0


def find_orders(book: Book, account: Account, query: OrderQuery) -> list[Order]:
    """Orders matching ``query``, newest first, with Bybit's ``openOnly`` semantics (unified account).

    ``openOnly=0`` lists open orders; ``openOnly=1`` lists the most recent 500 closed ones (Filled,
    Cancelled) of the category. An ``orderId`` or ``orderLinkId`` finds that order whether it is open or
    among the recent closed ones. Filters apply with Bybit's priority: orderId > orderLinkId > symbol >
    baseCoin. For linear, one of symbol, baseCoin, settleCoin (or an order id) is required.
    """
    if query.open_only not in (0, 1, 2):
        raise params_error("params error: openOnly must be 0, 1 or 2")
    by_id = query.order_id or query.order_link_id
    if query.category == "linear" and not (by_id or query.symbol or query.base_coin or query.settle_coin):
        raise params_error("Missing some parameters that must be filled in, symbol or settleCoin or baseCoin")
    orders = [o for o in book.orders_of(account) if o.category == query.category]
    closed = [o for o in orders if not o.is_open][:RECENT_CLOSED_ORDERS]
    open_orders = [o for o in orders if o.is_open]
    if by_id:
        pool = sorted(open_orders + closed, key=lambda o: o.created_time_ms, reverse=True)
        if query.order_id:
            return [o for o in pool if o.order_id == query.order_id]
        return [o for o in pool if o.order_link_id == query.order_link_id]
    pool = open_orders if query.open_only == 0 else closed
    if query.symbol:
        return [o for o in pool if o.symbol == query.symbol]
    if query.base_coin:
        return [o for o in pool if book.instrument(o.symbol).base_coin == query.base_coin]
    if query.settle_coin and query.settle_coin != SETTLE_COIN:
        return []
    return pool


def find_positions(
    book: Book, account: Account, symbol: str | None, settle_coin: str | None
) -> list[Position]:
    """Positions for ``/v5/position/list``: the symbol's (even flat, as Bybit does) or every open one."""
    if symbol:
        book.instrument(symbol)
        return [book.position(account, symbol)]
    if not settle_coin:
        raise params_error("Missing some parameters that must be filled in, symbol or settleCoin")
    if settle_coin != SETTLE_COIN:
        return []
    return [p for _, p in sorted(account.positions.items()) if p.size > 0]


def page(items: Sequence[T], limit: int, cursor: str | None) -> tuple[list[T], str]:
    """One page of ``items`` and the ``nextPageCursor`` (``""`` after the last page)."""
    start = 0
    if cursor:
        try:
            start = int(cursor)
        except ValueError:
            raise params_error("params error: cursor invalid") from None
        if start < 0:
            raise params_error("params error: cursor invalid")
    chunk = list(items[start : start + limit])
    following = start + limit
    return chunk, str(following) if following < len(items) else ""
