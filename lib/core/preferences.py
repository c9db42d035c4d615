"""A user's trading preferences and their defaults: the one Python home of those defaults.

The ``trading_preferences`` table declares the same defaults as column DEFAULTs (a migration, never
edited once applied); ``tests/integration/test_preference_defaults.py`` reads them from the database
and checks they equal :data:`DEFAULT_PREFERENCES`, so the two cannot drift. The store answers these
defaults for a user who never saved preferences, and the executor sizes a manual trade with them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal

from lib.core.vocabulary import Algorithm, Timeframe


@dataclass(frozen=True, slots=True)
class TradingPreferences:
    """One user's preferences, each field a ``trading_preferences`` column with its default."""

    auto_trade_enabled: bool = False
    algorithms: tuple[Algorithm, ...] = ("unirail_core",)
    timeframes: tuple[Timeframe, ...] = ("15", "60")
    min_score: Decimal = Decimal(80)
    risk_per_trade_pct: Decimal = Decimal(1)
    max_position_usd: Decimal = Decimal(1000)
    leverage: int = 1
    max_open_positions: int = 5
    daily_loss_limit_pct: Decimal = Decimal(5)
    symbol_allowlist: tuple[str, ...] = ()
    symbol_blocklist: tuple[str, ...] = ()


#: The preferences of a user who never saved any.
DEFAULT_PREFERENCES = TradingPreferences()

#: The preference columns, in the table's order.
PREFERENCE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(TradingPreferences))
