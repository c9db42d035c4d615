"""The replayed candles as the exchange sees them at one replay time: what is known, and nothing more.

Each symbol replays the finest candles its data has: five-minute candles when there are any, else
hourly ones (a folder with both builds everything from the five-minute file). At replay time ``t`` a
symbol's candle of width ``w`` is

- *completed* when ``open_time + w <= t``: served in full;
- *forming* when ``open_time <= t < open_time + w``: served the way a candle looks the instant it
  opens, open = high = low = close = its open price and zero volume. Its open is the first trade at or
  after ``t``'s candle start, so nothing later than ``t`` leaks out. This mirrors Bybit, whose newest kline
  is the candle in progress: a client that drops the newest kline as unconfirmed gets exactly the
  completed candles.
- *future* otherwise: never served.

The *replay price* (last trade) at ``t`` is the forming candle's open, or, inside a data gap or after the
data ends, the last completed close. An hourly-only symbol's price therefore moves once an hour.

Every answer is text, formatted from the candles once (:mod:`lib.paper_exchange.candle_text`), and only
as far as the replay has read: a symbol's texts grow in steps of :data:`TEXT_STEP` candles.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from threading import Lock

import numpy as np
import numpy.typing as npt

from lib.core.candles import Candles
from lib.core.timeframes import FIVE_MINUTES_MS, INTERVAL_MS
from lib.errors import ConfigError
from lib.paper_exchange.candle_text import CandleText, candles_between
from lib.paper_exchange.numbers import dec
from lib.research.bundled_data import candle_path, list_symbols, read_candles

ObjectArray = npt.NDArray[np.object_]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

#: Candles formatted at a time when a symbol's texts must reach further (about two weeks of 5-minute
#: candles: the first step covers the default warm-up and a scan window; later ones cost ~30 ms each).
TEXT_STEP = 4096


@dataclass(frozen=True, slots=True)
class Candle:
    """One candle in exact decimals."""

    open_time_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    duration_ms: int = FIVE_MINUTES_MS

    @property
    def close_time_ms(self) -> int:
        """When the candle is complete (its open time plus its duration)."""
        return self.open_time_ms + self.duration_ms


class MarketData:
    """Read-only access to every symbol's candles, always relative to a replay time.

    ``candle_ms`` gives each symbol's candle width (default: five minutes for every symbol);
    ``text_step`` how many candles' texts are formatted at a time (see :meth:`text`).
    """

    def __init__(
        self,
        candles: Mapping[str, Candles],
        candle_ms: Mapping[str, int] | None = None,
        *,
        text_step: int = TEXT_STEP,
    ) -> None:
        self._candles = {symbol: series for symbol, series in candles.items() if len(series) > 0}
        if not self._candles:
            raise ValueError("no candles to replay")
        widths = candle_ms or {}
        self._width = {symbol: int(widths.get(symbol, FIVE_MINUTES_MS)) for symbol in self._candles}
        # Formatted on first use, and only as far as a caller reads (see lib.paper_exchange.candle_text).
        # Several paper exchanges of one process share a MarketData: the lock keeps one builder per step.
        self._text: dict[str, CandleText] = {}
        self._text_lock = Lock()
        self._text_step = max(1, text_step)

    @property
    def symbols(self) -> list[str]:
        """Replayed symbols, sorted."""
        return sorted(self._candles)

    def series(self, symbol: str) -> Candles:
        """The raw arrays of ``symbol`` (every candle, future included: callers must bound by time)."""
        return self._candles[symbol]

    def candle_ms(self, symbol: str) -> int:
        """The width of ``symbol``'s candles (5 minutes, or an hour for hourly-only data)."""
        return self._width[symbol]

    def text(self, symbol: str, upto: int | None = None) -> CandleText:
        """``symbol``'s candles as text, covering at least its first ``upto`` candles (default: all).

        It may cover more, future ones included: callers must bound by time, as with :meth:`series`.
        """
        series = self._candles[symbol]
        need = len(series) if upto is None else max(1, min(upto, len(series)))
        current = self._text.get(symbol)
        if current is not None and len(current.candles) >= need:
            return current
        with self._text_lock:
            current = self._text.get(symbol)
            done = 0 if current is None else len(current.candles)
            if current is not None and done >= need:
                return current
            target = min(len(series), max(need, done + self._text_step))
            grown = (
                CandleText.build(candles_between(series, 0, target))
                if current is None
                else current.extended(series, target)
            )
            self._text[symbol] = grown
            return grown

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
        return max(int(c.open_time_ms[-1]) + self._width[s] for s, c in self._candles.items())

    def first_open_of(self, symbol: str) -> int:
        """When ``symbol``'s first candle opens (its listing, as far as the data knows)."""
        return int(self._candles[symbol].open_time_ms[0])

    def completed_count(self, symbol: str, t_ms: int) -> int:
        """How many of ``symbol``'s candles are complete at ``t_ms`` (they are the first ones)."""
        times = self._candles[symbol].open_time_ms
        return int(np.searchsorted(times, t_ms - self._width[symbol], side="right"))

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
            duration_ms=self._width[symbol],
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


def market_files(data_dir: Path, symbols: tuple[str, ...] | None = None) -> dict[str, tuple[Path, str]]:
    """``symbol -> (file, interval)`` of the candles each symbol replays: its 5-minute file if it has
    one, else its hourly file. ``symbols`` restricts (and orders) the choice; each must have a file."""
    five = set(list_symbols(data_dir, "5"))
    hourly = set(list_symbols(data_dir, "60"))
    wanted = sorted(five | hourly) if symbols is None else list(dict.fromkeys(symbols))
    missing = [s for s in wanted if s not in five and s not in hourly]
    if missing:
        raise ConfigError(f"no 5m or 1h candle file in {data_dir} for {', '.join(missing)}")
    files: dict[str, tuple[Path, str]] = {}
    for symbol in wanted:
        interval = "5" if symbol in five else "60"
        path = candle_path(symbol, data_dir, interval)
        if path is not None:
            files[symbol] = (path, interval)
    if not files:
        raise ConfigError(f"no <SYMBOL>-5m or <SYMBOL>-1h candle files in {data_dir}")
    return files


@lru_cache(maxsize=8)
def load_market(data_dir: Path, symbols: tuple[str, ...] | None = None) -> MarketData:
    """The candles of ``data_dir`` (every symbol, or ``symbols``), loaded once per process: servers
    restarted in tests share them."""
    files = market_files(data_dir, symbols)
    candles = {symbol: read_candles(path, symbol) for symbol, (path, _) in files.items()}
    widths = {symbol: INTERVAL_MS[interval] for symbol, (_, interval) in files.items()}
    return MarketData(candles, widths)
