"""One running paper exchange without its HTTP layer: market data, clock, book, faults and state file.

Every operation first brings the book up to the current replay time (running the candles that completed
since the last call), then acts, then persists what changed. Wall time comes from an injectable clock so
the whole engine can be driven from tests without a server.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from lib.core.timeframes import FIVE_MINUTES_MS
from lib.errors import ConfigError
from lib.log import log_event
from lib.paper_exchange import store
from lib.paper_exchange.book import Book, Fees
from lib.paper_exchange.clock import ReplayClock
from lib.paper_exchange.config import DEFAULT_WARMUP_CANDLES, PaperExchangeConfig
from lib.paper_exchange.faults import FaultInjector
from lib.paper_exchange.instruments import Instrument, derive_instrument
from lib.paper_exchange.market import MarketData, load_market
from lib.paper_exchange.models import Account, BookState, Order
from lib.paper_exchange.order_request import OrderRequest
from lib.paper_exchange.ratelimit import AccountRateLimiter, IpRateLimiter

logger = logging.getLogger("aitradex.paper_exchange")


def wall_clock_ms() -> int:
    """Milliseconds since the epoch, from the system clock."""
    return time.time_ns() // 1_000_000


def _link_orders_by_symbol(book: BookState, account: Account) -> dict[str, int]:
    """The account's orders that carry an ``orderLinkId`` (the ones a client sent), per symbol."""
    counts: dict[str, int] = {}
    for order_id in account.order_ids:
        order = book.orders[order_id]
        if order.order_link_id:
            counts[order.symbol] = counts.get(order.symbol, 0) + 1
    return counts


class PaperEngine:
    """The paper exchange's state and behaviour, driven by the HTTP app (or directly by tests)."""

    def __init__(
        self,
        config: PaperExchangeConfig,
        *,
        market: MarketData | None = None,
        wall_clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self.config = config
        self.market = market if market is not None else load_market(config.data_dir.resolve(), config.symbols)
        self._wall = wall_clock
        first = self.market.first_open_ms
        self.instruments: dict[str, Instrument] = {
            symbol: derive_instrument(
                symbol, self.market.median_close(symbol), self.market.first_open_of(symbol)
            )
            for symbol in self.market.symbols
        }
        saved = store.load(config.state_path) if config.state_path is not None else None
        if saved is not None and config.state_path is not None and not self._fits(saved):
            # A state file of other data (its replay time outside these candles, or positions and
            # orders on symbols no longer served) cannot resume here: it is kept aside, and a new
            # replay starts. Only a local paper exchange's accounts are lost, never a real one's.
            aside = store.set_aside(config.state_path, saved.replay_ms)
            log_event(logger, "paper_state_set_aside", level=logging.WARNING, path=str(aside))
            saved = None
        if saved is not None:
            replay_ms, state = saved.replay_ms, saved.book
        else:
            replay_ms = config.start_time_ms if config.start_time_ms is not None else self.default_start_ms
            state = BookState(processed_until_ms=replay_ms)
        if not first <= replay_ms <= self.market.last_close_ms:
            raise ConfigError(
                f"replay start {replay_ms} is outside the data ({first} to {self.market.last_close_ms})"
            )
        self.clock = ReplayClock(replay_ms, self._wall(), config.speed, first, self.market.last_close_ms)
        self.book = Book(
            state, self.market, self.instruments, Fees(config.taker_fee_rate, config.maker_fee_rate)
        )
        self.faults = FaultInjector(config.seed)
        self.limiter = AccountRateLimiter(config.limits)
        self.ip_limiter = IpRateLimiter(config.limits)
        #: Bybit requests answered (or refused) per path, for ``GET /_paper/stats``.
        self.requests: dict[str, int] = {}
        if saved is None:
            self.save()

    def _fits(self, saved: store.SavedState) -> bool:
        """Whether a saved state belongs to this data: its time inside it, its symbols served."""
        if not self.market.first_open_ms <= saved.replay_ms <= self.market.last_close_ms:
            return False
        symbols = {order.symbol for order in saved.book.orders.values()}
        for account in saved.book.accounts.values():
            symbols.update(account.positions)
        return symbols <= set(self.instruments)

    @property
    def default_start_ms(self) -> int:
        """First candle plus 300 candles of history."""
        return self.market.first_open_ms + DEFAULT_WARMUP_CANDLES * FIVE_MINUTES_MS

    def wall_ms(self) -> int:
        """Wall-clock milliseconds (what Bybit calls server time; the recv window is checked against it)."""
        return self._wall()

    def now_ms(self) -> int:
        """The replay time, after running every candle completed since the last call."""
        t = self.clock.now(self._wall())
        if self.book.process_until(t):
            self.save()
        return t

    def save(self) -> None:
        """Persist the book and the clock (no-op without a state file)."""
        if self.config.state_path is not None:
            snapshot = store.SavedState(book=self.book.state, replay_ms=self.clock.now(self._wall()))
            store.save(self.config.state_path, snapshot)

    def secret_for(self, api_key: str) -> str | None:
        """The API secret of ``api_key`` (for signature checks only)."""
        account = self.book.account_for_key(api_key)
        return account.api_secret if account is not None else None

    # ---------------------------------------------------------------------------------------- controls

    def advance(self, candles: int) -> int:
        """Move the replay ``candles`` candles forward and run them; the new replay time."""
        self.now_ms()
        t = self.clock.advance(candles, self._wall())
        self.book.process_until(t)
        self.save()
        return t

    def set_time(self, time_ms: int) -> int:
        """Jump the replay forward to ``time_ms`` and run the candles in between."""
        self.now_ms()
        t = self.clock.set_time(time_ms, self._wall())
        self.book.process_until(t)
        self.save()
        return t

    def set_speed(self, speed: float) -> None:
        """Change the replay speed (0 freezes it)."""
        self.now_ms()
        self.clock.set_speed(speed, self._wall())
        self.save()

    def clock_view(self) -> dict[str, Any]:
        """The clock as ``GET /_paper/clock`` shows it."""
        t = self.now_ms()
        return {
            "time_ms": t,
            "speed": self.clock.speed,
            "start_ms": self.clock.min_ms,
            "end_ms": self.clock.max_ms,
            "candle_ms": FIVE_MINUTES_MS,
            "at_end": t >= self.clock.max_ms,
        }

    def stats(self) -> dict[str, Any]:
        """The counters ``GET /_paper/stats`` shows (since this exchange started)."""
        book = self.book.state
        return {
            "requests": dict(sorted(self.requests.items())),
            "requests_by_address": dict(sorted(self.ip_limiter.allowed.items())),
            "ip_bans": self.ip_limiter.bans,
            "ip_refused_403": self.ip_limiter.refused,
            "rate_limited_10006": self.limiter.refused,
            "orders_by_account": {
                account_id: _link_orders_by_symbol(book, account)
                for account_id, account in book.accounts.items()
            },
        }

    # ---------------------------------------------------------------------------------------- accounts

    def create_account(self, balance: Decimal) -> Account:
        """A new funded account (the only place its secret is handed out is the caller's answer)."""
        account = self.book.create_account(balance, self.now_ms())
        self.save()
        return account

    # ----------------------------------------------------------------------------------------- trading

    def place_order(self, account: Account, request: OrderRequest) -> Order:
        """Place an order at the current replay time and persist it."""
        order = self.book.place_order(account, request, self.now_ms())
        self.save()
        return order

    def cancel_order(
        self, account: Account, symbol: str, order_id: str | None, order_link_id: str | None
    ) -> Order:
        """Cancel an open order of the account at the current replay time and persist it."""
        order = self.book.cancel_order(account, symbol, order_id, order_link_id, self.now_ms())
        self.save()
        return order

    def set_leverage(self, account: Account, symbol: str, buy: Decimal, sell: Decimal) -> None:
        """Set an account's leverage for ``symbol`` and persist it."""
        self.book.set_leverage(account, symbol, buy, sell, self.now_ms())
        self.save()
