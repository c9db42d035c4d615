"""Market time: where candle boundaries are judged. Bybit's candles close in wall time (UTC); the paper
exchange's close in its replay time (``GET /_paper/clock``), which moves only when the replay does."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from lib.errors import ConfigError, ExchangeError, ExchangeUnavailable
from lib.paper_exchange.client import AsyncPaperControls


class MarketClock(Protocol):
    """Where candle boundaries are judged: the exchange's notion of "now", in epoch milliseconds."""

    async def now_ms(self) -> int:
        """The market's current time."""
        ...


@dataclass(frozen=True, slots=True)
class WallClock:
    """Wall time (UTC epoch): how Bybit's candles close. ``time_s`` is injectable for tests."""

    time_s: Callable[[], float] = time.time

    async def now_ms(self) -> int:
        """Wall time in milliseconds."""
        return int(self.time_s() * 1000)


@dataclass(frozen=True, slots=True)
class PaperClock:
    """The paper exchange's replay time (``GET /_paper/clock``): its candles close in replay time."""

    paper_url: str
    timeout_s: float = 5.0

    async def now_ms(self) -> int:
        """Replay time in milliseconds. Raises ExchangeUnavailable when the paper exchange cannot say."""
        try:
            clock = await AsyncPaperControls(self.paper_url, timeout_s=self.timeout_s).clock()
        except ExchangeError as exc:
            # Whatever the cause (unreachable, refused, malformed), candle jobs wait for the next tick.
            reason = exc.details.get("reason") or exc.code
            raise ExchangeUnavailable(
                "the paper exchange's replay clock could not be read", details={"reason": reason}
            ) from None
        return clock.time_ms


def market_clock_for(environment: str, *, paper_url: str | None) -> MarketClock:
    """The market clock of an exchange environment: replay time for ``paper``, wall time elsewhere."""
    if environment == "paper":
        if not paper_url:
            raise ConfigError("the paper environment needs the paper exchange's URL for its clock")
        return PaperClock(paper_url)
    return WallClock()
