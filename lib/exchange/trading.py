"""Signed trading calls over pybit: :class:`PybitExchange`, the ``TradingExchange`` of ``lib.exchange.ports``.

``PybitExchange`` implements the port with ``pybit.unified_trading.HTTP``, pointed by ``endpoint`` at
mainnet, testnet, demo or the local paper exchange. pybit is synchronous, so every call runs in a
worker thread, off the event loop.

pybit's own retries are turned off (``max_retries=1`` and no retry codes). A retry must be the
caller's decision, because an order create that timed out may have been accepted. pybit's
exceptions are mapped onto ``lib.errors`` here, and nowhere else, through the one retCode table of
:mod:`lib.exchange.bybit`: a 10000 or 10016 (server timeout or error) on an order create is
``ExchangeUnavailable`` (outcome unknown, retried with the same ``orderLinkId``), like a timeout or a
5xx, never a final rejection.

Transport: pybit signs and shapes each request, then hands it to its ``client`` attribute, a
``requests.Session``, through exactly two calls (``prepare_request`` and ``send``) and reads
``status_code``, ``headers``, ``text``/``json()`` and ``elapsed`` of the answer. :class:`LeanTransport`
implements those on one ``urllib3`` pool per base URL, shared by every account's pybit session, so a
fan-out to a thousand accounts reuses a few dozen keep-alive connections instead of opening one per
account. It maps urllib3's failures onto the ``requests`` exceptions pybit and :func:`map_pybit_error`
expect. Measured against the paper exchange on this 2-core machine: 0.6-0.7 ms of client CPU per signed
call, against 1.2-1.5 ms through a shared ``requests.Session`` (cookie jars, hooks, proxy and netrc
look-ups on every call) and 1.9 ms with one session per account (``bench/fanout.py``). It also never
reads proxies or credentials from the environment.

The module is about 520 lines: every signed call of the port, the history paging the reconciliation
adds (``order_history``, ``executions``: 7-day windows, every cursor page), the one mapping of pybit's
errors and the transport pybit needs belong to one adapter and change together; split, each part
would import the others' private shapes.

IP budget: given a ``limiter`` (the process's one :class:`lib.exchange.rate_limit.RateLimiter`, the
same the market-data client uses, since Bybit counts every endpoint against the source IP), every
signed call first takes a slot from it; a 403 (Bybit's IP ban) pauses it for the ban's cooldown, so no
call of the process goes out until the ban has surely lifted, and a pause longer than
``max_pause_wait_s`` fails a call at once with ``IpBanned`` instead of hanging it.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import certifi
import requests
import urllib3
from pybit.exceptions import FailedRequestError, InvalidRequestError
from pybit.unified_trading import HTTP

from lib.errors import (
    ConfigError,
    ExchangeError,
    ExchangeRejected,
    ExchangeUnavailable,
    IpBanned,
    RateLimited,
)
from lib.exchange import bybit
from lib.exchange.bybit import AUTH_RET_CODES, DEFAULT_BAN_COOLDOWN_S
from lib.exchange.ports import (
    Credentials,
    ExecutionState,
    OrderRequest,
    OrderState,
    PositionState,
    WalletBalance,
)
from lib.exchange.rate_limit import PauseTooLong, RateLimiter

__all__ = ["LeanTransport", "PybitExchange", "map_pybit_error"]

# pybit treats an empty set as "use the defaults"; -1 never occurs.
_NO_RETRY_CODES = {-1}
# pybit adds a StreamHandler to this logger for every session it creates while the root logger has none
# (a script, a test): one is enough.
_PYBIT_LOGGER = logging.getLogger("pybit._http_manager")

#: The message of each error class a retCode maps to (Bybit's own retMsg travels in ``ret_msg``).
_RET_CODE_MESSAGES: dict[type[ExchangeError], str] = {
    ExchangeUnavailable: "the exchange had a server error: the outcome is unknown",
    RateLimited: "the exchange rate limit was hit",
    IpBanned: "the exchange reports this IP as banned: traffic must stop and wait",
}


def map_pybit_error(exc: Exception) -> ExchangeError:
    """Translate a pybit or requests exception into the application's hierarchy."""
    if isinstance(exc, InvalidRequestError):
        # pybit raises this for any non-zero retCode; what it means comes from the one table.
        code = int(exc.status_code)
        if code in AUTH_RET_CODES:
            # No retMsg (ret_code_error drops it): Bybit's bad-signature message echoes the signed
            # string, API key included.
            return bybit.ret_code_error(code, exc.message, "the exchange refused the API key")
        message = _RET_CODE_MESSAGES.get(bybit.error_class(code), "the exchange refused the request")
        return bybit.ret_code_error(code, exc.message, message)
    if isinstance(exc, FailedRequestError):
        status = int(exc.status_code)
        if status == 403:
            return IpBanned("the exchange refused this IP (403): traffic must stop and wait")
        if status == 429:
            return RateLimited("the exchange rate limit was hit (429)")
        return ExchangeUnavailable(f"the exchange answered HTTP {status}", details={"http_status": status})
    if isinstance(exc, requests.exceptions.Timeout):
        return ExchangeUnavailable("the exchange did not answer in time")
    if isinstance(exc, requests.exceptions.RequestException):
        return ExchangeUnavailable("the exchange cannot be reached")
    return ExchangeUnavailable(f"unexpected exchange failure ({type(exc).__name__})")


def _decimal(value: Any) -> Decimal:
    return Decimal(str(value)) if value not in (None, "") else Decimal(0)


class _LeanResponse:
    """The part of ``requests.Response`` pybit reads."""

    __slots__ = ("content", "elapsed", "headers", "status_code", "url")

    def __init__(self, status: int, headers: Any, content: bytes, url: str, elapsed: timedelta) -> None:
        self.status_code = status
        self.headers = headers
        self.content = content
        self.url = url
        self.elapsed = elapsed

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        try:
            return json.loads(self.content)
        except ValueError as exc:
            # requests' own error: pybit catches it as the JSONDecodeError it knows.
            raise requests.exceptions.JSONDecodeError(str(exc), self.text, 0) from None


@dataclass(frozen=True, slots=True)
class _LeanRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None


class LeanTransport:
    """What pybit needs of a ``requests.Session`` (``prepare_request``, ``send``), on a urllib3 pool.

    Thread-safe (urllib3's pool is); no cookies, redirects, proxies or retries, none of which a signed
    Bybit call wants. Failures surface as the ``requests`` exceptions pybit and the mapping expect.
    """

    def __init__(self, pool_size: int, source_address: str | None = None) -> None:
        # certifi's CA bundle, as requests uses: TLS to Bybit verifies the same way it did under requests.
        # ``source_address`` binds each connection to the host's own IP (port 0: any free one).
        extra: dict[str, Any] = {"source_address": (source_address, 0)} if source_address else {}
        self._pool = urllib3.PoolManager(
            num_pools=4,
            maxsize=pool_size,
            retries=False,
            cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(),
            **extra,
        )

    def prepare_request(self, request: requests.Request) -> _LeanRequest:
        # pybit sends a JSON string body (POST) or none (GET, parameters in the URL), headers as str.
        data: Any = request.data
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        headers.update({str(k): str(v) for k, v in (request.headers or {}).items()})
        return _LeanRequest(
            method=str(request.method).upper(),
            url=str(request.url),
            headers=headers,
            body=data.encode("utf-8") if isinstance(data, str) else (bytes(data) if data else None),
        )

    def send(self, request: _LeanRequest, timeout: float | None = None, **_: Any) -> _LeanResponse:
        started = time.monotonic()
        try:
            answer = self._pool.urlopen(
                request.method,
                request.url,
                body=request.body,
                headers=request.headers,
                timeout=timeout,
                retries=False,
                redirect=False,
                preload_content=True,
            )
        except urllib3.exceptions.ConnectTimeoutError as exc:
            raise requests.exceptions.ConnectTimeout(str(exc)) from None
        except (urllib3.exceptions.ReadTimeoutError, TimeoutError) as exc:
            raise requests.exceptions.ReadTimeout(str(exc)) from None
        except urllib3.exceptions.HTTPError as exc:
            raise requests.exceptions.ConnectionError(str(exc)) from None
        elapsed = timedelta(seconds=time.monotonic() - started)
        return _LeanResponse(answer.status, answer.headers, answer.data, request.url, elapsed)

    def close(self) -> None:
        self._pool.clear()


def _optional_price(value: Any) -> Decimal | None:
    return Decimal(str(value)) if value not in (None, "", "0") else None


def _execution_state(item: dict[str, Any]) -> ExecutionState:
    return ExecutionState(
        exec_id=str(item.get("execId", "")),
        order_id=str(item.get("orderId", "")),
        order_link_id=str(item.get("orderLinkId", "")),
        symbol=str(item.get("symbol", "")),
        side=str(item.get("side", "")),
        qty=_decimal(item.get("execQty")),
        price=_decimal(item.get("execPrice")),
        fee=_decimal(item.get("execFee")),
        exec_ms=int(item.get("execTime") or 0),
        exec_type=str(item.get("execType", "")),
    )


def _order_state(item: dict[str, Any], category: str = "linear") -> OrderState:
    avg = item.get("avgPrice")
    return OrderState(
        order_id=str(item.get("orderId", "")),
        order_link_id=str(item.get("orderLinkId", "")),
        symbol=str(item.get("symbol", "")),
        side=str(item.get("side", "")),
        status=str(item.get("orderStatus", "")),
        qty=_decimal(item.get("qty")),
        filled_qty=_decimal(item.get("cumExecQty")),
        avg_price=Decimal(str(avg)) if avg not in (None, "", "0") else None,
        fee=_decimal(item.get("cumExecFee")),
        create_type=str(item.get("createType", "")),
        created_ms=int(item.get("createdTime") or 0),
        reject_reason=str(item.get("rejectReason", "")),
        stop_loss=_optional_price(item.get("stopLoss")),
        take_profit=_optional_price(item.get("takeProfit")),
        reduce_only=item.get("reduceOnly") is True,
        updated_ms=int(item.get("updatedTime") or 0),
        category=category,
    )


def history_windows(since_ms: int | None, until_ms: int | None, now_ms: int) -> list[tuple[int, int] | None]:
    """The windows of at most 7 days (Bybit's limit) that cover ``since_ms`` to ``until_ms`` (now), oldest
    first; ``[None]`` (the exchange's default window) without ``since_ms``."""
    if since_ms is None:
        return [None]
    end = now_ms if until_ms is None else until_ms
    windows: list[tuple[int, int] | None] = []
    start = since_ms
    while start <= end:
        windows.append((start, min(end, start + bybit.HISTORY_WINDOW_MS)))
        start += bybit.HISTORY_WINDOW_MS + 1
    return windows


class PybitExchange:
    """``TradingExchange`` over pybit. Construction does no I/O; each call builds its own session."""

    def __init__(
        self,
        *,
        paper_url: str | None = None,
        endpoints: Mapping[str, str] | None = None,
        timeout_s: float = 10,
        recv_window_ms: int = 5000,
        threads: int = 32,
        max_sessions: int = 4096,
        limiter: RateLimiter | None = None,
        ban_cooldown_s: float = DEFAULT_BAN_COOLDOWN_S,
        max_pause_wait_s: float = 10.0,
        source_address: str | None = None,
    ) -> None:
        # ``endpoints`` overrides Bybit's URLs per environment (tests point them all at the paper exchange).
        self._endpoints = {**bybit.BASE_URLS, **(endpoints or {})}
        self._paper_url = paper_url
        self._timeout_s = timeout_s
        self._recv_window_ms = recv_window_ms
        # pybit blocks; a fan-out to many accounts needs more threads than asyncio's default (cpu + 4).
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="pybit")
        # One pybit session per account (it holds the keys), all of one URL on one shared transport.
        self._sessions: OrderedDict[tuple[str, str], HTTP] = OrderedDict()
        self._max_sessions = max_sessions
        self._sessions_lock = threading.Lock()
        self._transport = LeanTransport(pool_size=threads, source_address=source_address)
        self._template: HTTP | None = None
        self._limiter = limiter
        self._ban_cooldown_s = ban_cooldown_s
        self._max_pause_wait_s = max_pause_wait_s

    @property
    def limiter(self) -> RateLimiter | None:
        """The IP budget every signed call takes a slot from (None: unlimited)."""
        return self._limiter

    def endpoint_for(self, environment: str) -> str:
        """The base URL for an account environment."""
        if environment == bybit.PAPER:
            if not self._paper_url:
                raise ConfigError("the paper exchange URL is not known: start the stack with `aitradex up`")
            return self._paper_url.rstrip("/")
        try:
            return self._endpoints[environment].rstrip("/")
        except KeyError:
            raise ConfigError(f"unknown exchange environment {environment!r}") from None

    def client(self, creds: Credentials) -> HTTP:
        """A pybit session for ``creds`` (reused, least recently used evicted), with pybit's retries off."""
        key = (creds.environment, hashlib.sha256(f"{creds.api_key}:{creds.api_secret}".encode()).hexdigest())
        with self._sessions_lock:
            session = self._sessions.get(key)
            if session is not None:
                self._sessions.move_to_end(key)
                return session
        session = self._new_client(creds)
        with self._sessions_lock:
            self._sessions[key] = session
            while len(self._sessions) > self._max_sessions:
                self._sessions.popitem(last=False)
        return session

    def _new_client(self, creds: Credentials) -> HTTP:
        # Building a pybit session costs ~0.7 ms (it sets up a requests.Session this class never uses);
        # a shallow copy of one configured template with this account's keys is the same session.
        if self._template is None:
            template = HTTP(
                api_key="",
                api_secret="",
                timeout=self._timeout_s,
                recv_window=self._recv_window_ms,
                max_retries=1,
                retry_codes=_NO_RETRY_CODES,
            )
            del _PYBIT_LOGGER.handlers[1:]
            template.client.close()
            template.client = self._transport
            self._template = template
        session = copy.copy(self._template)
        session.api_key = creds.api_key
        session.api_secret = creds.api_secret
        session.endpoint = self.endpoint_for(creds.environment)
        return session

    async def call(self, creds: Credentials, method: str, **params: Any) -> dict[str, Any]:
        """Run one pybit method in a worker thread and return its ``result``; errors are mapped."""
        session = self.client(creds)

        def run() -> dict[str, Any]:
            response: dict[str, Any] = getattr(session, method)(**params)
            return response

        if self._limiter is not None:
            try:
                await self._limiter.acquire(max_pause_s=self._max_pause_wait_s)
            except PauseTooLong as paused:
                raise IpBanned(
                    f"signed requests are paused ({paused.reason})",
                    details={"retry_after_s": round(paused.remaining_s, 1)},
                ) from None
        try:
            response = await asyncio.get_running_loop().run_in_executor(self._pool, run)
        except (InvalidRequestError, FailedRequestError, requests.exceptions.RequestException) as exc:
            error = map_pybit_error(exc)
            if isinstance(error, IpBanned) and self._limiter is not None:
                # Every call of the process waits: retrying into a ban prolongs it.
                self._limiter.pause_for(self._ban_cooldown_s, "the exchange banned this IP (403)")
            raise error from None
        result: dict[str, Any] = response.get("result") or {}
        return result

    async def wallet_balance(self, creds: Credentials) -> WalletBalance:
        """The unified wallet: a signed call, so it also proves the keys work."""
        result = await self.call(creds, "get_wallet_balance", accountType="UNIFIED")
        accounts = result.get("list") or []
        if not accounts:
            raise ExchangeRejected("the exchange returned no unified account for these keys")
        account = accounts[0]
        coins = {str(c.get("coin")): _decimal(c.get("walletBalance")) for c in account.get("coin", [])}
        return WalletBalance(
            total_equity=_decimal(account.get("totalEquity")),
            total_available=_decimal(account.get("totalAvailableBalance")),
            coins=coins,
        )

    async def set_leverage(self, creds: Credentials, category: str, symbol: str, leverage: int) -> None:
        """Set both sides' leverage; "not modified" (110043) counts as done."""
        try:
            await self.call(
                creds,
                "set_leverage",
                category=category,
                symbol=symbol,
                buyLeverage=str(leverage),
                sellLeverage=str(leverage),
            )
        except ExchangeRejected as exc:
            if not bybit.already_done(bybit.SET_LEVERAGE, exc.ret_code):
                raise

    async def place_order(self, creds: Credentials, order: OrderRequest) -> str:
        """Create the order; returns the exchange's order id. 110072 surfaces as ExchangeRejected."""
        params: dict[str, Any] = {
            "category": order.category,
            "symbol": order.symbol,
            "side": order.side,
            "orderType": order.order_type,
            "qty": order.qty,
            "orderLinkId": order.order_link_id,
            "positionIdx": 0,
        }
        if order.stop_loss is not None:
            params["stopLoss"] = order.stop_loss
        if order.take_profit is not None:
            params["takeProfit"] = order.take_profit
        if order.reduce_only:
            params["reduceOnly"] = True
        result = await self.call(creds, "place_order", **params)
        return str(result.get("orderId", ""))

    async def cancel_order(self, creds: Credentials, category: str, symbol: str, order_link_id: str) -> None:
        """Cancel the open order with this ``orderLinkId`` (110001 surfaces as ExchangeRejected)."""
        await self.call(creds, "cancel_order", category=category, symbol=symbol, orderLinkId=order_link_id)

    async def find_order(
        self, creds: Credentials, category: str, symbol: str, order_link_id: str
    ) -> OrderState | None:
        """The order with this ``orderLinkId``, open or recently closed, or None if the exchange has none."""
        result = await self.call(
            creds, "get_open_orders", category=category, symbol=symbol, orderLinkId=order_link_id, openOnly=0
        )
        items = [i for i in result.get("list") or [] if i.get("orderLinkId") == order_link_id]
        return _order_state(items[0]) if items else None

    async def recent_orders(self, creds: Credentials, category: str, symbol: str) -> list[OrderState]:
        """Recently closed orders of a symbol (where TP/SL closes show up), newest first."""
        result = await self.call(
            creds, "get_open_orders", category=category, symbol=symbol, openOnly=1, limit=50
        )
        return [_order_state(i) for i in result.get("list") or []]

    async def _all_pages(
        self, creds: Credentials, method: str, limit: int, window: tuple[int, int] | None, **params: Any
    ) -> list[dict[str, Any]]:
        if window is not None:
            params.update(startTime=window[0], endTime=window[1])
        items: list[dict[str, Any]] = []
        cursor = ""
        while True:
            result = await self.call(
                creds, method, limit=limit, **params, **({"cursor": cursor} if cursor else {})
            )
            items.extend(result.get("list") or [])
            following = str(result.get("nextPageCursor") or "")
            if not following or following == cursor:
                return items
            cursor = following

    async def order_history(
        self,
        creds: Credentials,
        category: str,
        *,
        since_ms: int | None,
        until_ms: int | None = None,
        page_size: int = 50,
    ) -> list[OrderState]:
        """Every order created since ``since_ms`` (``/v5/order/history``, 7-day windows, every page)."""
        seen: dict[str, OrderState] = {}
        for window in history_windows(since_ms, until_ms, int(time.time() * 1000)):
            for item in await self._all_pages(
                creds, "get_order_history", page_size, window, category=category
            ):
                state = _order_state(item, category)
                seen.setdefault(state.order_id, state)
        return list(seen.values())

    async def executions(
        self,
        creds: Credentials,
        category: str,
        *,
        since_ms: int | None,
        until_ms: int | None = None,
        page_size: int = 100,
    ) -> list[ExecutionState]:
        """Every fill since ``since_ms`` (``/v5/execution/list``, 7-day windows, every page)."""
        seen: dict[str, ExecutionState] = {}
        for window in history_windows(since_ms, until_ms, int(time.time() * 1000)):
            for item in await self._all_pages(creds, "get_executions", page_size, window, category=category):
                state = _execution_state(item)
                seen.setdefault(state.exec_id, state)
        return list(seen.values())

    async def position(self, creds: Credentials, category: str, symbol: str) -> PositionState | None:
        """The symbol's position (one-way mode), or None if the exchange lists none."""
        result = await self.call(creds, "get_positions", category=category, symbol=symbol)
        for item in result.get("list") or []:
            if item.get("symbol") == symbol:
                return PositionState(
                    symbol=symbol,
                    side=str(item.get("side", "")),
                    size=_decimal(item.get("size")),
                    avg_price=_decimal(item.get("avgPrice")),
                    cum_realised_pnl=_decimal(item.get("cumRealisedPnl")),
                )
        return None
