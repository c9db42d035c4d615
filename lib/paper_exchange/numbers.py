"""Decimal helpers: every price, quantity and balance in the paper exchange is a ``Decimal``.

Bybit sends numbers as strings; so does the paper exchange. Candle values arrive as binary floats from
the CSV loader and are converted through ``repr`` (the shortest text that round-trips), which gives back
exactly the digits written in the CSV file.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation

from lib.errors import ExchangeRejected
from lib.exchange.bybit import PARAMS_ERROR


def dec(value: float) -> Decimal:
    """The exact decimal of a candle value as written in the CSV file."""
    return Decimal(repr(float(value)))


def fmt(value: Decimal) -> str:
    """Bybit's number text: plain notation, no exponent, no trailing zeros."""
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def fmt_optional(value: Decimal | None) -> str:
    """``fmt`` of a value Bybit writes as ``""`` when absent."""
    return "" if value is None else fmt(value)


def floor_to(value: Decimal, step: Decimal) -> Decimal:
    """The largest multiple of ``step`` not above ``value``."""
    return (value / step).to_integral_value(rounding=ROUND_FLOOR) * step


def ceil_to(value: Decimal, step: Decimal) -> Decimal:
    """The smallest multiple of ``step`` not below ``value``."""
    return (value / step).to_integral_value(rounding=ROUND_CEILING) * step


def is_multiple(value: Decimal, step: Decimal) -> bool:
    """Whether ``value`` is an exact multiple of ``step`` (no binary rounding involved)."""
    return value % step == 0


def params_error(message: str) -> ExchangeRejected:
    """Bybit's catch-all parameter error, retCode 10001."""
    return ExchangeRejected(message, ret_code=PARAMS_ERROR, ret_msg=message)


def parse_decimal(value: object, name: str, *, required: bool = True) -> Decimal | None:
    """A request parameter as a finite Decimal (string or JSON number), or a 10001 rejection."""
    if value is None or value == "":
        if required:
            raise params_error(f"params error: {name} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise params_error(f"params error: {name} must be a number string")
    try:
        parsed = Decimal(str(value))
    except InvalidOperation:
        raise params_error(f"params error: {name} is not a number: {value!r}") from None
    if not parsed.is_finite():
        raise params_error(f"params error: {name} is not a number: {value!r}")
    return parsed
