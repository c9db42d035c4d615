"""The shared instruments cache: each category's filters, fetched from the exchange by one caller at a time.

``instruments_cache`` holds one row per category (service only; every query runs as ``service_role``),
with one entry per exchange environment (:mod:`lib.services.instruments.payload`).

Freshness. An entry is fresh until its ``expires_at``: ``fetched_at`` + ``instruments_cache.ttl_seconds``
from ``app_settings`` (300 s; a missing or malformed setting falls back to 300 s and logs an error).
"Now" is the injected clock's, so tests and the diagnostics agree on it. A missing or expired entry is
refreshed by a single caller while the others serve the expired one (:mod:`lib.services.instruments.refresh`),
and each process keeps what it read for a few seconds (:mod:`lib.services.instruments.memo`).
"""

from __future__ import annotations

from lib.core.clock import Clock
from lib.core.instruments import InstrumentFilters
from lib.db.session import Caller, Database
from lib.services.instruments.memo import PROCESS_MEMO, LocalMemo
from lib.services.instruments.payload import InstrumentsSnapshot
from lib.services.instruments.refresh import MarketSource, read_entry, refresh
from lib.stores import settings as settings_store


async def deployment_environment(db: Database) -> str:
    """The exchange environment this deployment reads market data from (``exchange.environment``)."""
    return await settings_store.environment(db)


async def get_snapshot(
    db: Database,
    market: MarketSource,
    category: str,
    clock: Clock,
    *,
    environment: str,
    memo: LocalMemo | None = PROCESS_MEMO,
) -> InstrumentsSnapshot:
    """The filters of every symbol of ``category`` in ``environment``, from the cache or the exchange.

    See the module docstrings for freshness, the single refresher and failures. Raises
    ``ExchangeUnavailable`` (retryable) when there is nothing cached and the exchange cannot answer.
    """
    now = clock.now()
    if memo is not None and (kept := memo.get(category, environment, now)) is not None:
        return kept
    async with db.read(Caller.service()) as conn:
        entry = await read_entry(conn, category, environment)
    if entry is not None and now < entry.expires_at:
        snapshot = entry
    else:
        snapshot = await refresh(db, market, category, environment, clock, expired=entry)
    if memo is not None:
        memo.put(snapshot, clock.now())
    return snapshot


async def get_filters(
    db: Database,
    market: MarketSource,
    category: str,
    clock: Clock,
    *,
    environment: str,
    memo: LocalMemo | None = PROCESS_MEMO,
) -> dict[str, InstrumentFilters]:
    """Symbol -> filters for ``category`` in ``environment``; :func:`get_snapshot` without the metadata."""
    snapshot = await get_snapshot(db, market, category, clock, environment=environment, memo=memo)
    return dict(snapshot.filters)
