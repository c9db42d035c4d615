"""The shared instruments cache: each category's filters, fetched from the exchange by one caller at a time.

Storage. ``instruments_cache`` holds one row per category (service only; every query here runs as
``service_role``). The row is upserted, never added to, so the table never grows. Its ``payload`` is
this module's own normalized JSON, not Bybit's raw items, one entry per exchange environment (testnet
and mainnet filters differ, and one entry per category alone would make two environments evict each
other on every call)::

    {"format": 1,
     "environments": {"paper": {"fetched_at": "<iso>", "expires_at": "<iso>",
                                "instruments": {"ETHBTC": {"status": "Trading", "tick_size": "0.000001",
                                                           "qty_step": "0.1", "min_qty": "1",
                                                           "max_qty": "10000000", "min_notional": "5"}}}}}

Numbers are strings, so Decimals survive exactly. The row's ``fetched_at``/``expires_at`` columns are
those of the latest refresh of any environment (what ``diagnostics`` reports as the cache's age). A
payload of another shape (or format) is treated as empty and replaced by the next refresh.

Freshness. An entry is fresh until its ``expires_at``: ``fetched_at`` + ``instruments_cache.ttl_seconds``
from ``app_settings`` (300 s; a missing or malformed setting falls back to 300 s and logs an error).
"Now" is the injected clock's, so tests and the diagnostics agree on it.

Refresh, without a thundering herd. Whoever finds the entry missing or expired opens a service-role
write transaction and tries ``pg_try_advisory_xact_lock(hashtext('instruments:<category>:<environment>'))``:

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

In-process memo. Each process also keeps what it read for :data:`LOCAL_TTL_S` seconds (never past the
entry's own expiry). Measured on this machine (2 shared cores, local PostgreSQL, a 600-instrument entry
of 84 kB, about Bybit's linear list): reading and parsing the entry costs 13 ms per call (median of 200;
5 ms of it is turning 600 instruments into Decimals, 0.8 ms an empty transaction), a memo hit under 1 us.
The executor validates a symbol per (signal, user) in a burst, so the memo saves a database round trip
and a 600-element parse on almost every call, for at most 5 s of extra staleness on top of the TTL.
The integration tests pass ``memo=None`` to exercise the shared row itself.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from psycopg import errors as pg_errors
from psycopg.types.json import Jsonb

from lib.core.clock import Clock
from lib.core.instruments import (
    InstrumentFilters,
    Rounding,
    Violation,
    normalize_price,
    normalize_qty,
    status_violation,
    suggest,
    validate_order,
)
from lib.db.session import Caller, Connection, Database
from lib.errors import (
    ExchangeError,
    ExchangeUnavailable,
    InvalidRequest,
    IpBanned,
    NotFound,
    RateLimited,
)
from lib.exchange.models import Instrument
from lib.log import log_event
from lib.stores import settings as settings_store

logger = logging.getLogger(__name__)

PAYLOAD_FORMAT = 1
#: How long a caller with no entry at all waits for the refresher's transaction (PostgreSQL interval).
WAIT_FOR_REFRESH = "20s"
#: How long a process reuses what it read from the shared row (see the module docstring).
LOCAL_TTL_S = 5.0
_FILTER_FIELDS = ("tick_size", "qty_step", "min_qty", "max_qty", "min_notional")


class InstrumentSource(Protocol):
    """What the cache needs from a market-data client (``lib.exchange.market.MarketDataClient``)."""

    async def instruments(self, category: str) -> list[Instrument]: ...


class MarketSource(Protocol):
    """What the cache needs from market access (``lib.exchange.access.MarketAccess``)."""

    def client(self, environment: str) -> AbstractAsyncContextManager[InstrumentSource]: ...


@dataclass(frozen=True, slots=True)
class InstrumentsSnapshot:
    """One category's filters in one environment, as of ``fetched_at``.

    ``stale`` is true when they are served past ``expires_at`` (a refresh is running elsewhere, or the
    exchange failed).
    """

    category: str
    environment: str
    filters: Mapping[str, InstrumentFilters]
    fetched_at: datetime
    expires_at: datetime
    stale: bool = False


class LocalMemo:
    """A process's short-lived copy of snapshots, keyed by (category, environment). Thread-safe."""

    def __init__(self, ttl_s: float = LOCAL_TTL_S) -> None:
        self.ttl = timedelta(seconds=ttl_s)
        self._entries: dict[tuple[str, str], tuple[InstrumentsSnapshot, datetime]] = {}
        self._lock = threading.Lock()

    def get(self, category: str, environment: str, now: datetime) -> InstrumentsSnapshot | None:
        """The snapshot kept for this key, if it is still good at ``now``."""
        with self._lock:
            kept = self._entries.get((category, environment))
        if kept is None or now >= kept[1]:
            return None
        return kept[0]

    def put(self, snapshot: InstrumentsSnapshot, now: datetime) -> None:
        """Keep ``snapshot`` for the memo's TTL, but never past its own expiry unless it is already stale."""
        until = now + self.ttl
        if not snapshot.stale:
            until = min(until, snapshot.expires_at)
        with self._lock:
            self._entries[(snapshot.category, snapshot.environment)] = (snapshot, until)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()


#: The memo every caller in this process shares unless it passes its own (or None).
PROCESS_MEMO = LocalMemo()


# -- payload ---------------------------------------------------------------------------------------


def filters_from_instrument(instrument: Instrument) -> InstrumentFilters:
    """The order filters of a parsed Bybit instrument."""
    return InstrumentFilters(
        symbol=instrument.symbol,
        category=instrument.category,
        status=instrument.status,
        tick_size=instrument.tick_size,
        qty_step=instrument.qty_step,
        min_qty=instrument.min_qty,
        max_qty=instrument.max_qty,
        min_notional=instrument.min_notional,
    )


def _entry_json(
    filters: Sequence[InstrumentFilters], fetched_at: datetime, expires_at: datetime
) -> dict[str, Any]:
    return {
        "fetched_at": fetched_at.isoformat(),
        "expires_at": expires_at.isoformat(),
        "instruments": {
            f.symbol: {"status": f.status, **{name: str(getattr(f, name)) for name in _FILTER_FIELDS}}
            for f in filters
        },
    }


def _parse_entry(category: str, environment: str, entry: Any) -> InstrumentsSnapshot | None:
    """The snapshot stored in ``entry``, or None when it is absent or not in this module's format."""
    if not isinstance(entry, dict):
        return None
    try:
        fetched_at = datetime.fromisoformat(entry["fetched_at"])
        expires_at = datetime.fromisoformat(entry["expires_at"])
        filters = {
            symbol: InstrumentFilters(
                symbol=symbol,
                category=category,
                status=str(item["status"]),
                **{name: Decimal(item[name]) for name in _FILTER_FIELDS},
            )
            for symbol, item in entry["instruments"].items()
        }
    except (KeyError, TypeError, ValueError, AttributeError, InvalidOperation):
        log_event(
            logger,
            "instruments_cache_entry_unreadable",
            level=logging.WARNING,
            category=category,
            environment=environment,
        )
        return None
    return InstrumentsSnapshot(category, environment, filters, fetched_at, expires_at)


def _usable(instruments: Sequence[Instrument], category: str, environment: str) -> list[InstrumentFilters]:
    usable: list[InstrumentFilters] = []
    for instrument in instruments:
        try:
            usable.append(filters_from_instrument(instrument))
        except ValueError:
            # One nonsensical listing (a zero tick, say) must not hide the rest of the category.
            log_event(
                logger,
                "instrument_filters_refused",
                level=logging.WARNING,
                category=category,
                environment=environment,
                symbol=instrument.symbol,
            )
    return usable


# -- database --------------------------------------------------------------------------------------

_READ_ENTRY = (
    "select payload -> 'environments' -> %(environment)s as entry from instruments_cache "
    "where category = %(category)s and payload ->> 'format' = %(format)s"
)

_UPSERT = """
insert into instruments_cache as c (category, payload, fetched_at, expires_at)
values (%(category)s,
        jsonb_build_object('format', %(format_n)s::int,
                           'environments', jsonb_build_object(%(environment)s::text, %(entry)s::jsonb)),
        %(fetched_at)s, %(expires_at)s)
on conflict (category) do update set
  payload = case
    when c.payload ->> 'format' = %(format)s and jsonb_typeof(c.payload -> 'environments') = 'object'
      then jsonb_set(c.payload, array['environments', %(environment)s::text], %(entry)s::jsonb)
    else excluded.payload
  end,
  fetched_at = excluded.fetched_at,
  expires_at = excluded.expires_at
"""


async def _read_entry(conn: Connection, category: str, environment: str) -> InstrumentsSnapshot | None:
    params = {"category": category, "environment": environment, "format": str(PAYLOAD_FORMAT)}
    row = await (await conn.execute(_READ_ENTRY, params)).fetchone()
    return None if row is None else _parse_entry(category, environment, row["entry"])


def _lock_key(category: str, environment: str) -> str:
    return f"instruments:{category}:{environment}"


async def deployment_environment(db: Database) -> str:
    """The exchange environment this deployment reads market data from (``exchange.environment``)."""
    return await settings_store.environment(db)


# -- the cache -------------------------------------------------------------------------------------


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

    See the module docstring for freshness, the single refresher and failures. Raises
    ``ExchangeUnavailable`` (retryable) when there is nothing cached and the exchange cannot answer.
    """
    now = clock.now()
    if memo is not None and (kept := memo.get(category, environment, now)) is not None:
        return kept
    async with db.read(Caller.service()) as conn:
        entry = await _read_entry(conn, category, environment)
    if entry is not None and now < entry.expires_at:
        snapshot = entry
    else:
        snapshot = await _refresh(db, market, category, environment, clock, expired=entry)
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


def _stale(snapshot: InstrumentsSnapshot) -> InstrumentsSnapshot:
    return InstrumentsSnapshot(
        snapshot.category,
        snapshot.environment,
        snapshot.filters,
        snapshot.fetched_at,
        snapshot.expires_at,
        stale=True,
    )


async def _refresh(
    db: Database,
    market: MarketSource,
    category: str,
    environment: str,
    clock: Clock,
    *,
    expired: InstrumentsSnapshot | None,
) -> InstrumentsSnapshot:
    key = _lock_key(category, environment)
    facts: dict[str, Any] = {"category": category, "environment": environment}
    async with db.write(Caller.service()) as conn:
        row = await (
            await conn.execute("select pg_try_advisory_xact_lock(hashtext(%s)) as won", (key,))
        ).fetchone()
        won = bool(row and row["won"])
        if not won:
            if expired is not None:
                return _stale(expired)
            await _wait_for_refresher(conn, key, facts)
        # Under the lock: whoever held it before may have just refreshed the entry.
        current = await _read_entry(conn, category, environment)
        if current is not None and clock.now() < current.expires_at:
            return current
        if not won:
            # The refresher we waited for stored nothing fresh: its fetch failed. Another attempt now
            # would most likely fail the same way, so answer as it did instead of queueing one more.
            if current is not None:
                return _stale(current)
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
                return _stale(fallback)
            if not isinstance(error, ExchangeUnavailable | RateLimited | IpBanned):
                raise  # refused on purpose, or an answer not understood: retrying will not help
            raise ExchangeUnavailable(
                f"the {category} instrument filters are not cached and the exchange did not answer",
                details={**facts, "cause": error.code},
            ) from error
        filters = _usable(instruments, category, environment)
        fetched_at = clock.now()
        expires_at = fetched_at + ttl
        await conn.execute(
            _UPSERT,
            {
                "category": category,
                "environment": environment,
                "format": str(PAYLOAD_FORMAT),
                "format_n": PAYLOAD_FORMAT,
                "entry": Jsonb(_entry_json(filters, fetched_at, expires_at)),
                "fetched_at": fetched_at,
                "expires_at": expires_at,
            },
        )
        log_event(logger, "instruments_cache_refreshed", **facts, instruments=len(filters))
        return InstrumentsSnapshot(
            category, environment, {f.symbol: f for f in filters}, fetched_at, expires_at
        )


async def _wait_for_refresher(conn: Connection, key: str, facts: Mapping[str, Any]) -> None:
    """Block until the refresher's transaction ends (and take the lock), or raise ExchangeUnavailable."""
    await conn.execute("select set_config('lock_timeout', %s, true)", (WAIT_FOR_REFRESH,))
    try:
        await conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (key,))
    except pg_errors.LockNotAvailable:
        raise ExchangeUnavailable(
            f"the {facts['category']} instrument filters are still being fetched; try again shortly",
            details=dict(facts),
        ) from None


# -- validation ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SymbolValidation:
    """A symbol's filters and, when an order was given, that order normalized and checked.

    ``normalized_qty`` is the quantity rounded down to the step, ``normalized_price`` the price rounded to
    the tick (as ``price_rounding`` asked); ``violations`` are what the NORMALIZED order still breaks
    (normalization cannot fix a size below the minimum or a halted symbol). ``ok``: the symbol trades and
    nothing is violated.
    """

    filters: InstrumentFilters
    environment: str
    normalized_qty: Decimal | None
    normalized_price: Decimal | None
    notional: Decimal | None
    violations: tuple[Violation, ...]
    fetched_at: datetime
    stale: bool

    @property
    def ok(self) -> bool:
        """Whether an order as normalized would pass the exchange's filters."""
        return self.filters.is_trading and not self.violations


async def validate_symbol(
    db: Database,
    market: MarketSource,
    clock: Clock,
    *,
    symbol: str,
    environment: str,
    category: str = "linear",
    qty: Decimal | None = None,
    price: Decimal | None = None,
    price_rounding: Rounding = "nearest",
    memo: LocalMemo | None = PROCESS_MEMO,
) -> SymbolValidation:
    """Look ``symbol`` up in the shared cache; normalize and check the order ``qty`` at ``price`` if given.

    Raises ``NotFound`` (``details.suggestions``: the closest listed symbols) for a symbol the category
    does not list, ``ExchangeUnavailable`` when nothing is cached and the exchange cannot answer.
    A ``qty`` or ``price`` that is not positive is the caller's mistake: ``InvalidRequest``.
    """
    for name, value in (("qty", qty), ("price", price)):
        if value is not None and not (value.is_finite() and value > 0):
            raise InvalidRequest(f"{name} must be a positive number", details={"field": name})
    snapshot = await get_snapshot(db, market, category, clock, environment=environment, memo=memo)
    filters = snapshot.filters.get(symbol)
    if filters is None:
        raise NotFound(
            f"{symbol} is not listed in {category} on {environment}",
            details={
                "symbol": symbol,
                "category": category,
                "environment": environment,
                "suggestions": suggest(symbol, snapshot.filters),
            },
        )
    normalized_qty = None if qty is None else normalize_qty(qty, filters)
    normalized_price = None if price is None else normalize_price(price, filters, price_rounding)
    if normalized_qty is not None:
        violations = validate_order(normalized_qty, normalized_price, filters)
    else:
        status = status_violation(filters)
        violations = [] if status is None else [status]
    notional = None
    if normalized_qty is not None and normalized_price is not None:
        notional = normalized_qty * normalized_price
    return SymbolValidation(
        filters=filters,
        environment=environment,
        normalized_qty=normalized_qty,
        normalized_price=normalized_price,
        notional=notional,
        violations=tuple(violations),
        fetched_at=snapshot.fetched_at,
        stale=snapshot.stale,
    )


async def served_environment(db: Database, requested: str | None) -> str:
    """The environment a public caller gets: the deployment's own; asking for another is refused.

    The shared cache is the deployment's: letting anonymous callers pick any environment would let them
    spend this IP's exchange budget on fetches nobody else needs. The executor, which knows each account's
    environment, calls :func:`validate_symbol` directly.
    """
    served = await deployment_environment(db)
    if requested is not None and requested != served:
        raise InvalidRequest(
            f"this deployment validates symbols on {served} only",
            details={"environment": requested, "served": served},
        )
    return served
