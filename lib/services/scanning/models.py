"""What a scan is asked to do and what it answers: the request, per-symbol errors, the result, progress."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from lib.core.timeframes import TIMEFRAMES
from lib.core.vocabulary import ALGORITHMS
from lib.errors import InvalidRequest
from lib.stores.scan_runs import RunStatus


@dataclass(frozen=True, slots=True)
class ScanRequest:
    """What to scan. ``symbols`` replaces the universe selection (scanned as given, in that order);
    ``max_symbols`` replaces the universe's cap; ``min_score`` replaces ``scanner.threshold``."""

    timeframe: str
    algorithm: str = "unirail_core"
    symbols: tuple[str, ...] | None = None
    max_symbols: int | None = None
    min_score: float | None = None
    dry_run: bool = False

    def __post_init__(self) -> None:
        if self.timeframe not in TIMEFRAMES:
            raise InvalidRequest(
                f"unknown timeframe {self.timeframe!r}", details={"allowed": list(TIMEFRAMES)}
            )
        if self.algorithm not in ALGORITHMS:
            raise InvalidRequest(
                f"unknown algorithm {self.algorithm!r}", details={"allowed": list(ALGORITHMS)}
            )
        if self.max_symbols is not None and self.max_symbols < 1:
            raise InvalidRequest("max_symbols must be at least 1")
        if self.min_score is not None and not 0 <= self.min_score <= 100:
            raise InvalidRequest("min_score must be 0..100")
        if self.symbols is not None and not self.symbols:
            raise InvalidRequest("symbols, when given, must name at least one symbol")


@dataclass(frozen=True, slots=True)
class SymbolError:
    """One symbol that could not be scored (``symbol`` is None for a failure of the whole run)."""

    symbol: str | None
    code: str
    message: str

    def as_json(self) -> dict[str, Any]:
        """The shape stored in ``scan_runs.errors``."""
        return {"symbol": self.symbol, "code": self.code, "message": self.message}


@dataclass(frozen=True, slots=True)
class ScanResult:
    """One finished scan run."""

    run_id: str
    status: RunStatus
    timeframe: str
    algorithm: str
    dry_run: bool
    threshold: float
    #: Open time of the bar scored (the newest closed bar), None when nothing was scored.
    bar_time: datetime | None
    symbols_requested: int
    symbols_scanned: int
    candidates: int
    #: Candidates at or above the threshold (stored unless dry_run or already stored).
    qualified: int
    signals_created: int
    #: Qualified candidates already stored by an earlier scan of the same bar.
    duplicates: int
    signal_ids: tuple[str, ...]
    errors: tuple[SymbolError, ...]
    duration_ms: int


def run_status(scanned: int, errors: int) -> RunStatus:
    """``failed`` when nothing was scored, ``partial`` with errors, else ``succeeded``."""
    if scanned == 0:
        return "failed"
    return "partial" if errors else "succeeded"


class ScanProgress(Protocol):
    """Progress callbacks (the CLI's progress bar); both must return quickly."""

    def universe(self, symbols: int) -> None:
        """How many symbols will be fetched."""

    def fetched(self, symbol: str, ok: bool) -> None:
        """One symbol's klines arrived (or failed)."""


class NoProgress:
    """Progress nobody watches."""

    def universe(self, symbols: int) -> None:
        """Ignored."""

    def fetched(self, symbol: str, ok: bool) -> None:
        """Ignored."""
