"""The market side of a scan: the market time, the universe and every symbol's klines.

The universe is the request's ``symbols`` (deduplicated, in their order), or ``/v5/market/tickers`` (+
instruments-info) filtered by ``scanner.universe``. Klines come through
:meth:`MarketDataClient.klines_many`, every request behind the process's shared rate limiter; a symbol
whose klines fail is reported as a :class:`SymbolError` and does not stop the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from lib.exchange.market import MarketDataClient
from lib.exchange.market_clock import MarketClock
from lib.exchange.models import Klines
from lib.log import log_event
from lib.services.scanning.models import ScanProgress, ScanRequest, SymbolError
from lib.services.scanning.settings import ScanSettings
from lib.services.scanning.universe import select_universe

logger = logging.getLogger("aitradex.scanner")

#: Kline requests in flight at once; the rate limiter, not this, sets the request rate. Measured
#: (bench/scan.py, 500 symbols, 2 cores): 8 saturates the paper exchange and a 60 req/s budget, and
#: more is slower, since httpcore's pool does work per waiting request on every assignment.
DEFAULT_CONCURRENCY = 8


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The market as one scan sees it: "now" in market time, the symbols asked for and what arrived."""

    now_ms: int
    requested: tuple[str, ...]
    klines: dict[str, Klines]
    errors: list[SymbolError]


async def universe(market: MarketDataClient, settings: ScanSettings, request: ScanRequest) -> tuple[str, ...]:
    """The symbols to scan: the request's own, or the filtered tickers of ``scanner.universe``."""
    if request.symbols is not None:
        symbols = tuple(dict.fromkeys(request.symbols))
        return symbols[: request.max_symbols] if request.max_symbols else symbols
    category = settings.universe.category
    tickers, instruments = await asyncio.gather(market.tickers(category), market.instruments(category))
    selection = select_universe(tickers, instruments, settings.universe, max_symbols=request.max_symbols)
    log_event(
        logger,
        "scan_universe",
        category=category,
        considered=selection.considered,
        selected=len(selection.symbols),
        excluded=dict(selection.excluded),
    )
    return selection.symbols


async def fetch_klines(
    market: MarketDataClient,
    category: str,
    symbols: Sequence[str],
    timeframe: str,
    limit: int,
    concurrency: int,
    progress: ScanProgress,
) -> tuple[dict[str, Klines], list[SymbolError]]:
    """Every symbol's klines, at most ``concurrency`` requests in flight; errors in the symbols' order."""
    batch = await market.klines_many(
        category, symbols, timeframe, limit=limit, concurrency=concurrency, on_result=progress.fetched
    )
    errors = [SymbolError(s, e.code, e.message) for s, e in batch.errors.items()]
    return batch.klines, errors


async def take_snapshot(
    market: MarketDataClient,
    clock: MarketClock,
    settings: ScanSettings,
    request: ScanRequest,
    concurrency: int,
    progress: ScanProgress,
) -> Snapshot:
    """Read the market time, then the universe, then every symbol's klines."""
    # The market time is read BEFORE the klines: a candle that closes while they are being fetched then
    # counts as still open for every symbol (it is dropped everywhere, and the run scores the bar before
    # it), instead of being scored from klines fetched before it had finished for some symbols.
    now_ms = await clock.now_ms()
    symbols = await universe(market, settings, request)
    progress.universe(len(symbols))
    klines, errors = await fetch_klines(
        market,
        settings.universe.category,
        symbols,
        request.timeframe,
        settings.kline_limit,
        concurrency,
        progress,
    )
    return Snapshot(now_ms, symbols, klines, errors)
