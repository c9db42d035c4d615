"""Refreshing an entry from the exchange, one caller at a time, serving stale filters rather than none.

Whoever finds the entry missing or expired opens a service-role write transaction and tries the entry's
advisory lock (``pg_try_advisory_xact_lock(hashtext('instruments:<category>:<environment>'))``):

- the winner re-reads the entry under the lock (another process may have refreshed it a moment ago;
  then it is used as is), otherwise fetches the category from the exchange
  (``MarketDataClient.instruments``, all pages) and upserts the row in the same transaction; the lock is
  released at commit, so whoever takes it next sees the new entry;
- a loser with an expired entry answers from that entry at once (marked ``stale``): a few seconds of
  staleness beats waiting on the exchange;
- a loser with no entry at all has nothing to answer from, so it waits on the lock (at most
  :data:`WAIT_FOR_REFRESH`, ``lock_timeout``) and then reads what the winner stored. If the winner stored
  nothing (its fetch failed), the waiter does not queue yet another fetch: it raises
  ``ExchangeUnavailable`` (retryable), as the winner did.

So however many callers, in however many processes, one fetch per (category, environment) is in flight.
The winner holds one pooled connection for the length of the fetch; waiters hold one each while they wait.

Exchange failures. With an expired entry the stale filters are served and the failure is logged
(``instruments_cache_serving_stale``, warning); filters rarely change, and refusing every order because
Bybit hiccuped would be worse. With no entry: ``ExchangeUnavailable`` (retryable) for a timeout, 5xx,
rate limit or ban; any other exchange error (``ExchangeRejected``, e.g. a category the exchange does not
list, or an answer this client does not understand) is raised as it is: retrying would not help.
"""

from __future__ import annotations

import logging
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from lib.core.clock import Clock
from lib.db.session import Caller, Connection, Database
from lib.errors import ExchangeError, ExchangeUnavailable, IpBanned, RateLimited
from lib.exchange.models import Instrument
from lib.log import log_event
from lib.services.instruments.payload import (
    PAYLOAD_FORMAT,
    InstrumentsSnapshot,
    as_stale,
    entry_json,
    parse_entry,
    usable_filters,
)
from lib.stores import instruments_cache as cache_store
from lib.stores import settings as settings_store

logger = logging.getLogger("aitradex.instruments")

#: How long a caller with no entry at all waits for the refresher's transaction (PostgreSQL interval).
WAIT_FOR_REFRESH = "20s"


class InstrumentSource(Protocol):
    """What the cache needs from a market-data client (``lib.exchange.market.MarketDataClient``)."""

    async def instruments(self, category: str) -> list[Instrument]: ...


class MarketSource(Protocol):
    """What the cache needs from market access (``lib.exchange.access.MarketAccess``)."""

    def client(self, environment: str) -> AbstractAsyncContextManager[InstrumentSource]: ...


async def read_entry(conn: Connection, category: str, environment: str) -> InstrumentsSnapshot | None:
    """The stored snapshot of (category, environment), or None when there is none in this format."""
    entry = await cache_store.read_entry(conn, category, environment, PAYLOAD_FORMAT)
    return None if entry is None else parse_entry(category, environment, entry)


async def refresh(
    db: Database,
    market: MarketSource,
    category: str,
    environment: str,
    clock: Clock,
    *,
    expired: InstrumentsSnapshot | None,
) -> InstrumentsSnapshot:
    """A fresh snapshot, or what the module docstring says instead; ``expired`` is what the caller read."""
    facts: dict[str, Any] = {"category": category, "environment": environment}
    async with db.write(Caller.service()) as conn:
        won = await cache_store.try_refresh_lock(conn, category, environment)
        if not won:
            if expired is not None:
                return as_stale(expired)
            if not await cache_store.wait_refresh_lock(conn, category, environment, WAIT_FOR_REFRESH):
                raise ExchangeUnavailable(
                    f"the {category} instrument filters are still being fetched; try again shortly",
                    details=dict(facts),
                )
        # Under the lock: whoever held it before may have just refreshed the entry.
        current = await read_entry(conn, category, environment)
        if current is not None and clock.now() < current.expires_at:
            return current
        if not won:
            # The refresher we waited for stored nothing fresh: its fetch failed. Another attempt now
            # would most likely fail the same way, so answer as it did instead of queueing one more.
            if current is not None:
                return as_stale(current)
            raise ExchangeUnavailable(
                f"the {category} instrument filters could not be fetched just now; try again shortly",
                details=dict(facts),
            )
        ttl = await settings_store.instruments_cache_ttl(conn)
        try:
            async with market.client(environment) as client:
                instruments = await client.instruments(category)
        except ExchangeError as error:
            fallback = current or expired
            if fallback is not None:
                log_event(
                    logger,
                    "instruments_cache_serving_stale",
                    level=logging.WARNING,
                    **facts,
                    error=error.code,
                    fetched_at=fallback.fetched_at.isoformat(),
                )
                return as_stale(fallback)
            if not isinstance(error, ExchangeUnavailable | RateLimited | IpBanned):
                raise  # refused on purpose, or an answer not understood: retrying will not help
            raise ExchangeUnavailable(
                f"the {category} instrument filters are not cached and the exchange did not answer",
                details={**facts, "cause": error.code},
            ) from error
        filters = usable_filters(instruments, category, environment)
        fetched_at = clock.now()
        expires_at = fetched_at + ttl
        await cache_store.upsert_entry(
            conn,
            category,
            environment,
            PAYLOAD_FORMAT,
            entry_json(filters, fetched_at, expires_at),
            fetched_at=fetched_at,
            expires_at=expires_at,
        )
        log_event(logger, "instruments_cache_refreshed", **facts, instruments=len(filters))
        return InstrumentsSnapshot(
            category, environment, {f.symbol: f for f in filters}, fetched_at, expires_at
        )
