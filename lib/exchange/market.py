"""Bybit V5 public market data over an injected ``httpx.AsyncClient``: instruments, tickers, candles.

Every request goes through :class:`lib.exchange.public_http.PublicHttp`, which holds the promises
about rate limiting, retries and errors (see its docstring; retCodes are read from the one table in
:mod:`lib.exchange.bybit`). This module adds the endpoints, their paging and their parsing, and
raises ``InvalidRequest`` for bad arguments before anything is sent.

No credentials pass through this module: these endpoints are public.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx

from lib.core.timeframes import TIMEFRAMES
from lib.errors import AitradexError, ExchangeError, InvalidRequest
from lib.exchange import bybit
from lib.exchange.models import Instrument, Klines, ServerTime, Ticker
from lib.exchange.ports import KlinesBatch
from lib.exchange.public_http import PublicHttp, RetryPolicy
from lib.exchange.rate_limit import Clock, RateLimiter, Sleep

# RetryPolicy is part of this client's signature; callers import it from here too.
__all__ = ["KlinesBatch", "MarketDataClient", "RetryPolicy"]

_SYMBOL_RE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,63}$")
_MAX_PAGES = 100


class MarketDataClient:
    """Bybit V5 public market data. All I/O goes through the injected ``http`` client.

    Share one :class:`RateLimiter` between every client of a process: the budget belongs to the IP.
    ``sleep``, ``clock``, ``wall_clock`` and ``rng`` are injectable so tests run without real waiting;
    ``clock`` must be the limiter's clock when both are given.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        *,
        limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        ban_cooldown_s: float = bybit.DEFAULT_BAN_COOLDOWN_S,
        max_pause_wait_s: float = 30.0,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._limiter = limiter if limiter is not None else RateLimiter(clock=clock, sleep=sleep)
        self._public = PublicHttp(
            http,
            base_url,
            limiter=self._limiter,
            retry=retry if retry is not None else RetryPolicy(),
            ban_cooldown_s=ban_cooldown_s,
            max_pause_wait_s=max_pause_wait_s,
            sleep=sleep,
            wall_clock=wall_clock,
            rng=rng if rng is not None else random.Random(),
        )

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        environment: str = "mainnet",
        *,
        paper_url: str | None = None,
        limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        timeout_s: float = 10.0,
        source_address: str | None = None,
    ) -> AsyncIterator[MarketDataClient]:
        """A client with its own ``httpx.AsyncClient``, closed when the ``async with`` block ends.

        ``source_address`` binds every connection to that local IP (the host's: Bybit counts per IP).
        """
        base_url = bybit.base_url_for(environment, paper_url=paper_url)
        async with httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            headers={"User-Agent": "aitradex/market-data"},
            transport=httpx.AsyncHTTPTransport(local_address=source_address),
        ) as http:
            yield cls(http, base_url, limiter=limiter, retry=retry)

    @property
    def base_url(self) -> str:
        """The REST base URL requests go to."""
        return self._public.base_url

    @property
    def limiter(self) -> RateLimiter:
        """The limiter every request of this client passes through."""
        return self._limiter

    # -- endpoints ---------------------------------------------------------------------------------

    async def server_time(self) -> ServerTime:
        """Bybit's clock (``/v5/market/time``)."""
        result = await self._public.get(bybit.SERVER_TIME, {})
        return ServerTime.from_bybit(result)

    async def instruments(self, category: str, symbol: str | None = None) -> list[Instrument]:
        """Every instrument of ``category`` (or just ``symbol``), following ``nextPageCursor`` to the end."""
        _check_category(category, bybit.CATEGORIES)
        params: dict[str, str | int] = {"category": category}
        if symbol is not None:
            params["symbol"] = _checked_symbol(symbol)
        if category != "spot":  # spot has no paging: limit and cursor are not accepted there
            params["limit"] = bybit.INSTRUMENTS_PAGE_LIMIT

        instruments: list[Instrument] = []
        seen_cursors: set[str] = set()
        for _ in range(_MAX_PAGES):
            result = await self._public.get(bybit.INSTRUMENTS_INFO, params)
            instruments.extend(Instrument.from_bybit(category, item) for item in _result_list(result))
            cursor = result.get("nextPageCursor") or ""
            if not isinstance(cursor, str) or not cursor:
                return instruments
            if cursor in seen_cursors:
                raise ExchangeError(
                    "Bybit repeated an instruments-info page cursor", details={"cursor": cursor}
                )
            seen_cursors.add(cursor)
            params["cursor"] = cursor
        raise ExchangeError(f"instruments-info did not end within {_MAX_PAGES} pages")

    async def tickers(self, category: str, symbol: str | None = None) -> list[Ticker]:
        """24-hour tickers of every symbol of ``category`` (or just ``symbol``)."""
        _check_category(category, bybit.CATEGORIES)
        params: dict[str, str | int] = {"category": category}
        if symbol is not None:
            params["symbol"] = _checked_symbol(symbol)
        result = await self._public.get(bybit.TICKERS, params)
        return [Ticker.from_bybit(item) for item in _result_list(result)]

    async def klines(
        self,
        category: str,
        symbol: str,
        interval: str | int,
        limit: int = 200,
        start: int | None = None,
        end: int | None = None,
    ) -> Klines:
        """Candles of one symbol, oldest first; ``start``/``end`` are epoch milliseconds."""
        interval = _check_kline_args(category, interval, limit, start, end)
        return await self._klines(category, _checked_symbol(symbol), interval, limit, start, end)

    async def klines_many(
        self,
        category: str,
        symbols: Iterable[str],
        interval: str | int,
        limit: int = 200,
        start: int | None = None,
        end: int | None = None,
        *,
        concurrency: int = 8,
        on_result: Callable[[str, bool], None] | None = None,
    ) -> KlinesBatch:
        """Candles of many symbols fetched concurrently (at most ``concurrency`` in flight).

        A symbol that fails is reported in ``errors`` and does not stop the others. Arguments common to
        all symbols are checked first and raise ``InvalidRequest`` before any request. ``on_result`` hears
        of each symbol as soon as its answer is in (``True`` when it was fetched), for a progress bar.
        """
        interval = _check_kline_args(category, interval, limit, start, end)
        if concurrency < 1:
            raise InvalidRequest("concurrency must be at least 1", details={"concurrency": concurrency})
        unique = list(dict.fromkeys(symbols))
        gate = asyncio.Semaphore(concurrency)
        fetched: dict[str, Klines] = {}
        failed: dict[str, AitradexError] = {}

        async def fetch(symbol: str) -> None:
            async with gate:
                try:
                    fetched[symbol] = await self._klines(
                        category, _checked_symbol(symbol), interval, limit, start, end
                    )
                except AitradexError as error:
                    failed[symbol] = error
            if on_result is not None:
                on_result(symbol, symbol in fetched)

        tasks = [asyncio.ensure_future(fetch(symbol)) for symbol in unique]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            # Only a bug (not an AitradexError) or cancellation gets here: leave no orphan running.
            for task in tasks:
                task.cancel()
            raise
        # Report in the caller's order, not in completion order.
        return KlinesBatch(
            klines={s: fetched[s] for s in unique if s in fetched},
            errors={s: failed[s] for s in unique if s in failed},
        )

    async def _klines(
        self, category: str, symbol: str, interval: str, limit: int, start: int | None, end: int | None
    ) -> Klines:
        params: dict[str, str | int] = {
            "category": category,
            "symbol": symbol,
            "interval": interval,
            "limit": limit,
        }
        if start is not None:
            params["start"] = start
        if end is not None:
            params["end"] = end
        result = await self._public.get(bybit.KLINE, params)
        return Klines.from_bybit(category, symbol, interval, _result_list(result))


# -- helpers ---------------------------------------------------------------------------------------


def _result_list(result: Mapping[str, Any]) -> list[Any]:
    items = result.get("list")
    if not isinstance(items, list):
        raise ExchangeError("Bybit's result has no list", details={"keys": sorted(result)})
    return items


def _check_category(category: str, allowed: tuple[str, ...]) -> None:
    if category not in allowed:
        raise InvalidRequest(
            f"unknown category {category!r}", details={"category": category, "allowed": list(allowed)}
        )


def _checked_symbol(symbol: str) -> str:
    if not isinstance(symbol, str) or not _SYMBOL_RE.match(symbol):
        raise InvalidRequest(
            f"not a Bybit symbol: {symbol!r} (uppercase letters, digits, '-' and '_')",
            details={"symbol": str(symbol)},
        )
    return symbol


def _check_kline_args(
    category: str, interval: str | int, limit: int, start: int | None, end: int | None
) -> str:
    """Validate the arguments shared by every kline request; returns the interval in Bybit's spelling."""
    _check_category(category, bybit.KLINE_CATEGORIES)
    spelled = str(interval)
    if spelled not in TIMEFRAMES:
        raise InvalidRequest(
            f"unknown kline interval {interval!r}",
            details={"interval": spelled, "allowed": list(TIMEFRAMES)},
        )
    if not 1 <= limit <= bybit.KLINE_MAX_LIMIT:
        raise InvalidRequest(
            f"kline limit must be between 1 and {bybit.KLINE_MAX_LIMIT}", details={"limit": limit}
        )
    for name, value in (("start", start), ("end", end)):
        if value is not None and value < 0:
            raise InvalidRequest(f"kline {name} must be epoch milliseconds", details={name: value})
    if start is not None and end is not None and start > end:
        raise InvalidRequest("kline start is after end", details={"start": start, "end": end})
    return spelled
