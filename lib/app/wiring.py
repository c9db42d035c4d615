"""Dependencies wired in one place: the database pool, the clock, the vault and the exchange clients.

The HTTP adapter, the scheduler, the CLI and the tests all get their ``Services`` from here; a test
passes its own collaborator (a fake exchange, a paper-exchange client) to :func:`open_services`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from lib.app.context import Services
from lib.config import Settings
from lib.core.clock import Clock, SystemClock
from lib.core.instruments import InstrumentFilters
from lib.crypto import KeyVault
from lib.db.target import database_target
from lib.exchange.access import MarketAccess
from lib.exchange.market_clock import market_clock_for
from lib.exchange.ports import TradingExchange
from lib.exchange.trading import PybitExchange
from lib.local_state import read_services
from lib.services.diagnostics import HealthCache
from lib.services.execution.deps import ExecutorDeps
from lib.services.instruments.cache import deployment_environment, get_filters
from lib.services.key_health import master_key_source
from lib.services.tracking import TrackerDeps


def _paper_url(settings: Settings) -> str | None:
    url = read_services(settings.state_dir, settings.database.db_name).get("paper_exchange_url")
    return str(url) if url else None


async def open_services(
    settings: Settings,
    *,
    clock: Clock | None = None,
    exchange: TradingExchange | None = None,
    market: MarketAccess | None = None,
    vault: KeyVault | None = None,
    pool_size: int | None = None,
) -> Services:
    """Open the database pool and build the services; any collaborator given replaces the default.

    The defaults reach the exchange the local stack's paper exchange runs at (``stack.json``), or Bybit.
    Close them with :func:`close_services`.
    """
    db = database_target(settings).database(max_size=pool_size or settings.database.pool_size)
    await db.open()
    paper_url = _paper_url(settings) if exchange is None or market is None else None
    source_address = settings.exchange.source_address
    market = market or MarketAccess(paper_url=paper_url, source_address=source_address)
    return Services(
        db=db,
        settings=settings,
        clock=clock or SystemClock(),
        # Reads the keys again on a version it does not hold: `aitradex keys rotate` needs no restart.
        vault=vault or KeyVault(settings.master_keys, reload=master_key_source(settings.state_dir)),
        # One IP budget for the process: Bybit counts signed and market calls against the same IP.
        exchange=exchange
        or PybitExchange(paper_url=paper_url, limiter=market.limiter, source_address=source_address),
        market=market,
        health_cache=HealthCache(ttl_s=5.0),
    )


async def close_services(services: Services) -> None:
    """Release what :func:`open_services` opened."""
    await services.db.close()


def market_now(services: Services) -> Callable[[], Awaitable[datetime]]:
    """Now in market time for the deployment's environment: the paper exchange's replay clock on
    paper (signals made from 2018 candles expire in 2018), the wall clock elsewhere."""

    async def now() -> datetime:
        environment = await deployment_environment(services.db)
        if environment != "paper":
            return services.clock.now()
        clock = market_clock_for(environment, paper_url=services.market.paper_url)
        return datetime.fromtimestamp(await clock.now_ms() / 1000, UTC)

    return now


def executor_deps(services: Services, *, worker: str) -> ExecutorDeps:
    """The executor's dependencies, from the process's services."""

    async def filters(category: str, environment: str) -> dict[str, InstrumentFilters]:
        return await get_filters(
            services.db, services.market, category, services.clock, environment=environment
        )

    return ExecutorDeps(
        db=services.db,
        exchange=services.exchange,
        vault=services.vault,
        filters=filters,
        worker=worker,
        wallets=services.wallets,
        market_now=market_now(services),
    )


def tracker_deps(services: Services) -> TrackerDeps:
    """The order tracker's dependencies, from the process's services."""
    return TrackerDeps(
        db=services.db, exchange=services.exchange, vault=services.vault, wallets=services.wallets
    )
