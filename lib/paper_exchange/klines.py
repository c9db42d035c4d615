"""Bybit klines built from the candles known at a replay time.

A symbol replays 5-minute candles, or hourly ones when its data has nothing finer
(:mod:`lib.paper_exchange.market`). Every interval at least as long as the symbol's candles is an
aggregate of them: open of the first, highest high, lowest low, close of the last, summed volume;
turnover is the sum of ``volume * close`` of each candle (the bundled data has no turnover). Buckets
start on UTC boundaries the way Bybit's do: minute intervals on multiples of their length since the
epoch, ``D`` at 00:00 UTC, ``W`` on Monday 00:00 UTC, ``M`` on the first of the month. A bucket with no
candle (a data gap) is absent, never invented.

An interval finer than the symbol's candles (5, 15 or 30 on hourly-only data) answers an empty list,
as Bybit answers a symbol that has no candles in the range asked for (retCode 0, ``"list": []``): the
data holds no such history. Intervals 1 and 3 are finer than any data the paper exchange replays and
are refused (10001), for every symbol.

The newest bucket may still be forming: it aggregates the completed candles of its span plus the forming
candle as :mod:`lib.paper_exchange.market` serves it (its open only), so it never reveals a price from
after the replay time.

The rows are assembled from the texts :class:`lib.paper_exchange.candle_text.CandleText` formatted at load:
highs and lows are reduced per bucket on the float arrays (a float's order is its decimal's order, since
each is the shortest text of its float), volume and turnover come from exact prefix sums. The answer is
the one the per-row ``Decimal`` aggregation gave, byte for byte (tests compare the two).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lib.core.candles import Candles
from lib.core.timeframes import TIMEFRAMES
from lib.paper_exchange.candle_text import CandleText, decimal_sums
from lib.paper_exchange.market import MarketData
from lib.paper_exchange.numbers import dec, fmt, params_error

DEFAULT_LIMIT = 200
MAX_LIMIT = 1000
_MINUTE_MS = 60_000
_DAY_MS = 86_400_000
_WEEK_MS = 7 * _DAY_MS
_MONDAY_OFFSET_MS = 4 * _DAY_MS  # 1970-01-01 was a Thursday; 1970-01-05 a Monday
_LONGEST_BUCKET_MS = {"D": _DAY_MS, "W": _WEEK_MS, "M": 31 * _DAY_MS}

IntArray = npt.NDArray[np.int64]
KlineRow = list[str]


@dataclass(frozen=True, slots=True)
class KlineQuery:
    """A validated ``/v5/market/kline`` request (times in ms, bounds inclusive on bucket start)."""

    symbol: str
    interval: str
    start_ms: int | None
    end_ms: int | None
    limit: int


def bucket_width_ms(interval: str) -> int:
    """The longest length of one bucket of ``interval`` (exact for minute intervals)."""
    if interval in _LONGEST_BUCKET_MS:
        return _LONGEST_BUCKET_MS[interval]
    return int(interval) * _MINUTE_MS


def check_interval(interval: str) -> str:
    """``interval`` if the paper exchange can serve it, else Bybit's 10001 parameter error."""
    if interval not in TIMEFRAMES:
        raise params_error(f"params error: invalid interval {interval!r}")
    if interval in ("1", "3"):
        raise params_error(
            f"params error: interval {interval} is not supported by the paper exchange, "
            "which replays 5-minute candles (use 5 or longer)"
        )
    return interval


def serves_interval(market: MarketData, symbol: str, interval: str) -> bool:
    """Whether ``symbol``'s candles are fine enough to build ``interval`` (D, W and M always are)."""
    if interval in _LONGEST_BUCKET_MS:
        return True
    return int(interval) * _MINUTE_MS >= market.candle_ms(symbol)


def bucket_starts(open_times: IntArray, interval: str) -> IntArray:
    """The start of the ``interval`` bucket holding each 5-minute open time."""
    if interval == "M":
        months = open_times.astype("datetime64[ms]").astype("datetime64[M]")
        return months.astype("datetime64[ms]").astype(np.int64)
    if interval == "W":
        return ((open_times - _MONDAY_OFFSET_MS) // _WEEK_MS) * _WEEK_MS + _MONDAY_OFFSET_MS
    width = _DAY_MS if interval == "D" else int(interval) * _MINUTE_MS
    return (open_times // width) * width


def build_klines(market: MarketData, query: KlineQuery, now_ms: int) -> list[KlineRow]:
    """Kline rows ``[start, open, high, low, close, volume, turnover]`` as strings, newest first.

    Without ``start`` (or with ``end``) the newest ``limit`` buckets starting at or before ``end``
    (default: now) are returned; with ``start`` alone, the oldest ``limit`` buckets from ``start``.
    """
    if not serves_interval(market, query.symbol, query.interval):
        return []
    times = market.series(query.symbol).open_time_ms
    width = bucket_width_ms(query.interval)
    end = now_ms if query.end_ms is None else min(query.end_ms, now_ms)
    forward = query.start_ms is not None and query.end_ms is None
    # Candle range to read: whole buckets only (bounds aligned on bucket starts), a little more than
    # `limit` buckets, and never a candle that opens after now.
    if query.start_ms is not None and forward:
        lower = query.start_ms
        upper = _align(query.start_ms + (query.limit + 1) * width, query.interval)
    else:
        lower = _align(end - (query.limit + 1) * width, query.interval)
        if query.start_ms is not None:
            lower = max(lower, query.start_ms)
        upper = end + width
    first = int(np.searchsorted(times, lower, side="left"))
    last = int(np.searchsorted(times, min(upper, now_ms + 1), side="left"))
    if first >= last:
        return []
    keys = bucket_starts(times[first:last], query.interval)
    boundaries = np.flatnonzero(np.diff(keys)) + 1
    starts = np.concatenate(([0], boundaries))
    stops = np.concatenate((boundaries, [last - first]))
    bucket_keys = keys[starts]
    keep = bucket_keys <= end
    if query.start_ms is not None:
        keep &= bucket_keys >= query.start_ms
    starts, stops, bucket_keys = starts[keep], stops[keep], bucket_keys[keep]
    chosen = slice(None, query.limit) if forward else slice(-query.limit, None)
    rows = _rows(
        market.text(query.symbol, last),
        first + starts[chosen],
        first + stops[chosen],
        bucket_keys[chosen],
        market.forming_index(query.symbol, now_ms),
    )
    rows.reverse()
    return rows


def _align(t_ms: int, interval: str) -> int:
    return int(bucket_starts(np.array([t_ms], dtype=np.int64), interval)[0])


def _rows(
    text: CandleText, los: IntArray, his: IntArray, keys: IntArray, forming: int | None
) -> list[KlineRow]:
    """Rows of the adjacent buckets ``[los[k], his[k])`` starting at ``keys[k]``, oldest first."""
    if los.size == 0:
        return []
    if not text.ordered:
        return [
            decimal_row(text.candles, lo, hi, forming, key)
            for lo, hi, key in zip(los.tolist(), his.tolist(), keys.tolist(), strict=True)
        ]
    candles = text.candles
    opens = text.open[los].tolist()
    closes = text.close[his - 1].tolist()
    if bool(np.all(his - los == 1)):
        highs = text.high[los].tolist()
        lows = text.low[los].tolist()
    else:
        # Buckets are adjacent (his[k] == los[k + 1]), so one reduceat covers them all.
        offsets = los - los[0]
        span = slice(int(los[0]), int(his[-1]))
        highs = text.texts_of(np.maximum.reduceat(candles.high[span], offsets))
        lows = text.texts_of(np.minimum.reduceat(candles.low[span], offsets))
    volumes, turnovers = text.sum_texts(los, his)
    # map/zip keep the per-row work in C: a comprehension unpacking each row cost as much as the rest.
    columns = (map(str, keys.tolist()), opens, highs, lows, closes, volumes, turnovers)
    rows = list(map(list, zip(*columns, strict=True)))
    if forming is not None:
        k = int(np.searchsorted(his, forming, side="right"))
        if k < los.size and los[k] <= forming:
            rows[k] = _forming_row(text, int(los[k]), forming, int(keys[k]))
    return rows


def _forming_row(text: CandleText, lo: int, forming: int, key: int) -> KlineRow:
    """The bucket holding the forming candle: its completed candles plus the forming one's open only
    (see lib.paper_exchange.market); candles after it in the bucket, if the data had any, are ignored."""
    candles = text.candles
    forming_open = float(candles.open[forming])
    high = max([*candles.high[lo:forming].tolist(), forming_open])
    low = min([*candles.low[lo:forming].tolist(), forming_open])
    high_text, low_text = text.texts_of(np.array([high, low]))
    volumes, turnovers = text.sum_texts(np.array([lo]), np.array([forming]))
    return [str(key), text.open[lo], high_text, low_text, text.open[forming], volumes[0], turnovers[0]]


def decimal_row(candles: Candles, lo: int, hi: int, forming: int | None, key: int) -> KlineRow:
    """One bucket aggregated in ``Decimal``, row by row: the reference the fast path reproduces, and the
    path for data whose prices include a NaN (where only Decimal's comparisons give the old answer)."""
    complete_hi = hi if forming is None or not lo <= forming < hi else forming
    open_ = dec(candles.open[lo])
    highs = [dec(v) for v in candles.high[lo:complete_hi]]
    lows = [dec(v) for v in candles.low[lo:complete_hi]]
    if complete_hi < hi:
        # The forming candle contributes its open only (see lib.paper_exchange.market).
        forming_open = dec(candles.open[complete_hi])
        highs.append(forming_open)
        lows.append(forming_open)
        close = forming_open
    else:
        close = dec(candles.close[hi - 1])
    volume, turnover = decimal_sums(candles, lo, complete_hi)
    return [str(key), fmt(open_), fmt(max(highs)), fmt(min(lows)), fmt(close), volume, turnover]
