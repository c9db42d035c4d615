"""Paging back through ``/v5/market/kline``: one symbol's candles in a range, checked for holes.

Bybit V5 answers ``/v5/market/kline`` with at most 1,000 candles, newest first, whose open times lie in
``[start, end]`` (both inclusive); with both bounds given it answers the newest ``limit`` of them. So:

- the first page ends at the range's last candle; each next one ends at the candle before the oldest
  one received; it stops at a page that reaches the range's start, or one shorter than the limit (the
  exchange has nothing older);
- a candle outside the range that arrives anyway is dropped (the caller ends the range at the newest
  closed candle, so the candle in progress is never kept);
- a hole (candles missing between two the exchange has) raises ExchangeError naming the first missing
  candle, within a page or where two pages meet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from lib.core.candles import Candles
from lib.core.timeframes import previous_open_ms
from lib.errors import ExchangeError
from lib.exchange import bybit
from lib.ops.data.candle_range import Break, first_break, next_open, utc_text

#: USDT (and USDC) perpetuals: the markets the system scans and trades.
CATEGORY = "linear"
PAGE_LIMIT = bybit.KLINE_MAX_LIMIT


class KlineSource(Protocol):
    """What the paging needs of a market client (:meth:`MarketDataClient.klines`): candles oldest first."""

    async def klines(
        self,
        category: str,
        symbol: str,
        interval: str | int,
        limit: int = 200,
        start: int | None = None,
        end: int | None = None,
    ) -> Candles:
        """The newest ``limit`` candles opening in ``[start, end]``, oldest first."""
        ...


class DownloadProgress(Protocol):
    """Hears how a symbol's download goes, for a progress bar (one symbol at a time)."""

    def begin(self, symbol: str, total: int) -> None:
        """``symbol`` starts; ``total`` candles are expected."""

    def advance(self, candles: int) -> None:
        """``candles`` more arrived."""

    def end(self) -> None:
        """The symbol is done (written, up to date or failed)."""


@dataclass(slots=True)
class Fetched:
    """One symbol's new candles (oldest first) and what is worth telling about them."""

    candles: Candles | None
    notes: list[str] = field(default_factory=list)


async def fetch_range(
    market: KlineSource,
    symbol: str,
    interval: str,
    first_ms: int,
    last_ms: int,
    progress: DownloadProgress | None = None,
) -> Fetched:
    """The candles of ``symbol`` opening in ``[first_ms, last_ms]``, oldest first, paged back from
    ``last_ms`` (see the module docstring). Raises ExchangeError at the first hole."""
    pages: list[Candles] = []  # newest first
    end = last_ms
    newer_oldest: int | None = None  # the oldest open of the page before (newer than) this one
    while True:
        page = await market.klines(CATEGORY, symbol, interval, limit=PAGE_LIMIT, start=first_ms, end=end)
        received = len(page)
        kept = _within(page, first_ms, end)
        if len(kept) == 0:
            break
        _check_page(kept, interval, newer_oldest)
        pages.append(kept)
        if progress is not None:
            progress.advance(len(kept))
        oldest = int(kept.open_time_ms[0])
        if oldest <= first_ms or received < PAGE_LIMIT:
            break
        newer_oldest, end = oldest, previous_open_ms(interval, oldest)
    if not pages:
        return Fetched(None, [f"the exchange has no candle from {utc_text(first_ms)} on yet"])
    candles = _concatenate(symbol, pages[::-1])
    notes = []
    newest = int(candles.open_time_ms[-1])
    if newest < last_ms:
        notes.append(
            f"its last candle is {utc_text(newest)}: the exchange has none after it up to {utc_text(last_ms)}"
        )
    return Fetched(candles, notes)


def _within(page: Candles, first_ms: int, last_ms: int) -> Candles:
    """The page's candles that open in ``[first_ms, last_ms]`` (the exchange's answer, kept honest)."""
    keep = (page.open_time_ms >= first_ms) & (page.open_time_ms <= last_ms)
    if bool(np.all(keep)):
        return page
    return _select(page, keep)


def _check_page(page: Candles, interval: str, newer_oldest: int | None) -> None:
    values = (page.open, page.high, page.low, page.close, page.volume)
    if not all(bool(np.all(np.isfinite(v))) for v in values):
        raise ExchangeError("the exchange sent a candle with a value that is not a finite number")
    broken = first_break(interval, page.open_time_ms)
    if broken is None and newer_oldest is not None:
        newest = int(page.open_time_ms[-1])
        if next_open(interval, newest) != newer_oldest:
            broken = Break(interval, newest, newer_oldest)
    if broken is not None:
        what = "have a hole" if broken.is_hole else "are not one after another"
        raise ExchangeError(f"the exchange's candles {what}: {broken.describe()}; nothing written")


def _select(candles: Candles, keep: npt.NDArray[np.bool_]) -> Candles:
    return Candles(
        symbol=candles.symbol,
        open_time_ms=candles.open_time_ms[keep],
        open=candles.open[keep],
        high=candles.high[keep],
        low=candles.low[keep],
        close=candles.close[keep],
        volume=candles.volume[keep],
    )


def _concatenate(symbol: str, pages: Sequence[Candles]) -> Candles:
    """The pages (oldest first) as one series."""
    if len(pages) == 1:
        return pages[0]
    return Candles(
        symbol=symbol,
        open_time_ms=np.concatenate([p.open_time_ms for p in pages]),
        open=np.concatenate([p.open for p in pages]),
        high=np.concatenate([p.high for p in pages]),
        low=np.concatenate([p.low for p in pages]),
        close=np.concatenate([p.close for p in pages]),
        volume=np.concatenate([p.volume for p in pages]),
    )
