"""Which symbols a scan considers: ``scanner.universe`` applied to the exchange's tickers. Pure.

The filters, all from ``app_settings`` (``scanner.universe``):

- ``category``: the Bybit category whose tickers and klines are read (``linear`` by default);
- ``quote_coins``: keep only instruments quoted in one of these (empty: every quote coin);
- ``min_turnover_24h``: keep only tickers whose 24-hour turnover (in quote coin) reaches this floor;
- ``symbol_blocklist``: never these symbols;
- ``max_symbols``: at most this many, the most traded first (turnover, then name for a stable order).

Instruments (``instruments-info``) are consulted for the quote coin and the trading status: a ticker of
an instrument that is not ``Trading`` (pre-launch, delivering, closed) is left out, since nothing scored
on it could be executed.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lib.errors import ConfigError
from lib.exchange.models import Instrument, Ticker

CATEGORIES = ("spot", "linear", "inverse")
MAX_SYMBOLS_CAP = 1000


@dataclass(frozen=True, slots=True)
class UniverseFilter:
    """The ``scanner.universe`` setting, validated."""

    category: str = "linear"
    max_symbols: int = 500
    min_turnover_24h: float = 0.0
    quote_coins: frozenset[str] = frozenset()
    symbol_blocklist: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ConfigError(f"scanner.universe.category must be one of {CATEGORIES}, got {self.category!r}")
        if not 1 <= self.max_symbols <= MAX_SYMBOLS_CAP:
            raise ConfigError(f"scanner.universe.max_symbols must be 1..{MAX_SYMBOLS_CAP}")
        if not math.isfinite(self.min_turnover_24h) or self.min_turnover_24h < 0:
            raise ConfigError("scanner.universe.min_turnover_24h must be a number >= 0")

    @classmethod
    def from_setting(cls, value: Mapping[str, Any]) -> UniverseFilter:
        """Parse the JSON value of ``scanner.universe``; unknown keys or wrong types raise ConfigError."""
        if not isinstance(value, Mapping):
            raise ConfigError("scanner.universe must be a JSON object")
        known = {"category", "max_symbols", "min_turnover_24h", "quote_coins", "symbol_blocklist"}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ConfigError(f"scanner.universe has unknown keys: {unknown}")
        try:
            return cls(
                category=str(value.get("category", "linear")),
                max_symbols=_integer(value.get("max_symbols", 500)),
                min_turnover_24h=float(value.get("min_turnover_24h", 0)),
                quote_coins=_names(value.get("quote_coins", [])),
                symbol_blocklist=_names(value.get("symbol_blocklist", [])),
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"scanner.universe is malformed: {exc}") from None


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise ValueError(f"expected an integer, got {value!r}")
    return int(value)


def _names(value: Any) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"expected a list of names, got {value!r}")
    return frozenset(item.upper() for item in value)


@dataclass(frozen=True, slots=True)
class UniverseSelection:
    """The chosen symbols (most traded first), how many tickers were seen, and why the rest were left out."""

    symbols: tuple[str, ...]
    considered: int
    excluded: Mapping[str, int]


def select_universe(
    tickers: Sequence[Ticker],
    instruments: Iterable[Instrument] | None,
    rules: UniverseFilter,
    *,
    max_symbols: int | None = None,
) -> UniverseSelection:
    """Apply ``rules`` to ``tickers``; ``max_symbols`` (a request's override) replaces the setting's cap.

    ``instruments`` of the same category give the quote coin and status; without them (``None``) only
    the ticker-based filters apply and ``quote_coins`` cannot be honoured, so it must then be empty.
    """
    if instruments is None and rules.quote_coins:
        raise ConfigError("a quote coin filter needs the instruments (instruments-info)")
    by_symbol = None if instruments is None else {i.symbol: i for i in instruments}
    excluded: Counter[str] = Counter()
    kept: list[Ticker] = []
    seen: set[str] = set()
    for ticker in tickers:
        reason = _exclusion(ticker, by_symbol, rules)
        if reason is None and ticker.symbol in seen:
            reason = "duplicate"
        if reason is not None:
            excluded[reason] += 1
            continue
        seen.add(ticker.symbol)
        kept.append(ticker)
    kept.sort(key=lambda t: (-t.turnover_24h, t.symbol))
    cap = rules.max_symbols if max_symbols is None else max_symbols
    if len(kept) > cap:
        excluded["over_cap"] += len(kept) - cap
    return UniverseSelection(
        symbols=tuple(t.symbol for t in kept[:cap]), considered=len(tickers), excluded=dict(excluded)
    )


def _exclusion(
    ticker: Ticker, instruments: Mapping[str, Instrument] | None, rules: UniverseFilter
) -> str | None:
    if ticker.symbol.upper() in rules.symbol_blocklist:
        return "blocklisted"
    if instruments is not None:
        instrument = instruments.get(ticker.symbol)
        if instrument is None:
            return "no_instrument"
        if not instrument.is_trading:
            return "not_trading"
        if rules.quote_coins and instrument.quote.upper() not in rules.quote_coins:
            return "quote_coin"
    if not (math.isfinite(ticker.last_price) and ticker.last_price > 0):
        return "no_price"
    turnover = ticker.turnover_24h
    if not math.isfinite(turnover) or turnover < rules.min_turnover_24h:
        return "low_turnover"
    return None
