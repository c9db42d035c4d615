"""Dependencies wired in one place: the database pool, the clock, and named collaborators.

The HTTP adapter, the scheduler, the CLI and the tests all get their ``Services`` from here (tests may
replace any collaborator with a fake before handing the services to a handler).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from lib.app.context import Services
from lib.config import Settings
from lib.core.clock import Clock, SystemClock
from lib.db.session import Database
from lib.db.target import database_target


def _vault(settings: Settings) -> Any:
    from lib.crypto import KeyVault

    return KeyVault(settings.master_keys)


def _paper_url(settings: Settings) -> str | None:
    from lib.local_state import read_services

    url = read_services(settings.state_dir, settings.database.db_name).get("paper_exchange_url")
    return str(url) if url else None


def _exchange(settings: Settings) -> Any:
    from lib.exchange.trading import PybitExchange

    return PybitExchange(paper_url=_paper_url(settings))


def _market(settings: Settings) -> Any:
    from lib.exchange.access import MarketAccess

    return MarketAccess(paper_url=_paper_url(settings))


def _health_cache(_settings: Settings) -> Any:
    from lib.services.diagnostics import HealthCache

    return HealthCache(ttl_s=5.0)


def _account_limiters(_settings: Settings) -> Any:
    # Bybit's 10 orders/s belongs to the account: one limiter per account for the process's lifetime.
    return {}


# Every process gets these collaborators unless the caller supplies its own (a test's fake, say).
DEFAULT_EXTRAS: dict[str, Callable[[Settings], Any]] = {
    "vault": _vault,
    "exchange": _exchange,
    "market": _market,
    "health_cache": _health_cache,
    "account_limiters": _account_limiters,
}


async def open_services(
    settings: Settings,
    *,
    clock: Clock | None = None,
    extras: Mapping[str, Any] | None = None,
    pool_size: int = 10,
) -> Services:
    """Open the database pool and build the services. Close them with :func:`close_services`."""
    db = Database(database_target(settings).app_url, max_size=pool_size)
    await db.open()
    given = dict(extras or {})
    merged = {
        name: given.pop(name) if name in given else make(settings) for name, make in DEFAULT_EXTRAS.items()
    }
    merged.update(given)
    return Services(db=db, settings=settings, clock=clock or SystemClock(), extras=merged)


async def close_services(services: Services) -> None:
    """Release what :func:`open_services` opened."""
    await services.db.close()


def market_now(services: Services) -> Callable[[], Awaitable[datetime]]:
    """Now in market time for the deployment's environment: the paper exchange's replay clock on
    paper (signals made from 2018 candles expire in 2018), the wall clock elsewhere."""
    from lib.app.scheduler import market_clock_for
    from lib.services.instruments_cache import deployment_environment

    async def now() -> datetime:
        environment = await deployment_environment(services.db)
        if environment != "paper":
            return services.clock.now()
        clock = market_clock_for(environment, paper_url=services.get("market").paper_url)
        return datetime.fromtimestamp(await clock.now_ms() / 1000, UTC)

    return now


def executor_deps(services: Services, *, worker: str) -> Any:
    """The executor's dependencies, from the process's services."""
    from lib.services.execution.executor import ExecutorDeps
    from lib.services.instruments_cache import get_filters

    async def filters(category: str, environment: str) -> Any:
        return await get_filters(
            services.db, services.get("market"), category, services.clock, environment=environment
        )

    return ExecutorDeps(
        db=services.db,
        exchange=services.get("exchange"),
        vault=services.get("vault"),
        filters=filters,
        worker=worker,
        account_limiters=services.get("account_limiters"),
        market_now=market_now(services),
    )


def tracker_deps(services: Services) -> Any:
    """The order tracker's dependencies, from the process's services."""
    from lib.services.tracking import TrackerDeps

    return TrackerDeps(db=services.db, exchange=services.get("exchange"), vault=services.get("vault"))
