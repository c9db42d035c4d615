"""A sliding-window request limiter for Bybit's per-IP HTTP limit, plus pauses.

Bybit allows 600 requests in any 5-second window per IP; breaking it earns an HTTP 403 ban of at least
ten minutes. The limiter keeps to a configured share of that budget (default half, so other processes
on the same IP and network jitter keep some headroom). It remembers the time of each grant in the last
window, so no window of ``window_s`` seconds ever holds more than ``capacity`` grants: a token bucket
would allow a full burst right after a full window, which is exactly what gets an IP banned.

It can also be paused until a moment: after retCode 10006 (until the reset timestamp Bybit sends) and
after a 403 (until the ban has surely lifted). Every caller sharing the limiter then waits, which is the
point: one process should share one limiter, because the budget is the IP's, not the client's.

Time is injected (``clock`` and ``sleep``) so tests drive it without real sleeping.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable

from lib.errors import ConfigError
from lib.exchange import bybit

#: Bybit's documented HTTP limit per IP: this many requests...
BYBIT_IP_LIMIT = bybit.IP_LIMIT_REQUESTS
#: ...in any window of this many seconds.
BYBIT_IP_WINDOW_S = bybit.IP_LIMIT_WINDOW_S
#: The share of the budget a limiter keeps to unless told otherwise.
DEFAULT_SHARE = 0.5

_MIN_WAIT_S = 0.001

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class PauseTooLong(Exception):
    """Raised by :meth:`RateLimiter.acquire` when a pause outlasts the caller's ``max_pause_s``.

    It is not an ``AitradexError``: the caller knows why it asked and turns it into the right one
    (an IP ban into ``IpBanned``, a rate-limit pause into ``RateLimited``).
    """

    def __init__(self, remaining_s: float, reason: str) -> None:
        super().__init__(f"requests are paused for another {remaining_s:.1f} s ({reason})")
        self.remaining_s = remaining_s
        self.reason = reason


class RateLimiter:
    """At most ``capacity`` grants in any ``window_s`` seconds, and no grant while paused.

    ``share=None`` disables the window (a client that must not be held back, such as a test of the
    exchange's own limit); explicit pauses still hold, because a pause records something the server said.
    """

    def __init__(
        self,
        share: float | None = DEFAULT_SHARE,
        *,
        limit: int = BYBIT_IP_LIMIT,
        window_s: float = BYBIT_IP_WINDOW_S,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if share is not None and not (0.0 < share <= 1.0):
            raise ConfigError(f"rate limit share must be in (0, 1], got {share}")
        if limit < 1 or window_s <= 0:
            raise ConfigError(f"rate limit needs limit >= 1 and window > 0, got {limit} per {window_s} s")
        self.share = share
        self.window_s = window_s
        # floor, not round: keeping to the share matters more than one extra request per window.
        self.capacity: int | None = None if share is None else max(1, math.floor(share * limit))
        self._clock = clock
        self._sleep = sleep
        self._grants: deque[float] = deque()
        self._paused_until = -math.inf
        self._pause_reason = ""
        # One waiter at a time decides the next grant, so waiters are served in arrival order and a
        # burst of coroutines cannot all see the same free slot.
        self._lock = asyncio.Lock()

    @property
    def enabled(self) -> bool:
        """Whether the window limit is in force (``share`` is not ``None``)."""
        return self.capacity is not None

    def pause_until(self, deadline: float, reason: str) -> None:
        """Grant nothing before ``deadline`` (on this limiter's clock). A pause is never shortened."""
        if deadline > self._paused_until:
            self._paused_until = deadline
            self._pause_reason = reason

    def pause_for(self, seconds: float, reason: str) -> None:
        """Grant nothing for the next ``seconds`` seconds. A pause is never shortened."""
        self.pause_until(self._clock() + max(0.0, seconds), reason)

    def pause_remaining(self) -> float:
        """Seconds left in the current pause, 0 when not paused."""
        return max(0.0, self._paused_until - self._clock())

    @property
    def pause_reason(self) -> str:
        """Why the latest pause was set (meaningful only while :meth:`pause_remaining` > 0)."""
        return self._pause_reason

    def headroom(self) -> int | None:
        """Grants free right now (0 while paused); None when the window limit is off. Work that can
        be taken by another host (a signal's shard) is left to it when this one has none to spare."""
        if self.capacity is None:
            return None
        if self.pause_remaining() > 0:
            return 0
        now = self._clock()
        while self._grants and self._grants[0] <= now - self.window_s:
            self._grants.popleft()
        return self.capacity - len(self._grants)

    def seconds_until(self, requests: int) -> float | None:
        """Seconds until ``requests`` more grants could be made, were nobody else to ask (the pause
        included); None when the window limit is off. A host leaves work another host could send
        sooner to it (a signal's shard)."""
        if self.capacity is None:
            return None
        now = self._clock()
        while self._grants and self._grants[0] <= now - self.window_s:
            self._grants.popleft()
        paused = max(0.0, self._paused_until - now)
        over = len(self._grants) + requests - self.capacity
        if over <= 0:
            return paused
        if requests > self.capacity:
            return math.inf
        return max(paused, self._grants[over - 1] + self.window_s - now)

    async def acquire(self, *, max_pause_s: float | None = None) -> None:
        """Wait until one more request may be sent, then count it.

        With ``max_pause_s``, raise :class:`PauseTooLong` instead of waiting out a pause longer than
        that (a ten-minute ban should fail a request fast, not hang it).
        """
        async with self._lock:
            while True:
                now = self._clock()
                paused = self._paused_until - now
                if paused > 0:
                    if max_pause_s is not None and paused > max_pause_s:
                        raise PauseTooLong(paused, self._pause_reason)
                    await self._sleep(max(paused, _MIN_WAIT_S))
                    continue
                if self.capacity is None:
                    return
                # A grant at time t counts for the window (t, t + window_s].
                while self._grants and self._grants[0] <= now - self.window_s:
                    self._grants.popleft()
                if len(self._grants) < self.capacity:
                    self._grants.append(now)
                    return
                # The floor keeps a float rounding (wake a hair before the slot frees) from turning
                # into a busy loop of zero-length sleeps.
                await self._sleep(max(self._grants[0] + self.window_s - now, _MIN_WAIT_S))
