"""Parsing the body of ``/v5/order/create`` into a typed request, with Bybit's 10001 errors."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from lib.paper_exchange.instruments import CATEGORIES
from lib.paper_exchange.models import BUY, SELL
from lib.paper_exchange.numbers import params_error, parse_decimal, parse_integer

# Matched with fullmatch: "$" would also match before a trailing newline ("abc\n").
ORDER_LINK_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,36}")
ORDER_TYPES = ("Market", "Limit")
TIME_IN_FORCE = ("GTC", "IOC", "FOK", "PostOnly")
TRIGGER_BY = ("LastPrice", "MarkPrice", "IndexPrice")
MARKET_UNITS = ("baseCoin", "quoteCoin")


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A syntactically valid order; the book still checks it against filters, balance and position."""

    category: str
    symbol: str
    side: str
    order_type: str
    qty: Decimal
    price: Decimal | None
    time_in_force: str
    order_link_id: str
    reduce_only: bool
    close_on_trigger: bool
    take_profit: Decimal | None
    stop_loss: Decimal | None
    tp_trigger_by: str
    sl_trigger_by: str
    market_unit: str
    position_idx: int


def _choice(body: Mapping[str, Any], name: str, allowed: tuple[str, ...], default: str | None = None) -> str:
    value = body.get(name, default)
    if value is None or value == "":
        if default is not None:
            return default
        raise params_error(f"params error: {name} is required")
    if value not in allowed:
        raise params_error(f"params error: {name} must be one of {', '.join(allowed)}")
    return str(value)


def _flag(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return bool(value == "true")
    raise params_error(f"params error: {name} must be true or false")


def _positive(body: Mapping[str, Any], name: str, *, required: bool) -> Decimal | None:
    value = parse_decimal(body.get(name), name, required=required)
    if value is not None and value <= 0:
        raise params_error(f"params error: {name} must be greater than 0")
    return value


def parse_order_request(body: Mapping[str, Any]) -> OrderRequest:
    """The order in ``body`` (Bybit's JSON field names), or a 10001 rejection naming the bad field."""
    category = _choice(body, "category", CATEGORIES)
    symbol = body.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise params_error("params error: symbol is required")
    order_type = _choice(body, "orderType", ORDER_TYPES)
    qty = _positive(body, "qty", required=True) or Decimal(0)  # required: never None here
    price = _positive(body, "price", required=order_type == "Limit") if order_type == "Limit" else None
    tif_default = "GTC" if order_type == "Limit" else "IOC"
    link_id = body.get("orderLinkId", "") or ""
    if not isinstance(link_id, str) or (link_id and not ORDER_LINK_ID_RE.fullmatch(link_id)):
        raise params_error("params error: orderLinkId must be 1 to 36 characters of A-Z a-z 0-9 _ -")
    position_idx = parse_integer(body.get("positionIdx", 0))
    if position_idx is None:
        raise params_error("params error: positionIdx must be an integer")
    return OrderRequest(
        category=category,
        symbol=symbol,
        side=_choice(body, "side", (BUY, SELL)),
        order_type=order_type,
        qty=qty,
        price=price,
        # A market order cannot rest: whatever is asked, it is immediate-or-cancel.
        time_in_force=_choice(body, "timeInForce", TIME_IN_FORCE, tif_default)
        if price is not None
        else "IOC",
        order_link_id=link_id,
        reduce_only=_flag(body, "reduceOnly"),
        close_on_trigger=_flag(body, "closeOnTrigger"),
        take_profit=_positive(body, "takeProfit", required=False),
        stop_loss=_positive(body, "stopLoss", required=False),
        tp_trigger_by=_choice(body, "tpTriggerBy", TRIGGER_BY, "LastPrice"),
        sl_trigger_by=_choice(body, "slTriggerBy", TRIGGER_BY, "LastPrice"),
        market_unit=_choice(body, "marketUnit", MARKET_UNITS, ""),
        position_idx=position_idx,
    )
