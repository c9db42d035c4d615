"""Decimal helpers: every price, quantity and balance in the paper exchange is a ``Decimal``.

Bybit sends numbers as strings; so does the paper exchange. Candle values arrive as binary floats from
the CSV loader and are converted through ``repr`` (the shortest text that round-trips), which gives back
exactly the digits written in the CSV file.

Request numbers are accepted only as plain decimals, as Bybit accepts them: digits, at most one point,
an optional leading minus, and nothing else (no exponent, no ``_`` separators, no spaces, no ``NaN``).
Their size is bounded too (:data:`MAX_INTEGER_DIGITS` before the point, :data:`MAX_FRACTION_DIGITS`
after it), so every later sum, product and ``%`` stays inside the decimal context's 28 digits and
never raises ``decimal.InvalidOperation``: a value out of those bounds is a 10001 params error.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from lib.errors import ExchangeRejected, InvalidRequest
from lib.exchange.bybit import PARAMS_ERROR

MAX_INTEGER_DIGITS = 15
MAX_FRACTION_DIGITS = 12
#: A paper account's balance: above 0, at most a trillion USDT, in USDT's 8 decimals. Far more than
#: any test or demo needs, and small enough that no margin or P&L computed from it can overflow.
MAX_BALANCE = Decimal(10**12)
BALANCE_DECIMALS = 8
_PLAIN_DECIMAL = re.compile(r"-?(?P<int>[0-9]+)(?:\.(?P<frac>[0-9]+))?")
_PLAIN_INTEGER = re.compile(r"-?[0-9]{1,18}")


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


def plain_decimal(value: object) -> Decimal | None:
    """``value`` (a string, or a JSON integer or float) as a Decimal if it is a plain, bounded decimal.

    None for anything else: an exponent (``1e28``), ``_`` or spaces (``"4_00"``, ``" 400 "``),
    ``NaN``/``Infinity``, non-ASCII digits, more than :data:`MAX_INTEGER_DIGITS` digits before the
    point or :data:`MAX_FRACTION_DIGITS` after it, or a value that is not a number at all.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    if isinstance(value, int) and not -(10**MAX_INTEGER_DIGITS) < value < 10**MAX_INTEGER_DIGITS:
        return None  # before str(): a 5,000-digit int would hit Python's int-to-text limit
    text = repr(value) if isinstance(value, float) else str(value)
    if len(text) > 1 + MAX_INTEGER_DIGITS + 1 + MAX_FRACTION_DIGITS:
        return None
    match = _PLAIN_DECIMAL.fullmatch(text)
    if match is None:
        return None
    whole, fraction = match["int"].lstrip("0"), match["frac"] or ""
    if len(whole) > MAX_INTEGER_DIGITS or len(fraction) > MAX_FRACTION_DIGITS:
        return None
    return Decimal(text)


def parse_decimal(value: object, name: str, *, required: bool = True) -> Decimal | None:
    """A request parameter as a plain, bounded Decimal (see :func:`plain_decimal`), or a 10001 rejection.

    The rejection never echoes the submitted value: it may be anything, of any length.
    """
    if value is None or value == "":
        if required:
            raise params_error(f"params error: {name} is required")
        return None
    parsed = plain_decimal(value)
    if parsed is None:
        raise params_error(
            f"params error: {name} must be a plain decimal string of at most {MAX_INTEGER_DIGITS} digits "
            f"before the point and {MAX_FRACTION_DIGITS} after it"
        )
    return parsed


def parse_integer(value: object) -> int | None:
    """``value`` (a string of ASCII digits with an optional minus, or a JSON integer) as an int, else None.

    Unlike ``int()``, it refuses ``" 5 "``, ``"5_0"``, non-ASCII digits and more than 18 digits.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if -(10**18) < value < 10**18 else None
    return int(value) if isinstance(value, str) and _PLAIN_INTEGER.fullmatch(value) else None


def parse_balance(value: object) -> Decimal:
    """A new account's USDT balance: a plain decimal above 0, at most :data:`MAX_BALANCE`, with at most
    :data:`BALANCE_DECIMALS` decimals. Anything else (``1e999999``, ``NaN``, ``-1``) is InvalidRequest.
    """
    balance = plain_decimal(value)
    if balance is None or not 0 < balance <= MAX_BALANCE or balance != round(balance, BALANCE_DECIMALS):
        raise InvalidRequest(
            f"balance must be a plain decimal above 0 and at most {MAX_BALANCE:,} USDT, "
            f"with at most {BALANCE_DECIMALS} decimals"
        )
    return balance
