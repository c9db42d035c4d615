"""The replay clock: which instant of the bundled history the exchange is living in.

Replay time runs at ``speed`` replay-milliseconds per wall-millisecond from an anchor (``0`` freezes it),
can be moved forward explicitly (``advance`` whole candles, or ``set`` a time) and never runs backwards
or past the end of the data. Wall time is passed in, so the clock itself is pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from lib.core.timeframes import FIVE_MINUTES_MS
from lib.errors import InvalidRequest


@dataclass(slots=True)
class ReplayClock:
    """Replay time ``replay_ms`` at wall time ``anchor_wall_ms``, moving at ``speed``."""

    replay_ms: int
    anchor_wall_ms: int
    speed: float
    min_ms: int
    max_ms: int

    def now(self, wall_ms: int) -> int:
        """Replay time at wall time ``wall_ms`` (bounded by the end of the data)."""
        elapsed = max(0, wall_ms - self.anchor_wall_ms)
        return min(self.max_ms, self.replay_ms + int(elapsed * self.speed))

    def set_time(self, time_ms: int, wall_ms: int) -> int:
        """Jump to ``time_ms``; refuses to go back (orders and fills already happened) or past the end."""
        current = self.now(wall_ms)
        if time_ms < current:
            raise InvalidRequest(
                "the replay clock only moves forward",
                details={"now_ms": current, "requested_ms": time_ms},
            )
        if time_ms > self.max_ms:
            raise InvalidRequest(
                "the requested time is after the end of the replayed data",
                details={"end_ms": self.max_ms, "requested_ms": time_ms},
            )
        self.replay_ms = time_ms
        self.anchor_wall_ms = wall_ms
        return time_ms

    def advance(self, candles: int, wall_ms: int) -> int:
        """Move forward ``candles`` 5-minute candles, stopping at the end of the data."""
        if candles < 0:
            raise InvalidRequest("the replay clock only moves forward", details={"candles": candles})
        target = min(self.max_ms, self.now(wall_ms) + candles * FIVE_MINUTES_MS)
        return self.set_time(target, wall_ms)

    def set_speed(self, speed: float, wall_ms: int) -> None:
        """Change the speed from now on (the replay time reached so far is kept)."""
        if speed < 0:
            raise InvalidRequest("speed must be zero or positive", details={"speed": speed})
        self.replay_ms = self.now(wall_ms)
        self.anchor_wall_ms = wall_ms
        self.speed = speed
