"""What the services see of an exchange: Protocols and plain DTOs, with no pybit or httpx in sight.

``TradingExchange`` is the signed side (a user's account: wallet, leverage, orders, positions), which
``lib.exchange.trading.PybitExchange`` implements over pybit. ``MarketData`` is the public side
(instruments, tickers, candles), which ``lib.exchange.market.MarketDataClient`` implements over httpx.
Tests pass plain fakes of either.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from lib.errors import AitradexError
from lib.exchange.models import Instrument, Klines, ServerTime, Ticker


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


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A market order with its stop-loss and take-profit attached, identified by ``order_link_id``.

    ``reduce_only``: it may only shrink the position (a close by hand); it carries no SL/TP then.
    """

    category: str
    symbol: str
    side: str  # Buy | Sell
    qty: str  # already on the qty step, as the exchange expects it
    order_link_id: str
    stop_loss: str | None = None
    take_profit: str | None = None
    order_type: str = "Market"
    reduce_only: bool = False


@dataclass(frozen=True, slots=True)
class OrderState:
    """What the exchange says about one order."""

    order_id: str
    order_link_id: str
    symbol: str
    side: str
    status: str  # Bybit's orderStatus: New, PartiallyFilled, Filled, Cancelled, Rejected, Deactivated...
    qty: Decimal
    filled_qty: Decimal
    avg_price: Decimal | None
    fee: Decimal
    create_type: str
    created_ms: int
    reject_reason: str = ""
    # What the order history adds (the reconciliation imports them): its SL/TP, whether it only closed,
    # and when the exchange last changed it.
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    reduce_only: bool = False
    updated_ms: int = 0
    category: str = "linear"


@dataclass(frozen=True, slots=True)
class ExecutionState:
    """One fill (``/v5/execution/list``): how much of which order traded, at what price and fee."""

    exec_id: str
    order_id: str
    order_link_id: str
    symbol: str
    side: str
    qty: Decimal
    price: Decimal
    fee: Decimal
    exec_ms: int
    exec_type: str = "Trade"


@dataclass(frozen=True, slots=True)
class PositionState:
    """One-way-mode position of a symbol: size 0 means flat."""

    symbol: str
    side: str
    size: Decimal
    avg_price: Decimal
    cum_realised_pnl: Decimal


class TradingExchange(Protocol):
    """Signed calls the application makes for a user's account.

    Errors are ``lib.errors.ExchangeError`` s classed by the one retCode table
    (``lib.exchange.bybit``): on :meth:`place_order`, ``ExchangeUnavailable`` means the outcome is
    unknown (the order may be live), ``ExchangeRejected`` that the exchange refused it on purpose.
    """

    async def wallet_balance(self, creds: Credentials) -> WalletBalance: ...

    async def set_leverage(self, creds: Credentials, category: str, symbol: str, leverage: int) -> None: ...

    async def place_order(self, creds: Credentials, order: OrderRequest) -> str: ...

    async def find_order(
        self, creds: Credentials, category: str, symbol: str, order_link_id: str
    ) -> OrderState | None: ...

    async def recent_orders(self, creds: Credentials, category: str, symbol: str) -> list[OrderState]: ...

    async def cancel_order(self, creds: Credentials, category: str, symbol: str, order_link_id: str) -> None:
        """Cancel an open order; ``ExchangeRejected`` 110001 when it is no longer open (filled, cancelled)."""
        ...

    async def position(self, creds: Credentials, category: str, symbol: str) -> PositionState | None: ...


class HistoryExchange(TradingExchange, Protocol):
    """A trading exchange that also answers for the past: every order and fill of an account since a
    time (all pages), for the reconciliation after a restore."""

    async def order_history(
        self, creds: Credentials, category: str, *, since_ms: int | None, until_ms: int | None = None
    ) -> list[OrderState]:
        """Orders created since ``since_ms`` (None: the exchange's default window, Bybit's last 7 days)."""
        ...

    async def executions(
        self, creds: Credentials, category: str, *, since_ms: int | None, until_ms: int | None = None
    ) -> list[ExecutionState]:
        """Fills since ``since_ms`` (None: the exchange's default window, Bybit's last 7 days)."""
        ...


@dataclass(frozen=True, slots=True)
class KlinesBatch:
    """The outcome of :meth:`MarketData.klines_many`: each symbol's candles or its error."""

    klines: dict[str, Klines] = field(default_factory=dict)
    errors: dict[str, AitradexError] = field(default_factory=dict)


class MarketData(Protocol):
    """Public market data of one environment."""

    async def server_time(self) -> ServerTime: ...

    async def instruments(self, category: str, symbol: str | None = None) -> list[Instrument]: ...

    async def tickers(self, category: str, symbol: str | None = None) -> list[Ticker]: ...

    async def klines(
        self,
        category: str,
        symbol: str,
        interval: str | int,
        limit: int = 200,
        start: int | None = None,
        end: int | None = None,
    ) -> Klines: ...

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
    ) -> KlinesBatch: ...
