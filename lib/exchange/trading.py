"""Signed trading calls: the narrow interface, and its pybit implementation.

``TradingExchange`` is what the rest of the application sees. ``PybitExchange`` implements it with
``pybit.unified_trading.HTTP``, pointed by ``endpoint`` at mainnet, testnet, demo or the local paper
exchange. pybit is synchronous, so every call runs in a worker thread, off the event loop.

pybit's own retries are turned off (``max_retries=1`` and no retry codes). A retry must be the
caller's decision, because an order create that timed out may have been accepted. pybit's
exceptions are mapped onto ``lib.errors`` here, and nowhere else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import requests
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

ENDPOINTS = {
    "mainnet": "https://api.bybit.com",
    "testnet": "https://api-testnet.bybit.com",
    "demo": "https://api-demo.bybit.com",
}
_NO_RETRY_CODES = {-1}  # pybit treats an empty set as "use the defaults"; -1 never occurs
AUTH_RET_CODES = frozenset({10003, 10004, 10005, 10007, 10010, 33004})


@dataclass(frozen=True, slots=True)
class Credentials:
    """An account's environment and plain keys, in memory only while a call needs them."""

    environment: str
    api_key: str
    api_secret: str

    def __repr__(self) -> str:
        return f"Credentials(environment={self.environment!r}, api_key='***', api_secret='***')"


@dataclass(frozen=True, slots=True)
class WalletBalance:
    """The unified account's equity and available balance, in USD terms."""

    total_equity: Decimal
    total_available: Decimal
    coins: dict[str, Decimal]


class TradingExchange(Protocol):
    """Signed calls the application makes for a user's account."""

    async def wallet_balance(self, creds: Credentials) -> WalletBalance: ...


def map_pybit_error(exc: Exception) -> ExchangeError:
    """Translate a pybit or requests exception into the application's hierarchy."""
    if isinstance(exc, InvalidRequestError):
        code = int(exc.status_code)
        if code == 10006:
            return RateLimited("the exchange rate limit was hit", ret_code=code, ret_msg=exc.message)
        if code in AUTH_RET_CODES:
            return ExchangeRejected("the exchange refused the API key", ret_code=code, ret_msg=exc.message)
        return ExchangeRejected("the exchange refused the request", ret_code=code, ret_msg=exc.message)
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


class PybitExchange:
    """``TradingExchange`` over pybit. Construction does no I/O; each call builds its own session."""

    def __init__(
        self,
        *,
        paper_url: str | None = None,
        endpoints: Mapping[str, str] | None = None,
        timeout_s: int = 10,
        recv_window_ms: int = 5000,
    ) -> None:
        # ``endpoints`` overrides Bybit's URLs per environment (tests point them all at the paper exchange).
        self._endpoints = {**ENDPOINTS, **(endpoints or {})}
        self._paper_url = paper_url
        self._timeout_s = timeout_s
        self._recv_window_ms = recv_window_ms

    def endpoint_for(self, environment: str) -> str:
        """The base URL for an account environment."""
        if environment == "paper":
            if not self._paper_url:
                raise ConfigError("the paper exchange URL is not known: start the stack with `aitradex up`")
            return self._paper_url.rstrip("/")
        try:
            return self._endpoints[environment].rstrip("/")
        except KeyError:
            raise ConfigError(f"unknown exchange environment {environment!r}") from None

    def client(self, creds: Credentials) -> HTTP:
        """A pybit session for ``creds``, with pybit's retries off."""
        session = HTTP(
            api_key=creds.api_key,
            api_secret=creds.api_secret,
            timeout=self._timeout_s,
            recv_window=self._recv_window_ms,
            max_retries=1,
            retry_codes=_NO_RETRY_CODES,
        )
        session.endpoint = self.endpoint_for(creds.environment)
        return session

    async def call(self, creds: Credentials, method: str, **params: Any) -> dict[str, Any]:
        """Run one pybit method in a worker thread and return its ``result``; errors are mapped."""
        session = self.client(creds)

        def run() -> dict[str, Any]:
            response: dict[str, Any] = getattr(session, method)(**params)
            return response

        try:
            response = await asyncio.to_thread(run)
        except (InvalidRequestError, FailedRequestError, requests.exceptions.RequestException) as exc:
            raise map_pybit_error(exc) from None
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
