"""Order filters, checked the way Bybit checks them and rejected with Bybit's codes and messages.

Linear (derivatives, unified account): a quantity that truncates to zero at the step is 110017, any other
lot or tick violation is 10001 with Bybit's wording, a notional below ``minNotionalValue`` is 110094
(reduce-only orders are exempt, as on Bybit). Spot: 170134 price decimals, 170137 quantity decimals,
170136 below the minimum quantity, 170135 above the maximum, 170140 value below ``minOrderAmt``.
Attached take-profit / stop-loss must sit on the right side of the base price (10001 otherwise).
"""

from __future__ import annotations

from decimal import Decimal

from lib.errors import ExchangeRejected
from lib.paper_exchange.instruments import Instrument
from lib.paper_exchange.models import BUY
from lib.paper_exchange.numbers import fmt, is_multiple, params_error

QTY_TRUNCATED_TO_ZERO = 110017
LINEAR_NOTIONAL_TOO_LOW = 110094
SPOT_PRICE_DECIMALS = 170134
SPOT_QTY_TOO_HIGH = 170135
SPOT_QTY_TOO_LOW = 170136
SPOT_QTY_DECIMALS = 170137
SPOT_VALUE_TOO_LOW = 170140
SPOT_AMOUNT_DECIMALS = 170148
SPOT_QUOTE_PRECISION = Decimal("0.00000001")


def _reject(code: int, message: str) -> ExchangeRejected:
    return ExchangeRejected(message, ret_code=code, ret_msg=message)


def check_linear(
    inst: Instrument, qty: Decimal, price: Decimal | None, notional_price: Decimal, *, reduce_only: bool
) -> None:
    """Lot, tick and notional filters of a linear order (``price`` is None for a market order)."""
    if qty < inst.qty_step:
        raise _reject(QTY_TRUNCATED_TO_ZERO, "orderQty will be truncated to zero.")
    if not is_multiple(qty, inst.qty_step):
        raise params_error(f"Qty invalid: {fmt(qty)} is not a multiple of qtyStep {fmt(inst.qty_step)}")
    if qty < inst.min_order_qty:
        raise params_error(
            "The number of contracts exceeds minimum limit allowed: too small, "
            f"order_qty:{fmt(qty)} < min_qty:{fmt(inst.min_order_qty)}"
        )
    if qty > inst.max_order_qty:
        raise params_error(
            "The number of contracts exceeds maximum limit allowed: too large, "
            f"order_qty:{fmt(qty)} > max_qty:{fmt(inst.max_order_qty)}"
        )
    if price is not None and not is_multiple(price, inst.tick_size):
        raise params_error(f"Price invalid: {fmt(price)} is not a multiple of tickSize {fmt(inst.tick_size)}")
    if not reduce_only and qty * notional_price < inst.min_notional:
        raise _reject(
            LINEAR_NOTIONAL_TOO_LOW,
            f"Order does not meet minimum order value {fmt(inst.min_notional)}USDT",
        )


def check_spot(inst: Instrument, qty: Decimal, price: Decimal | None, notional_price: Decimal) -> None:
    """Filters of a spot order whose ``qty`` is in the base coin."""
    if price is not None and not is_multiple(price, inst.tick_size):
        raise _reject(SPOT_PRICE_DECIMALS, "Order price decimal too long.")
    if not is_multiple(qty, inst.base_precision):
        raise _reject(SPOT_QTY_DECIMALS, "Order volume decimal too long")
    if qty < inst.min_order_qty:
        raise _reject(SPOT_QTY_TOO_LOW, "Order quantity exceeded lower limit.")
    if qty > inst.max_order_qty:
        raise _reject(SPOT_QTY_TOO_HIGH, "Order quantity exceeded upper limit.")
    if qty * notional_price < inst.min_notional:
        raise _reject(SPOT_VALUE_TOO_LOW, "Order value exceeded lower limit")


def check_spot_quote_amount(inst: Instrument, amount: Decimal) -> None:
    """Filters of a spot market buy whose ``qty`` is an amount of the quote coin (Bybit's default)."""
    if not is_multiple(amount, SPOT_QUOTE_PRECISION):
        raise _reject(SPOT_AMOUNT_DECIMALS, "Market order amount decimal too long")
    if amount < inst.min_notional:
        raise _reject(SPOT_VALUE_TOO_LOW, "Order value exceeded lower limit")


def check_tpsl(side: str, take_profit: Decimal | None, stop_loss: Decimal | None, base: Decimal) -> None:
    """Bybit's rule: a long's TP above and SL below the base price; a short's the other way round."""
    long = side == BUY
    if take_profit is not None and (take_profit <= base if long else take_profit >= base):
        relation = "higher" if long else "lower"
        raise params_error(
            f"TakeProfit:{fmt(take_profit)} set for {side} position should be {relation} than "
            f"base_price:{fmt(base)}??LastPrice"
        )
    if stop_loss is not None and (stop_loss >= base if long else stop_loss <= base):
        relation = "lower" if long else "higher"
        raise params_error(
            f"StopLoss:{fmt(stop_loss)} set for {side} position should be {relation} than "
            f"base_price:{fmt(base)}??LastPrice"
        )
