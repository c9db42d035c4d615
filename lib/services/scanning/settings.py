"""The scanner's part of ``app_settings``: the keys, their defaults (the seed's) and their validation."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lib.core.timeframes import TIMEFRAMES
from lib.core.vocabulary import ALGORITHMS, ENVIRONMENTS
from lib.db.session import Database
from lib.errors import ConfigError
from lib.exchange.rate_limit import DEFAULT_SHARE
from lib.services.scanning.universe import UniverseFilter
from lib.stores import settings as settings_store

#: Closed bars a symbol needs: the slowest feature, SMA200, has its first value on bar 200.
MIN_BARS = 200

SETTING_KEYS: tuple[str, ...] = (
    "scanner.threshold",
    "scanner.threshold_by_algorithm",
    "scanner.timeframes",
    "scanner.algorithms",
    "scanner.universe",
    "scanner.kline_limit",
    "scanner.signal_ttl_bars",
    "exchange.environment",
    "exchange.rate_limit_share",
)


@dataclass(frozen=True, slots=True)
class ScanSettings:
    """The scanner's part of ``app_settings``, validated (defaults are the seed's)."""

    threshold: float = 80.0
    # Per-algorithm overrides of ``threshold``: a calibrated probability needs its own bar (see README).
    threshold_by_algorithm: Mapping[str, float] = field(default_factory=dict)
    timeframes: tuple[str, ...] = ("5", "15", "60")
    algorithms: tuple[str, ...] = ("unirail_core", "quantum_ai")
    universe: UniverseFilter = field(default_factory=UniverseFilter)
    kline_limit: int = 300
    signal_ttl_bars: int = 3
    environment: str = "paper"
    rate_limit_share: float | None = DEFAULT_SHARE

    def __post_init__(self) -> None:
        if not 0 <= self.threshold <= 100:
            raise ConfigError(f"scanner.threshold must be 0..100, got {self.threshold}")
        for algorithm, value in self.threshold_by_algorithm.items():
            if algorithm not in ALGORITHMS or not 0 <= value <= 100:
                raise ConfigError(f"scanner.threshold_by_algorithm: {algorithm!r} -> {value} is not allowed")
        if not set(self.timeframes) <= set(TIMEFRAMES):
            raise ConfigError(f"scanner.timeframes holds an unknown interval: {list(self.timeframes)}")
        if not self.algorithms or not set(self.algorithms) <= set(ALGORITHMS):
            raise ConfigError(f"scanner.algorithms must be a non-empty subset of {ALGORITHMS}")
        # One bar more than needed: the newest kline is usually the candle in progress, dropped.
        if not MIN_BARS + 1 <= self.kline_limit <= 1000:
            raise ConfigError(f"scanner.kline_limit must be {MIN_BARS + 1}..1000, got {self.kline_limit}")
        if not 1 <= self.signal_ttl_bars <= 1000:
            raise ConfigError(f"scanner.signal_ttl_bars must be 1..1000, got {self.signal_ttl_bars}")
        if self.environment not in ENVIRONMENTS:
            raise ConfigError(f"exchange.environment must be one of {ENVIRONMENTS}, got {self.environment!r}")
        if self.rate_limit_share is not None and not 0 < self.rate_limit_share <= 1:
            raise ConfigError(f"exchange.rate_limit_share must be in (0, 1], got {self.rate_limit_share}")

    def threshold_for(self, algorithm: str) -> float:
        """The minimum score stored for ``algorithm``: its override, else ``scanner.threshold``."""
        return self.threshold_by_algorithm.get(algorithm, self.threshold)

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> ScanSettings:
        """Build from ``{key: json value}`` of ``app_settings``; a missing key keeps its default."""
        base = cls()
        try:
            share = values.get("exchange.rate_limit_share", base.rate_limit_share)
            return cls(
                threshold=_number(values.get("scanner.threshold", base.threshold)),
                threshold_by_algorithm={
                    str(k): _number(v)
                    for k, v in dict(values.get("scanner.threshold_by_algorithm") or {}).items()
                },
                timeframes=_strings(values.get("scanner.timeframes", list(base.timeframes))),
                algorithms=_strings(values.get("scanner.algorithms", list(base.algorithms))),
                universe=UniverseFilter.from_setting(values.get("scanner.universe", {})),
                kline_limit=int(_number(values.get("scanner.kline_limit", base.kline_limit))),
                signal_ttl_bars=int(_number(values.get("scanner.signal_ttl_bars", base.signal_ttl_bars))),
                environment=str(values.get("exchange.environment", base.environment)),
                rate_limit_share=None if share is None else _number(share),
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"a scanner setting is malformed: {exc}") from None


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"expected a list of strings, got {value!r}")
    return tuple(value)


async def load_scan_settings(db: Database) -> ScanSettings:
    """Read the scanner's settings from ``app_settings`` (as service_role)."""
    return ScanSettings.from_values(await settings_store.read_values(db, SETTING_KEYS))
