"""The context every handler receives: who calls, and the dependencies wired at startup.

Handlers never build their own database pool, exchange client or clock: the adapter (or the
scheduler, or a test) passes them in here. Tests swap fakes in through :func:`lib.app.wiring.open_services`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from lib.config import Settings
from lib.core.clock import Clock
from lib.crypto import KeyVault
from lib.db.session import Caller, Database
from lib.errors import Forbidden
from lib.exchange.access import MarketAccess
from lib.exchange.ports import TradingExchange
from lib.services.diagnostics import HealthCache
from lib.services.execution.caches import WalletCache


@dataclass(frozen=True)
class Services:
    """Long-lived dependencies, created once per process by :func:`lib.app.wiring.open_services`."""

    db: Database
    settings: Settings
    clock: Clock
    vault: KeyVault
    #: Signed trading calls (pybit against Bybit or the paper exchange).
    exchange: TradingExchange
    #: Public market data, behind the process's one IP rate limiter.
    market: MarketAccess
    #: The anonymous diagnostics summary, shared for a few seconds.
    health_cache: HealthCache
    #: Each account's wallet for a few seconds, shared by the executor and the tracker of the process.
    wallets: WalletCache = field(default_factory=WalletCache)


@dataclass(frozen=True)
class Context:
    """One call's context: the caller, the request id, and the services."""

    caller: Caller
    services: Services
    request_id: str
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("aitradex.functions"))

    @property
    def db(self) -> Database:
        """The process's database pool."""
        return self.services.db

    @property
    def clock(self) -> Clock:
        """The process's clock."""
        return self.services.clock

    def require_user_id(self) -> str:
        """The calling user's id. Raises Forbidden when the caller is not a signed-in user."""
        user_id = self.caller.user_id
        if user_id is None:
            raise Forbidden("this action needs a signed-in user's token")
        return user_id
