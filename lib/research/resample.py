"""Longer bars from the bundled 5-minute candles, as an exchange prints them.

``timeframe`` is a Bybit interval that is a whole number of 5-minute bars: ``5``, ``15``, ``30``,
``60``, ``120``, ``240``, ``360``, ``720`` or ``D``. Bars are UTC-aligned buckets (``open_time //
length``): open of the first candle, highest high, lowest low, close of the last, summed volume. A
bucket with missing 5-minute candles is built from those present (an exchange prints the bar too); the
first and last buckets are dropped when the data starts or ends inside them.
"""

from __future__ import annotations

import numpy as np

from lib.core.candles import Candles
from lib.core.timeframes import FIVE_MINUTES_MS, INTERVAL_MS
from lib.errors import InvalidRequest

TIMEFRAME_MINUTES: dict[str, int] = {
    tf: INTERVAL_MS[tf] // 60_000 for tf in ("5", "15", "30", "60", "120", "240", "360", "720", "D")
}


def timeframe_minutes(timeframe: str) -> int:
    """Minutes per bar of a supported ``timeframe``; anything else raises :class:`InvalidRequest`."""
    try:
        return TIMEFRAME_MINUTES[str(timeframe)]
    except KeyError:
        raise InvalidRequest(
            f"timeframe {timeframe!r} is not a multiple of the 5-minute data",
            details={"timeframe": str(timeframe), "supported": list(TIMEFRAME_MINUTES)},
        ) from None


def resample(candles: Candles, minutes: int) -> Candles:
    """5-minute candles aggregated into ``minutes``-long UTC-aligned bars (see the module docstring)."""
    if minutes % 5 != 0 or minutes <= 0:
        raise InvalidRequest(f"cannot build {minutes}-minute bars from 5-minute candles")
    if minutes == 5 or len(candles) == 0:
        return candles
    length = minutes * 60_000
    bucket = candles.open_time_ms // length
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], bucket.shape[0]]
    # Aggregate every bucket first: reduceat runs from each start to the next one given.
    high = np.maximum.reduceat(candles.high, starts)
    low = np.minimum.reduceat(candles.low, starts)
    volume = np.add.reduceat(candles.volume, starts)
    # Then drop the edge buckets the data only partly covers (started or ended inside them).
    keep = np.ones(starts.shape, dtype=np.bool_)
    if candles.open_time_ms[0] != bucket[0] * length:
        keep[0] = False
    if candles.open_time_ms[-1] + FIVE_MINUTES_MS != (bucket[-1] + 1) * length:
        keep[-1] = False
    return Candles(
        symbol=candles.symbol,
        open_time_ms=(bucket[starts[keep]] * length).astype(np.int64),
        open=candles.open[starts[keep]],
        high=high[keep],
        low=low[keep],
        close=candles.close[ends[keep] - 1],
        volume=volume[keep],
    )
