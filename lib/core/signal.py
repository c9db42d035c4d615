"""A signal's fields, defined once: what the scanner decides (:class:`NewSignal`) and what is stored
(:class:`Signal`, which adds what the database assigns).

These mirror the ``signals`` table (``supabase/migrations/*_markets_and_signals.sql``), which keeps the
checks (levels ordered by direction, score 0..100, ``expires_at`` after ``bar_time``). Numbers are floats:
a score is for display and ranking, and the signals-api answers JSON numbers. The ``components`` map each
part of the score to its contribution (``None`` where the scorer could not compute it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args
from uuid import UUID

from lib.core.vocabulary import Algorithm, Category, Direction, Timeframe

SignalStatus = Literal["new", "processing", "executed", "expired", "skipped", "failed"]
SIGNAL_STATUSES: tuple[str, ...] = get_args(SignalStatus)


@dataclass(frozen=True, slots=True)
class NewSignal:
    """A signal the scanner stores as ``new``; one per (symbol, timeframe, algorithm, direction, bar_time)."""

    symbol: str
    category: Category
    timeframe: Timeframe
    direction: Direction
    algorithm: Algorithm
    score: float
    confidence: float
    entry_price: float
    stop_loss: float
    take_profit: float
    atr: float
    components: dict[str, Any]
    bar_time: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Signal(NewSignal):
    """One signal, as the scanner stored it; ``components`` explains the score."""

    id: UUID
    status: SignalStatus
    created_at: datetime
