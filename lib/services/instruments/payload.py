"""The payload codec: one environment's instrument filters as stored in ``instruments_cache.payload``.

The row holds one entry per exchange environment (testnet and mainnet filters differ, and one entry per
category alone would make two environments evict each other on every call), in this module's own
normalized JSON, not Bybit's raw items::

    {"format": 1,
     "environments": {"paper": {"fetched_at": "<iso>", "expires_at": "<iso>",
                                "instruments": {"ETHBTC": {"status": "Trading", "tick_size": "0.000001",
                                                           "qty_step": "0.1", "min_qty": "1",
                                                           "max_qty": "10000000", "min_notional": "5",
                                                           "max_leverage": "25.00"}}}}}

Numbers are strings, so Decimals survive exactly; ``max_leverage`` is null where the exchange publishes
none. A payload of another shape (or format) is treated as empty and replaced by the next refresh.
Format 2 added ``max_leverage`` (sizing caps leverage to it): a format-1 entry, which lacks it, is
fetched again rather than read as "no maximum".
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from lib.core.instruments import InstrumentFilters
from lib.exchange.models import Instrument
from lib.log import log_event

logger = logging.getLogger("aitradex.instruments")

PAYLOAD_FORMAT = 2
_FILTER_FIELDS = ("tick_size", "qty_step", "min_qty", "max_qty", "min_notional")


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


def as_stale(snapshot: InstrumentsSnapshot) -> InstrumentsSnapshot:
    """The same snapshot, marked as served past its expiry."""
    return replace(snapshot, stale=True)


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
        max_leverage=instrument.max_leverage,
    )


def entry_json(
    filters: Sequence[InstrumentFilters], fetched_at: datetime, expires_at: datetime
) -> dict[str, Any]:
    """One environment's entry as stored (see the module docstring)."""
    return {
        "fetched_at": fetched_at.isoformat(),
        "expires_at": expires_at.isoformat(),
        "instruments": {
            f.symbol: {
                "status": f.status,
                **{name: str(getattr(f, name)) for name in _FILTER_FIELDS},
                "max_leverage": None if f.max_leverage is None else str(f.max_leverage),
            }
            for f in filters
        },
    }


def parse_entry(category: str, environment: str, entry: Any) -> InstrumentsSnapshot | None:
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
                max_leverage=None if item["max_leverage"] is None else Decimal(item["max_leverage"]),
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


def usable_filters(
    instruments: Sequence[Instrument], category: str, environment: str
) -> list[InstrumentFilters]:
    """The filters of every instrument that has sensible ones; each refused listing is logged."""
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
