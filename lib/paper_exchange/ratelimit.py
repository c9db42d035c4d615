"""Bybit's per-account (UID) rate limits on the signed endpoints, in a rolling one-second window.

Every signed answer carries ``X-Bapi-Limit`` (the endpoint's limit per second), ``X-Bapi-Limit-Status``
(requests left in the window) and ``X-Bapi-Limit-Reset-Timestamp`` (when the window frees a slot if the
limit is reached; otherwise now), as Bybit's do. A request over the limit gets retCode 10006.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from lib.exchange import bybit

WINDOW_MS = 1000
LIMITS_PER_SECOND = {
    bybit.ORDER_CREATE: 10,
    bybit.ORDER_REALTIME: 50,
    bybit.POSITION_LIST: 50,
    bybit.SET_LEVERAGE: 10,
    bybit.WALLET_BALANCE: 50,
}
DEFAULT_LIMIT = 10


@dataclass(frozen=True, slots=True)
class RateStatus:
    """The verdict on one request and the three headers that describe it."""

    allowed: bool
    limit: int
    remaining: int
    reset_ms: int

    def headers(self) -> dict[str, str]:
        """Bybit's ``X-Bapi-Limit*`` response headers."""
        return {
            "X-Bapi-Limit": str(self.limit),
            "X-Bapi-Limit-Status": str(self.remaining),
            bybit.RATE_LIMIT_RESET_HEADER: str(self.reset_ms),
        }


class AccountRateLimiter:
    """Counts each account's requests per endpoint over the last second (wall clock, passed in)."""

    def __init__(self) -> None:
        self._hits: dict[tuple[str, str], deque[int]] = {}

    def hit(self, account_id: str, path: str, wall_ms: int) -> RateStatus:
        """Count one request and say whether it is within the limit."""
        limit = LIMITS_PER_SECOND.get(path, DEFAULT_LIMIT)
        hits = self._hits.setdefault((account_id, path), deque())
        while hits and hits[0] <= wall_ms - WINDOW_MS:
            hits.popleft()
        if len(hits) >= limit:
            return RateStatus(allowed=False, limit=limit, remaining=0, reset_ms=hits[0] + WINDOW_MS)
        hits.append(wall_ms)
        return RateStatus(allowed=True, limit=limit, remaining=limit - len(hits), reset_ms=wall_ms)


def rate_limited_status(wall_ms: int, limit: int = DEFAULT_LIMIT) -> RateStatus:
    """The status of an injected rate-limit fault: nothing left, a slot again in one second."""
    return RateStatus(allowed=False, limit=limit, remaining=0, reset_ms=wall_ms + WINDOW_MS)
