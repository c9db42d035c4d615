"""Dependencies wired in one place: the database pool, the clock, the vault and the exchange clients.

The HTTP adapter, the scheduler, the CLI and the tests all get their ``Services`` from here; a test
passes its own collaborator (a fake exchange, a paper-exchange client) to :func:`open_services`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
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
from lib.exchange.rate_limit import RateLimiter
from lib.exchange.trading import PybitExchange
from lib.local_state import recorded_paper_url
from lib.services.diagnostics import HealthCache
from lib.services.execution.deps import ExecutorDeps
from lib.services.instruments.cache import deployment_environment, get_filters
from lib.services.key_health import master_key_source
from lib.services.tracking import TrackerDeps


def exchange_clients(
    settings: Settings,
    *,
    paper_url: str | None,
    limiter: RateLimiter | None = None,
    endpoints: Mapping[str, str] | None = None,
) -> tuple[MarketAccess, PybitExchange]:
    """This process's market-data access and trading client: one IP budget (``limiter``, default the
    deployment's share) for both, since Bybit counts market and signed calls against the same IP, and
    both sent from the host's own address (``AITRADEX_SOURCE_ADDRESS``)."""
    address = settings.exchange.source_address
    market = MarketAccess(paper_url=paper_url, limiter=limiter or RateLimiter(), source_address=address)
    exchange = PybitExchange(
        paper_url=paper_url, endpoints=endpoints, limiter=market.limiter, source_address=address
    )
    return market, exchange


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
    paper_url = None
    if exchange is None or market is None:
        paper_url = recorded_paper_url(settings.state_dir, settings.database.db_name)
    default_market, default_exchange = exchange_clients(settings, paper_url=paper_url)
    market = market or default_market
    return Services(
        db=db,
        settings=settings,
        clock=clock or SystemClock(),
        # Reads the keys again on a version it does not hold: `aitradex keys rotate` needs no restart.
        vault=vault or KeyVault(settings.master_keys, reload=master_key_source(settings.state_dir)),
        exchange=exchange or default_exchange,
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
        # The process's one IP budget (market and trading calls): shards are left to hosts with more.
        ip_wait=services.market.limiter.seconds_until,
    )


def tracker_deps(services: Services) -> TrackerDeps:
    """The order tracker's dependencies, from the process's services."""
    return TrackerDeps(
        db=services.db, exchange=services.exchange, vault=services.vault, wallets=services.wallets
    )
