"""Bybit V5 public market data over an injected ``httpx.AsyncClient``.

What this client promises, request by request:

- every request first takes a slot from the shared :class:`RateLimiter` (the IP's budget);
- timeouts, connection errors, HTTP 5xx, retCode 10000/10016 (server timeout/error) and malformed bodies
  are retried with exponential backoff and jitter, then raised as ``ExchangeUnavailable``;
- HTTP 429 and retCode 10006/10018 (too many visits) pause the limiter until Bybit's
  ``X-Bapi-Limit-Reset-Timestamp`` (bounded), are retried, then raised as ``RateLimited``;
- HTTP 403 (Bybit's IP ban) and retCode 10009 raise ``IpBanned`` at once and pause the limiter for the
  ban cooldown, so no request leaves this process until then: later requests fail fast with
  ``IpBanned`` instead of hammering a banned IP;
- any other non-zero retCode raises ``ExchangeRejected`` carrying ``ret_code``/``ret_msg``;
- which retCode means what is read from the one table, :mod:`lib.exchange.bybit`;
- bad arguments raise ``InvalidRequest`` before anything is sent.

No credentials pass through this module: these endpoints are public.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from lib.core.timeframes import TIMEFRAMES
from lib.errors import (
    AitradexError,
    ConfigError,
    ExchangeError,
    ExchangeRejected,
    ExchangeUnavailable,
    InvalidRequest,
    IpBanned,
    RateLimited,
)
from lib.exchange import bybit
from lib.exchange.models import Instrument, Klines, ServerTime, Ticker
from lib.exchange.ports import KlinesBatch
from lib.exchange.rate_limit import Clock, PauseTooLong, RateLimiter, Sleep

logger = logging.getLogger(__name__)

_IP_BAN_REASON = "ip_ban"
_RATE_LIMIT_REASON = "rate_limited"
_SYMBOL_RE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,63}$")
_MAX_PAGES = 100


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a failing request is tried again.

    ``max_attempts`` counts the first try. Backoff before attempt ``n + 1`` is drawn from
    ``[cap/2, cap]`` with ``cap = min(max_delay_s, base_delay_s * 2**(n-1))``: the floor keeps retries
    from bunching at zero, the jitter keeps many clients from retrying in step.
    """

    max_attempts: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    #: A 10006 reset timestamp further away than this is not trusted (clock skew): wait this long.
    max_reset_wait_s: float = 10.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base_delay_s < 0 or self.max_delay_s < self.base_delay_s:
            raise ConfigError(f"invalid retry policy: {self}")

    def backoff_s(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        cap = min(self.max_delay_s, self.base_delay_s * 2.0 ** (attempt - 1))
        return cap / 2 + rng.random() * cap / 2


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
        self._http = http
        self._base_url = bybit.checked_base_url(base_url)
        self._limiter = limiter if limiter is not None else RateLimiter(clock=clock, sleep=sleep)
        self._retry = retry if retry is not None else RetryPolicy()
        self._ban_cooldown_s = ban_cooldown_s
        self._max_pause_wait_s = max_pause_wait_s
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._rng = rng if rng is not None else random.Random()

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
    ) -> AsyncIterator[MarketDataClient]:
        """A client with its own ``httpx.AsyncClient``, closed when the ``async with`` block ends."""
        base_url = bybit.base_url_for(environment, paper_url=paper_url)
        async with httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s), headers={"User-Agent": "aitradex/market-data"}
        ) as http:
            yield cls(http, base_url, limiter=limiter, retry=retry)

    @property
    def base_url(self) -> str:
        """The REST base URL requests go to."""
        return self._base_url

    @property
    def limiter(self) -> RateLimiter:
        """The limiter every request of this client passes through."""
        return self._limiter

    # -- endpoints ---------------------------------------------------------------------------------

    async def server_time(self) -> ServerTime:
        """Bybit's clock (``/v5/market/time``)."""
        result = await self._get(bybit.SERVER_TIME, {})
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
            result = await self._get(bybit.INSTRUMENTS_INFO, params)
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
        result = await self._get(bybit.TICKERS, params)
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
    ) -> KlinesBatch:
        """Candles of many symbols fetched concurrently (at most ``concurrency`` in flight).

        A symbol that fails is reported in ``errors`` and does not stop the others. Arguments common to
        all symbols are checked first and raise ``InvalidRequest`` before any request.
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
        result = await self._get(bybit.KLINE, params)
        return Klines.from_bybit(category, symbol, interval, _result_list(result))

    # -- transport ---------------------------------------------------------------------------------

    async def _get(self, path: str, params: Mapping[str, str | int]) -> dict[str, Any]:
        """``result`` of one GET, with rate limiting and retries as described in the module docstring."""
        attempts = self._retry.max_attempts
        for attempt in range(1, attempts + 1):
            try:
                await self._limiter.acquire(max_pause_s=self._max_pause_wait_s)
            except PauseTooLong as paused:
                raise _paused_error(paused, path) from None
            try:
                return await self._send_once(path, params)
            except (ExchangeUnavailable, RateLimited) as error:
                if attempt == attempts:
                    error.details["attempts"] = attempts
                    raise
                delay = self._retry_delay(error, attempt)
                logger.warning(
                    "bybit GET %s failed (%s: %s); attempt %d of %d, retrying in %.2f s",
                    path,
                    error.code,
                    error.message,
                    attempt,
                    attempts,
                    delay,
                )
                if isinstance(error, RateLimited):
                    # The budget is shared: everyone waits for the reset, not only this request.
                    self._limiter.pause_for(delay, _RATE_LIMIT_REASON)
                else:
                    await self._sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover

    def _retry_delay(self, error: ExchangeError, attempt: int) -> float:
        backoff = self._retry.backoff_s(attempt, self._rng)
        retry_after = error.details.get("retry_after_s")
        if isinstance(error, RateLimited) and isinstance(retry_after, int | float):
            # Wait for Bybit's reset, but never less than the backoff: a reset that looks past is
            # clock skew, and retrying at once would only earn another 10006.
            return max(float(retry_after), backoff)
        return backoff

    async def _send_once(self, path: str, params: Mapping[str, str | int]) -> dict[str, Any]:
        details: dict[str, Any] = {"path": path}
        try:
            response = await self._http.get(self._base_url + path, params=dict(params))
        except httpx.TimeoutException as exc:
            raise ExchangeUnavailable(
                f"Bybit did not answer {path} in time", details={**details, "reason": type(exc).__name__}
            ) from exc
        except httpx.TransportError as exc:
            raise ExchangeUnavailable(
                f"could not reach Bybit for {path}", details={**details, "reason": type(exc).__name__}
            ) from exc

        status = response.status_code
        details["http_status"] = status
        if status == 403:
            raise self._banned(path, f"Bybit answered HTTP 403 for {path} (IP banned or region blocked)")
        if status == 429:
            raise RateLimited(
                f"Bybit answered HTTP 429 for {path}",
                details={**details, **self._retry_after(response)},
            )
        if status >= 500:
            raise ExchangeUnavailable(f"Bybit answered HTTP {status} for {path}", details=details)

        if status != 200:
            # Any other 4xx is about this request (wrong path, category, parameters): not retried.
            # The body may or may not be Bybit's JSON envelope; take its code when it is.
            envelope = _json_object(response)
            code = envelope.get("retCode") if envelope else None
            raise ExchangeRejected(
                f"Bybit answered HTTP {status} for {path}",
                ret_code=code if isinstance(code, int) else None,
                ret_msg=str(envelope["retMsg"]) if envelope and "retMsg" in envelope else None,
                details=details,
            )
        envelope = _json_object(response)
        if envelope is None:
            # A proxy or load-balancer page, or a truncated body: transient as far as we can tell.
            raise ExchangeUnavailable(
                f"Bybit sent a body that is not JSON for {path}",
                details={**details, "content_type": response.headers.get("content-type", "")},
            )
        return self._result(envelope, response, path, details)

    def _result(
        self, envelope: dict[str, Any], response: httpx.Response, path: str, details: dict[str, Any]
    ) -> dict[str, Any]:
        ret_code = envelope.get("retCode")
        ret_msg = str(envelope.get("retMsg", ""))
        if not isinstance(ret_code, int) or isinstance(ret_code, bool):
            raise ExchangeUnavailable(f"Bybit's answer to {path} has no integer retCode", details=details)
        if ret_code == bybit.OK:
            result = envelope.get("result")
            if not isinstance(result, dict):
                raise ExchangeError(f"Bybit's answer to {path} has no result object", details=details)
            return result
        error = bybit.error_class(ret_code)
        if error is RateLimited:
            raise bybit.ret_code_error(
                ret_code,
                ret_msg,
                f"Bybit rate-limited {path}",
                details={**details, **self._retry_after(response)},
            )
        if error is IpBanned:
            raise self._banned(path, f"Bybit reports this IP as banned ({path})", ret_code, ret_msg)
        if error is ExchangeUnavailable:
            raise bybit.ret_code_error(
                ret_code, ret_msg, f"Bybit had a server error on {path}", details=details
            )
        # Refused on purpose; an auth failure's message may echo the signed string, so it is not kept.
        shown = "" if ret_code in bybit.AUTH_RET_CODES else ret_msg
        raise bybit.ret_code_error(
            ret_code, ret_msg, f"Bybit rejected {path}: {shown or 'no message'}", details=details
        )

    def _banned(
        self, path: str, message: str, ret_code: int | None = None, ret_msg: str | None = None
    ) -> IpBanned:
        # Stop all traffic through this limiter: retrying into a ban prolongs it (or makes it permanent).
        self._limiter.pause_for(self._ban_cooldown_s, _IP_BAN_REASON)
        logger.error("%s; pausing all Bybit requests for %.0f s", message, self._ban_cooldown_s)
        return IpBanned(
            message,
            ret_code=ret_code,
            ret_msg=ret_msg,
            details={"path": path, "retry_after_s": self._ban_cooldown_s},
        )

    def _retry_after(self, response: httpx.Response) -> dict[str, float]:
        """``{"retry_after_s": s}`` from Bybit's reset timestamp header, bounded; empty if absent."""
        raw = response.headers.get(bybit.RATE_LIMIT_RESET_HEADER)
        if raw is None:
            return {}
        try:
            reset_ms = int(raw)
        except ValueError:
            return {}
        wait = reset_ms / 1000.0 - self._wall_clock()
        return {"retry_after_s": min(max(wait, 0.0), self._retry.max_reset_wait_s)}


# -- helpers ---------------------------------------------------------------------------------------


def _paused_error(paused: PauseTooLong, path: str) -> ExchangeError:
    details = {"path": path, "retry_after_s": round(paused.remaining_s, 3)}
    if paused.reason == _IP_BAN_REASON:
        return IpBanned(
            f"Bybit requests are paused after an IP ban; {paused.remaining_s:.0f} s left", details=details
        )
    return RateLimited(f"Bybit requests are paused for {paused.remaining_s:.0f} s", details=details)


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    """The body as a JSON object, or ``None`` when it is not JSON or not an object."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


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
