"""The replayed candles as the exchange sees them at one replay time: what is known, and nothing more.

At replay time ``t`` a symbol's 5-minute candle is

- *completed* when ``open_time + 5 min <= t``: served in full;
- *forming* when ``open_time <= t < open_time + 5 min``: served the way a candle looks the instant it
  opens, open = high = low = close = its open price and zero volume. Its open is the first trade at or
  after ``t``'s candle start, so nothing later than ``t`` leaks out. This mirrors Bybit, whose newest kline
  is the candle in progress: a client that drops the newest kline as unconfirmed gets exactly the
  completed candles.
- *future* otherwise: never served.

The *replay price* (last trade) at ``t`` is the forming candle's open, or, inside a data gap or after the
data ends, the last completed close.

Every answer is text, formatted once at load (:mod:`lib.paper_exchange.candle_text`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from lib.core.candles import Candles
from lib.core.timeframes import FIVE_MINUTES_MS
from lib.paper_exchange.candle_text import CandleText
from lib.paper_exchange.numbers import dec
from lib.research.bundled_data import load_all

ObjectArray = npt.NDArray[np.object_]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Candle:
    """One 5-minute candle in exact decimals."""

    open_time_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal

    @property
    def close_time_ms(self) -> int:
        """When the candle is complete (its open time plus five minutes)."""
        return self.open_time_ms + FIVE_MINUTES_MS


class MarketData:
    """Read-only access to every symbol's candles, always relative to a replay time."""

    def __init__(self, candles: Mapping[str, Candles]) -> None:
        self._candles = {symbol: series for symbol, series in candles.items() if len(series) > 0}
        if not self._candles:
            raise ValueError("no candles to replay")
        # Formatted once here, at load, for every later answer (see lib.paper_exchange.candle_text).
        self._text = {symbol: CandleText.build(series) for symbol, series in self._candles.items()}

    @property
    def symbols(self) -> list[str]:
        """Replayed symbols, sorted."""
        return sorted(self._candles)

    def series(self, symbol: str) -> Candles:
        """The raw arrays of ``symbol`` (every candle, future included: callers must bound by time)."""
        return self._candles[symbol]

    def text(self, symbol: str) -> CandleText:
        """``symbol``'s candles as text (every candle, future included: callers must bound by time)."""
        return self._text[symbol]

    def has(self, symbol: str) -> bool:
        """Whether ``symbol`` is replayed."""
        return symbol in self._candles

    @property
    def first_open_ms(self) -> int:
        """The earliest candle open time over all symbols."""
        return min(int(c.open_time_ms[0]) for c in self._candles.values())

    @property
    def last_close_ms(self) -> int:
        """When the last candle of any symbol completes: the replay cannot go further."""
        return max(int(c.open_time_ms[-1]) for c in self._candles.values()) + FIVE_MINUTES_MS

    def completed_count(self, symbol: str, t_ms: int) -> int:
        """How many of ``symbol``'s candles are complete at ``t_ms`` (they are the first ones)."""
        times = self._candles[symbol].open_time_ms
        return int(np.searchsorted(times, t_ms - FIVE_MINUTES_MS, side="right"))

    def forming_index(self, symbol: str, t_ms: int) -> int | None:
        """Index of the candle in progress at ``t_ms``, if there is one (not in a gap, not past the end)."""
        index = self.completed_count(symbol, t_ms)
        times = self._candles[symbol].open_time_ms
        if index < times.shape[0] and int(times[index]) <= t_ms:
            return index
        return None

    def candle(self, symbol: str, index: int) -> Candle:
        """Candle ``index`` of ``symbol`` in full (callers make sure it is complete)."""
        c = self._candles[symbol]
        return Candle(
            open_time_ms=int(c.open_time_ms[index]),
            open=dec(c.open[index]),
            high=dec(c.high[index]),
            low=dec(c.low[index]),
            close=dec(c.close[index]),
            volume=dec(c.volume[index]),
        )

    def price(self, symbol: str, t_ms: int) -> Decimal | None:
        """The replay price of ``symbol`` at ``t_ms``; ``None`` before its first candle."""
        forming = self.forming_index(symbol, t_ms)
        c = self._candles[symbol]
        if forming is not None:
            return dec(c.open[forming])
        completed = self.completed_count(symbol, t_ms)
        return dec(c.close[completed - 1]) if completed else None

    def completed_between(self, symbol: str, after_ms: int, until_ms: int) -> range:
        """Indices of candles that complete in ``(after_ms, until_ms]``."""
        return range(self.completed_count(symbol, after_ms), self.completed_count(symbol, until_ms))

    def median_close(self, symbol: str) -> Decimal:
        """The median close over the whole file: the reference price for the symbol's filters."""
        return dec(float(np.median(self._candles[symbol].close)))


@lru_cache(maxsize=4)
def load_market(data_dir: Path) -> MarketData:
    """The candles of ``data_dir``, loaded once per process (servers restarted in tests share them)."""
    return MarketData(load_all(data_dir))
