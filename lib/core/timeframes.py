"""Bybit's kline intervals and the candle grid: the one home of every interval fact.

``TIMEFRAMES`` is the contract's list (``lib.core.vocabulary.Timeframe``), in Bybit's own spelling.
Candles sit on UTC boundaries as Bybit aligns them: weeks start on Monday 00:00 UTC, months on the 1st.
Pure: the standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from lib.core.vocabulary import TIMEFRAMES
from lib.errors import InvalidRequest

__all__ = [
    "FIVE_MINUTES_MS",
    "INTERVAL_MS",
    "MONDAY_OFFSET_MS",
    "TIMEFRAMES",
    "candle_close_ms",
    "candle_open_ms",
    "check_timeframe",
    "nominal_interval_ms",
    "previous_open_ms",
]

_MINUTE_MS = 60_000
_DAY_MS = 86_400_000
_WEEK_MS = 7 * _DAY_MS
MONDAY_OFFSET_MS = 4 * _DAY_MS  # 1970-01-01 was a Thursday; Bybit's weeks start on Monday 00:00 UTC

#: The length of one candle of each fixed-length Bybit interval ("M" varies: see :func:`candle_close_ms`).
INTERVAL_MS: Mapping[str, int] = {
    **{m: int(m) * _MINUTE_MS for m in TIMEFRAMES if m.isdigit()},
    "D": _DAY_MS,
    "W": _WEEK_MS,
}


def check_timeframe(timeframe: str) -> None:
    """Raise :class:`InvalidRequest` unless ``timeframe`` is one of Bybit's intervals."""
    if timeframe not in TIMEFRAMES:
        raise InvalidRequest(
            f"unknown timeframe {timeframe!r}", details={"timeframe": timeframe, "allowed": list(TIMEFRAMES)}
        )


def _month_start_ms(year: int, month: int) -> int:
    year += (month - 1) // 12
    month = (month - 1) % 12 + 1
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp() * 1000)


def candle_open_ms(timeframe: str, t_ms: int) -> int:
    """The open time of the ``timeframe`` candle that contains instant ``t_ms`` (UTC boundaries)."""
    check_timeframe(timeframe)
    if timeframe == "M":
        moment = datetime.fromtimestamp(t_ms / 1000, tz=UTC)
        return _month_start_ms(moment.year, moment.month)
    if timeframe == "W":
        return (t_ms - MONDAY_OFFSET_MS) // _WEEK_MS * _WEEK_MS + MONDAY_OFFSET_MS
    width = INTERVAL_MS[timeframe]
    return t_ms // width * width


def candle_close_ms(timeframe: str, open_ms: int) -> int:
    """When the candle opening at ``open_ms`` closes: the next candle's open."""
    check_timeframe(timeframe)
    if timeframe == "M":
        moment = datetime.fromtimestamp(open_ms / 1000, tz=UTC)
        return _month_start_ms(moment.year, moment.month + 1)
    return open_ms + INTERVAL_MS[timeframe]


def previous_open_ms(timeframe: str, open_ms: int) -> int:
    """The open time of the candle before the one opening at ``open_ms``."""
    return candle_open_ms(timeframe, open_ms - 1)


#: The bundled data's and the paper exchange's base interval: one five-minute candle.
FIVE_MINUTES_MS = INTERVAL_MS["5"]
#: A month's candle, for budgets that need one length per interval (the longest month).
_MONTH_MS = 31 * _DAY_MS


def nominal_interval_ms(timeframe: str) -> int:
    """One candle's length; a month counts as 31 days (an upper bound, for freshness budgets)."""
    check_timeframe(timeframe)
    return _MONTH_MS if timeframe == "M" else INTERVAL_MS[timeframe]
