"""Typed results of Bybit V5 public market data, parsed from the exchange's raw JSON.

Bybit sends every number as a string. Trading filters (tick size, qty step, limits) become
:class:`~decimal.Decimal` because orders are rounded to them and binary floats would put a price one
tick off; prices and volumes used for analysis become ``float``; candles become numpy arrays.

Every parser raises :class:`lib.errors.ExchangeError` (not retryable) when a successful response has a
shape this module does not understand, so a change on Bybit's side is reported, never guessed around.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import numpy.typing as npt

from lib.core.candles import Candles
from lib.errors import ExchangeError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


_KLINE_FIELDS = 7  # startTime, open, high, low, close, volume, turnover


def _malformed(what: str) -> ExchangeError:
    return ExchangeError(f"Bybit sent a response this client does not understand: {what}")


def _field(item: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in item:
        raise _malformed(f"{where} has no {key!r}")
    return item[key]


def _decimal(value: Any, where: str) -> Decimal:
    # Bybit writes absent numeric filters as "" (for example minNotionalValue on inverse contracts);
    # the caller decides whether absence means zero, so only real text is parsed here.
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise _malformed(f"{where} is not a number: {value!r}") from None


def _optional_decimal(item: Mapping[str, Any], key: str, where: str) -> Decimal | None:
    value = item.get(key)
    if value is None or value == "":
        return None
    return _decimal(value, f"{where}.{key}")


def _float(value: Any, where: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise _malformed(f"{where} is not a number: {value!r}") from None


def _optional_float(item: Mapping[str, Any], key: str, where: str) -> float | None:
    value = item.get(key)
    if value is None or value == "":
        return None
    return _float(value, f"{where}.{key}")


def _optional_int(item: Mapping[str, Any], key: str, where: str) -> int | None:
    value = item.get(key)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _malformed(f"{where}.{key} is not an integer: {value!r}") from None


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _malformed(f"{where} is not an object")
    return value


@dataclass(frozen=True, slots=True)
class ServerTime:
    """Bybit's clock at the moment it answered ``/v5/market/time``."""

    epoch_ms: int

    @property
    def epoch_s(self) -> float:
        """The same instant in (fractional) seconds since the epoch."""
        return self.epoch_ms / 1000.0

    @classmethod
    def from_bybit(cls, result: Mapping[str, Any]) -> ServerTime:
        """Parse the ``result`` object of ``/v5/market/time`` (``timeSecond``, ``timeNano``)."""
        where = "time result"
        nano = result.get("timeNano")
        if nano not in (None, ""):
            try:
                return cls(epoch_ms=int(nano) // 1_000_000)
            except (TypeError, ValueError):
                raise _malformed(f"{where}.timeNano is not an integer: {nano!r}") from None
        seconds = _field(result, "timeSecond", where)
        try:
            return cls(epoch_ms=int(seconds) * 1000)
        except (TypeError, ValueError):
            raise _malformed(f"{where}.timeSecond is not an integer: {seconds!r}") from None


@dataclass(frozen=True, slots=True)
class Instrument:
    """One tradable symbol and the filters an order for it must satisfy.

    ``qty_step`` is ``lotSizeFilter.qtyStep`` for contracts and ``basePrecision`` for spot (spot has no
    qtyStep). ``min_notional`` is ``minNotionalValue`` for linear contracts and ``minOrderAmt`` for
    spot, and zero where Bybit publishes none (inverse, option).
    """

    symbol: str
    category: str
    status: str
    base: str
    quote: str
    settle: str
    tick_size: Decimal
    min_price: Decimal | None
    max_price: Decimal | None
    qty_step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    max_market_qty: Decimal | None
    min_notional: Decimal
    max_leverage: Decimal | None

    @property
    def is_trading(self) -> bool:
        """Whether new orders are accepted right now (status ``Trading``)."""
        return self.status == "Trading"

    @classmethod
    def from_bybit(cls, category: str, item: Mapping[str, Any]) -> Instrument:
        """Parse one element of ``result.list`` of ``/v5/market/instruments-info``."""
        symbol = str(_field(item, "symbol", "instrument"))
        where = f"instrument {symbol}"
        price = _mapping(_field(item, "priceFilter", where), f"{where}.priceFilter")
        lot = _mapping(_field(item, "lotSizeFilter", where), f"{where}.lotSizeFilter")
        leverage = _mapping(item.get("leverageFilter") or {}, f"{where}.leverageFilter")

        step_key = "basePrecision" if category == "spot" else "qtyStep"
        notional_key = "minOrderAmt" if category == "spot" else "minNotionalValue"
        return cls(
            symbol=symbol,
            category=category,
            status=str(_field(item, "status", where)),
            base=str(_field(item, "baseCoin", where)),
            quote=str(_field(item, "quoteCoin", where)),
            settle=str(item.get("settleCoin") or item.get("quoteCoin")),
            tick_size=_decimal(_field(price, "tickSize", f"{where}.priceFilter"), f"{where}.tickSize"),
            min_price=_optional_decimal(price, "minPrice", where),
            max_price=_optional_decimal(price, "maxPrice", where),
            qty_step=_decimal(_field(lot, step_key, f"{where}.lotSizeFilter"), f"{where}.{step_key}"),
            min_qty=_decimal(_field(lot, "minOrderQty", f"{where}.lotSizeFilter"), f"{where}.minOrderQty"),
            max_qty=_decimal(_field(lot, "maxOrderQty", f"{where}.lotSizeFilter"), f"{where}.maxOrderQty"),
            max_market_qty=_optional_decimal(lot, "maxMktOrderQty", where),
            min_notional=_optional_decimal(lot, notional_key, where) or Decimal(0),
            max_leverage=_optional_decimal(leverage, "maxLeverage", where),
        )


@dataclass(frozen=True, slots=True)
class Ticker:
    """A 24-hour snapshot of one symbol. Fields Bybit leaves out for a category are ``None``."""

    symbol: str
    last_price: float
    bid1_price: float | None
    ask1_price: float | None
    prev_price_24h: float | None
    price_24h_pcnt: float | None
    high_price_24h: float | None
    low_price_24h: float | None
    volume_24h: float
    turnover_24h: float
    mark_price: float | None
    index_price: float | None
    open_interest: float | None
    open_interest_value: float | None
    funding_rate: float | None
    next_funding_time_ms: int | None

    @classmethod
    def from_bybit(cls, item: Mapping[str, Any]) -> Ticker:
        """Parse one element of ``result.list`` of ``/v5/market/tickers``."""
        symbol = str(_field(item, "symbol", "ticker"))
        where = f"ticker {symbol}"
        return cls(
            symbol=symbol,
            last_price=_float(_field(item, "lastPrice", where), f"{where}.lastPrice"),
            bid1_price=_optional_float(item, "bid1Price", where),
            ask1_price=_optional_float(item, "ask1Price", where),
            prev_price_24h=_optional_float(item, "prevPrice24h", where),
            price_24h_pcnt=_optional_float(item, "price24hPcnt", where),
            high_price_24h=_optional_float(item, "highPrice24h", where),
            low_price_24h=_optional_float(item, "lowPrice24h", where),
            volume_24h=_optional_float(item, "volume24h", where) or 0.0,
            turnover_24h=_optional_float(item, "turnover24h", where) or 0.0,
            mark_price=_optional_float(item, "markPrice", where),
            index_price=_optional_float(item, "indexPrice", where),
            open_interest=_optional_float(item, "openInterest", where),
            open_interest_value=_optional_float(item, "openInterestValue", where),
            funding_rate=_optional_float(item, "fundingRate", where),
            next_funding_time_ms=_optional_int(item, "nextFundingTime", where),
        )


@dataclass(frozen=True, slots=True)
class Klines(Candles):
    """One symbol's candles from ``/v5/market/kline``, oldest first: a :class:`Candles` (what the
    indicators and the panel read) plus where they came from and each candle's turnover.

    The last candle may still be open: Bybit includes the candle in progress, whose close is the
    latest trade. Callers that score closed bars only must drop it themselves.
    """

    category: str
    interval: str
    turnover: FloatArray

    @classmethod
    def from_bybit(cls, category: str, symbol: str, interval: str, rows: Sequence[Any]) -> Klines:
        """Parse ``result.list`` of ``/v5/market/kline``: rows of 7 strings, newest first."""
        where = f"kline list of {symbol}"
        parsed = _kline_columns(rows)
        if parsed is None:
            parsed = _kline_columns_checked(rows, where)
        times, values = parsed
        if times.size > 1 and not bool(np.all(np.diff(times) > 0)):
            raise _malformed(f"{where} start times are not strictly decreasing")
        return cls(
            symbol=symbol,
            category=category,
            interval=interval,
            open_time_ms=times,
            open=values[0],
            high=values[1],
            low=values[2],
            close=values[3],
            volume=values[4],
            turnover=values[5],
        )


def _kline_columns(rows: Sequence[Any]) -> tuple[IntArray, FloatArray] | None:
    """Start times and the six value columns (each C-contiguous), oldest first, for the usual answer:
    lists of exactly 7 strings. ``None`` for anything else, which :func:`_kline_columns_checked` handles.

    numpy converts each string with Python's own ``int``/``float``, exactly as the checked path's
    string-array casts do, so the numbers are the same; this path only skips the detour through a
    fixed-width string array (half the parsing time).
    """
    # Bybit lists newest first; everything downstream (indicators, replay) reads oldest first.
    ordered = rows[::-1]
    # Checked with C-level map()s: a Python-level test per row costs as much as parsing it.
    if set(map(type, ordered)) - {list}:
        return None
    if set(map(len, ordered)) - {_KLINE_FIELDS}:
        return None
    columns = list(zip(*ordered, strict=True)) if ordered else [()] * _KLINE_FIELDS
    try:
        for column in columns:
            "".join(
                column
            )  # TypeError unless every field is a string (numbers, None, bools go the checked way)
        times = np.array(columns[0], dtype=np.int64)
        values = np.array(columns[1:], dtype=np.float64).reshape(_KLINE_FIELDS - 1, -1)
    except (TypeError, ValueError, OverflowError):
        return None  # the checked path raises the same error it always did
    return times, values


def _kline_columns_checked(rows: Sequence[Any], where: str) -> tuple[IntArray, FloatArray]:
    """:func:`_kline_columns` for any rows: sequences of at least 7 fields, each turned into text first."""
    for index, row in enumerate(rows):
        if not isinstance(row, Sequence) or isinstance(row, str) or len(row) < _KLINE_FIELDS:
            raise _malformed(f"{where}[{index}] is not a row of {_KLINE_FIELDS} fields")
    try:
        table = np.array([row[:_KLINE_FIELDS] for row in rows], dtype=np.str_).reshape(-1, _KLINE_FIELDS)
        table = table[::-1]
        times = table[:, 0].astype(np.int64)
        values = np.ascontiguousarray(table[:, 1:].astype(np.float64).T)
    except ValueError:
        raise _malformed(f"{where} holds a value that is not a number") from None
    return times, values
