"""Klines of many symbols -> one :class:`~lib.core.candles.CandlePanel` of closed bars. Pure.

Rules, in order, for each symbol:

1. **Closed bars only.** A bar is closed when its close (the next bar's open) is at or before the market
   time ``now_ms``. Bybit (and the paper exchange) always serve the candle in progress as the newest
   kline; scoring it would score prices that are still moving, so it is dropped here, by time rather
   than by position, which also holds when an exchange sends no forming bar.
2. **Clean numbers.** Any NaN or infinity, a price at or below zero, or a negative volume makes the
   symbol's data unusable (``bad_data``): a hole patched here would be a price invented here.
3. **Current.** The panel's last bar is the newest closed bar any symbol has; a symbol without a
   candle for that bar is ``stale`` (halted, delisted, or its data lags) and is left out, because its
   signal would be for an older bar than everyone else's.
4. **No holes.** The time axis is the timeframe's regular grid (UTC boundaries, as Bybit aligns them).
   The indicators cannot skip holes inside a series, and the bundled data has real gaps, so a symbol
   keeps only its newest unbroken run of bars up to the last bar; everything before its latest gap is
   left as NaN padding (the panel's documented "less history" shape). Nothing is interpolated.
5. **Enough history.** Fewer than ``min_bars`` bars left is ``too_little_history``.

Symbols failing a rule are reported as :class:`PanelProblem` s, never raised: one bad symbol must not
stop a scan of hundreds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from lib.core.candles import CandlePanel, Candles
from lib.core.timeframes import (
    INTERVAL_MS,
    MONDAY_OFFSET_MS,
    candle_close_ms,
    candle_open_ms,
    check_timeframe,
    previous_open_ms,
)
from lib.errors import InvalidRequest

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class PanelProblem:
    """Why one symbol is not in the panel.

    ``code``: ``no_data``, ``bad_data``, ``stale``, ``misaligned`` or ``too_little_history``.
    """

    symbol: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class PanelBuild:
    """The panel (``None`` when no symbol qualified), what was left out and why, and bars dropped."""

    panel: CandlePanel | None
    problems: tuple[PanelProblem, ...]
    #: Bars dropped because they had not closed at ``now_ms`` (normally one per symbol).
    in_progress_dropped: int

    @property
    def last_bar_ms(self) -> int | None:
        """The open time of the panel's last (newest closed) bar."""
        if self.panel is None or self.panel.open_time_ms.size == 0:
            return None
        return int(self.panel.open_time_ms[-1])


@dataclass(frozen=True, slots=True)
class _Closed:
    times: IntArray
    values: FloatArray  # 5 x n: open, high, low, close, volume


def _closed_bars(series: Candles, timeframe: str, now_ms: int) -> tuple[_Closed, int]:
    times = np.asarray(series.open_time_ms, dtype=np.int64)
    values = np.vstack(
        [np.asarray(getattr(series, f), dtype=np.float64) for f in ("open", "high", "low", "close", "volume")]
    )
    if timeframe == "M":
        closes = np.array([candle_close_ms("M", int(t)) for t in times], dtype=np.int64)
    else:
        closes = times + INTERVAL_MS[timeframe]
    closed = closes <= now_ms
    return _Closed(times[closed], values[:, closed]), int(times.size - np.count_nonzero(closed))


def _bad_data(values: FloatArray) -> str | None:
    if not np.all(np.isfinite(values)):
        return "its candles hold NaN or infinite values"
    if np.any(values[:4] <= 0):
        return "its candles hold prices at or below zero"
    if np.any(values[4] < 0):
        return "its candles hold a negative volume"
    return None


def _aligned(times: IntArray, timeframe: str) -> bool:
    if timeframe == "M":
        return all(candle_open_ms("M", int(t)) == int(t) for t in times)
    offset = MONDAY_OFFSET_MS if timeframe == "W" else 0
    return bool(np.all((times - offset) % INTERVAL_MS[timeframe] == 0))


def _grid(timeframe: str, first_ms: int, last_ms: int, max_bars: int) -> IntArray:
    if timeframe == "M":
        times = [last_ms]
        while len(times) < max_bars and times[-1] > first_ms:
            times.append(previous_open_ms("M", times[-1]))
        return np.array(times[::-1], dtype=np.int64)
    width = INTERVAL_MS[timeframe]
    count = min(max_bars, (last_ms - first_ms) // width + 1)
    return last_ms - width * np.arange(count - 1, -1, -1, dtype=np.int64)


def _iso(t_ms: int) -> str:
    return datetime.fromtimestamp(t_ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def build_panel(
    series: Mapping[str, Candles],
    timeframe: str,
    now_ms: int,
    *,
    min_bars: int,
    max_bars: int = 1000,
) -> PanelBuild:
    """Align ``series`` (symbol -> candles, oldest first) into one panel of closed bars.

    The panel keeps the input's symbol order and at most ``max_bars`` bars (the newest). See the module
    docstring for the rules; every symbol left out appears once in ``problems``.
    """
    check_timeframe(timeframe)
    if min_bars < 1 or max_bars < min_bars:
        raise InvalidRequest("need 1 <= min_bars <= max_bars", details={"min": min_bars, "max": max_bars})
    problems: list[PanelProblem] = []
    closed: dict[str, _Closed] = {}
    dropped = 0
    for symbol, candles in series.items():
        bars, in_progress = _closed_bars(candles, timeframe, now_ms)
        dropped += in_progress
        if bars.times.size == 0:
            problems.append(PanelProblem(symbol, "no_data", "no closed candle"))
            continue
        bad = _bad_data(bars.values)
        if bad is not None:
            problems.append(PanelProblem(symbol, "bad_data", bad))
            continue
        if not _aligned(bars.times, timeframe):
            problems.append(
                PanelProblem(symbol, "misaligned", f"candle open times are not on the {timeframe} grid")
            )
            continue
        closed[symbol] = bars

    if not closed:
        return PanelBuild(None, tuple(problems), dropped)
    last = max(int(bars.times[-1]) for bars in closed.values())
    first = min(int(bars.times[0]) for bars in closed.values())
    grid = _grid(timeframe, first, last, max_bars)

    rows: dict[str, tuple[int, FloatArray]] = {}  # symbol -> (first grid column, values on the grid)
    for symbol, bars in closed.items():
        if int(bars.times[-1]) != last:
            problems.append(
                PanelProblem(
                    symbol,
                    "stale",
                    f"no candle for the latest closed bar {_iso(last)} (newest: {_iso(int(bars.times[-1]))})",
                )
            )
            continue
        # Bars older than the grid (a longer history than max_bars) are simply not needed.
        keep = bars.times >= grid[0]
        times, values = bars.times[keep], bars.values[:, keep]
        columns = np.searchsorted(grid, times)  # exact: aligned times on the grid's range
        # The newest unbroken run: everything up to and including the latest gap is dropped.
        breaks = np.flatnonzero(np.diff(columns) != 1)
        start = int(breaks[-1]) + 1 if breaks.size else 0
        run = columns.size - start
        if run < min_bars:
            why = f"after a gap before {_iso(int(times[start]))}" if breaks.size else "in total"
            problems.append(
                PanelProblem(
                    symbol,
                    "too_little_history",
                    f"{run} closed bars {why}, {min_bars} needed",
                )
            )
            continue
        rows[symbol] = (int(columns[start]), values[:, start:])

    if not rows:
        return PanelBuild(None, tuple(problems), dropped)
    # Trim columns no kept symbol has data in (a gap may have cut every symbol's history short).
    offset = min(column for column, _ in rows.values())
    width = grid.size - offset
    symbols = tuple(rows)
    arrays = np.full((5, len(symbols), width), np.nan, dtype=np.float64)
    for i, symbol in enumerate(symbols):
        column, values = rows[symbol]
        arrays[:, i, column - offset :] = values
    panel = CandlePanel(
        symbols=symbols,
        open_time_ms=np.ascontiguousarray(grid[offset:]),
        open=np.ascontiguousarray(arrays[0]),
        high=np.ascontiguousarray(arrays[1]),
        low=np.ascontiguousarray(arrays[2]),
        close=np.ascontiguousarray(arrays[3]),
        volume=np.ascontiguousarray(arrays[4]),
    )
    return PanelBuild(panel, tuple(problems), dropped)
