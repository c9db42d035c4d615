"""From the scorer's candidates to the signals stored: checks, the stored score, expiry."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime

from lib.core.candles import Candidate, CandlePanel
from lib.core.signal import NewSignal
from lib.core.timeframes import candle_close_ms
from lib.core.vocabulary import Algorithm, Category, Timeframe
from lib.services.scanning.models import SymbolError


def utc(t_ms: int) -> datetime:
    """Epoch milliseconds as an aware UTC datetime."""
    return datetime.fromtimestamp(t_ms / 1000, tz=UTC)


def expires_at_ms(timeframe: str, bar_open_ms: int, ttl_bars: int) -> int:
    """When a signal on the bar opening at ``bar_open_ms`` expires: its close plus ``ttl_bars`` candles."""
    moment = candle_close_ms(timeframe, bar_open_ms)
    for _ in range(ttl_bars):
        moment = candle_close_ms(timeframe, moment)
    return moment


def _finite(value: float) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def check_candidates(
    candidates: Sequence[Candidate], panel: CandlePanel
) -> tuple[list[Candidate], list[SymbolError]]:
    """Candidates the signals table will accept, and an error for each one it would refuse.

    One refused row would fail the whole batch insert, so levels are checked here first: finite,
    positive (a SHORT's ATR-based take-profit can fall below zero on a wild bar), on the panel's bar.
    """
    last_bar = int(panel.open_time_ms[-1])
    symbols = set(panel.symbols)
    good: list[Candidate] = []
    bad: list[SymbolError] = []
    seen: set[str] = set()
    for c in candidates:
        levels = (c.entry, c.stop_loss, c.take_profit)
        problem = None
        if c.symbol not in symbols or c.symbol in seen:
            problem = "the scorer returned a symbol that is not (or twice) in the panel"
        elif c.bar_time_ms != last_bar:
            problem = f"candidate is for bar {c.bar_time_ms}, not the panel's last bar {last_bar}"
        elif not all(_finite(v) and v > 0 for v in levels) or not (_finite(c.atr) and c.atr >= 0):
            problem = "entry, stop-loss, take-profit and ATR must be finite and positive"
        if problem:
            bad.append(SymbolError(c.symbol, "invalid_candidate", problem))
        else:
            seen.add(c.symbol)
            good.append(c)
    return good, bad


def stored_score(score: float) -> float:
    """The score as the table stores it (numeric(5, 2)); the threshold is judged on this value."""
    return round(score, 2)


def new_signal(
    c: Candidate, *, category: Category, timeframe: Timeframe, algorithm: Algorithm, ttl_bars: int
) -> NewSignal:
    """The signal stored for a checked candidate (see :func:`check_candidates`)."""
    return NewSignal(
        symbol=c.symbol,
        category=category,
        timeframe=timeframe,
        direction=c.direction,
        algorithm=algorithm,
        score=stored_score(c.score),
        confidence=round(c.confidence, 4),
        entry_price=c.entry,
        stop_loss=c.stop_loss,
        take_profit=c.take_profit,
        atr=c.atr,
        # jsonb refuses NaN: a component the scorer could not compute is stored as null.
        components={k: (float(v) if _finite(v) else None) for k, v in c.components.items()},
        bar_time=utc(c.bar_time_ms),
        expires_at=utc(expires_at_ms(timeframe, c.bar_time_ms, ttl_bars)),
    )
