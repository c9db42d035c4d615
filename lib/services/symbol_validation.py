"""Symbol validation on the shared instruments cache: status, filters, order normalization, suggestions.

The filters come from :mod:`lib.services.instruments.cache` (5-minute TTL, one refresher at a time).
An unknown symbol is ``NotFound`` with the closest listed symbols as ``details.suggestions``. The
``symbol-validator`` function serves the deployment's own environment only (:func:`served_environment`);
the executor, which knows each account's environment, calls :func:`validate_symbol` directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

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
from lib.db.session import Database
from lib.errors import InvalidRequest, NotFound
from lib.services.instruments.cache import deployment_environment, get_snapshot
from lib.services.instruments.memo import PROCESS_MEMO, LocalMemo
from lib.services.instruments.refresh import MarketSource


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
    filters = listed(snapshot.filters, symbol, category=category, environment=environment)
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


def unlisted(symbol: str, listed_symbols: Iterable[str], *, category: str, environment: str) -> NotFound:
    """The error for a symbol ``category`` does not list in ``environment``: a 404 naming the closest
    listed symbols in ``details.suggestions`` (what ``symbol-validator`` answers, and a manual trade)."""
    return NotFound(
        f"{symbol} is not listed in {category} on {environment}",
        details={
            "symbol": symbol,
            "category": category,
            "environment": environment,
            "suggestions": suggest(symbol, listed_symbols),
        },
    )


def listed(
    filters: Mapping[str, InstrumentFilters], symbol: str, *, category: str, environment: str
) -> InstrumentFilters:
    """``symbol``'s filters among ``filters`` (one category of one environment); else :func:`unlisted`."""
    found = filters.get(symbol)
    if found is None:
        raise unlisted(symbol, filters, category=category, environment=environment)
    return found


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
