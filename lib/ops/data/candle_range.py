"""Which candles a download covers, and the first break in a series: arithmetic on the candle grid only.

Times are epoch milliseconds of candle opens on Bybit's UTC grid (:mod:`lib.core.timeframes`). A range
is inclusive at both ends: the open of its first and of its last candle. A candle is closed once its
close (the next candle's open) is at or before the market's "now"; the candle in progress never is.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from lib.core.timeframes import INTERVAL_MS, candle_close_ms, candle_open_ms, previous_open_ms

IntArray = npt.NDArray[np.int64]


def first_open_from(interval: str, t_ms: int) -> int:
    """The open of the first candle that opens at or after ``t_ms``."""
    opened = candle_open_ms(interval, t_ms)
    return opened if opened == t_ms else candle_close_ms(interval, opened)


def last_closed_open(interval: str, now_ms: int, until_ms: int | None = None) -> int:
    """The open of the newest candle that has closed by ``now_ms`` (and by ``until_ms``, when given).

    The candle holding ``t = min(now, until)`` has not closed by ``t`` unless it opens exactly at ``t``,
    and then it is the candle before it that closes at ``t``: either way the answer is the candle
    before the one holding ``t``.
    """
    t_ms = now_ms if until_ms is None else min(now_ms, until_ms)
    return previous_open_ms(interval, candle_open_ms(interval, t_ms))


def next_open(interval: str, open_ms: int) -> int:
    """The open of the candle after the one opening at ``open_ms``."""
    return candle_close_ms(interval, open_ms)


def candle_count(interval: str, first_ms: int, last_ms: int) -> int:
    """How many candles open in ``[first_ms, last_ms]`` (both on the grid); 0 when ``last < first``."""
    if last_ms < first_ms:
        return 0
    width = INTERVAL_MS.get(interval)
    if width is not None:
        return (last_ms - first_ms) // width + 1
    count, t_ms = 0, first_ms  # months: count them (a few hundred at most)
    while t_ms <= last_ms:
        count, t_ms = count + 1, candle_close_ms(interval, t_ms)
    return count


@dataclass(frozen=True, slots=True)
class Break:
    """Where a series stops being one candle after another: between the candles opening at ``after_ms``
    and ``before_ms`` (``after_ms`` is ``None`` when the first candle itself is off the grid)."""

    interval: str
    after_ms: int | None
    before_ms: int

    @property
    def is_hole(self) -> bool:
        """Whether candles are missing here (rather than repeated, out of order or off the grid)."""
        return (
            self.after_ms is not None
            and self.before_ms > self.after_ms
            and candle_open_ms(self.interval, self.before_ms) == self.before_ms
        )

    @property
    def missing(self) -> int:
        """How many candles are missing (0 unless :attr:`is_hole`)."""
        if not self.is_hole or self.after_ms is None:
            return 0
        return candle_count(self.interval, next_open(self.interval, self.after_ms), self.before_ms) - 1

    def describe(self) -> str:
        """The break as a sentence fragment naming its first missing (or offending) candle."""
        if self.after_ms is None:
            return f"its first candle ({utc_text(self.before_ms)}) is not on the candle grid"
        if not self.is_hole:
            return (
                f"the candle after {utc_text(self.after_ms)} is {utc_text(self.before_ms)}: not the next one"
            )
        first = next_open(self.interval, self.after_ms)
        last = previous_open_ms(self.interval, self.before_ms)
        span = utc_text(first) if first == last else f"{utc_text(first)} to {utc_text(last)}"
        return f"{self.missing} candle{'s' if self.missing != 1 else ''} missing: {span}"


def first_break(interval: str, opens: IntArray) -> Break | None:
    """The first place where ``opens`` (oldest first) is not one candle after another, or ``None``."""
    if opens.size == 0:
        return None
    first = int(opens[0])
    if candle_open_ms(interval, first) != first:
        return Break(interval, None, first)
    width = INTERVAL_MS.get(interval)
    if width is not None:
        bad = np.flatnonzero(np.diff(opens) != width)
        if bad.size == 0:
            return None
        index = int(bad[0])
        return Break(interval, int(opens[index]), int(opens[index + 1]))
    values = opens.tolist()
    for before, after in itertools.pairwise(values):
        if after != next_open(interval, before):
            return Break(interval, before, after)
    return None


def utc_text(t_ms: int) -> str:
    """``2024-01-05 10:20 UTC``: a candle open as people read it (seconds only when there are any)."""
    moment = datetime.fromtimestamp(t_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC" if moment.second else "%Y-%m-%d %H:%M UTC")
