"""Bybit's rate limits, as the paper exchange enforces them: per source address, and per account.

**Per source address** (:class:`IpRateLimiter`): Bybit allows "600 requests within a 5-second window per
IP" over every endpoint, and answers HTTP 403 "access too frequent" past that, for at least ten minutes.
Here the window is *sliding* (rolling): a request is refused when the address already made
``ip_requests`` requests in the last ``ip_window_s`` seconds, so no 5-second span ever holds more than
600. The request that breaks the limit starts a ban of ``ip_ban_s`` seconds (default 600, Bybit's ten
minutes); every request from that address is a 403 until it ends, and then the address starts from an
empty window. Refused requests do not count. Addresses are ``request.client.host``, so clients bound to
127.0.0.2, 127.0.0.3, ... are counted apart, as several hosts would be. The ``/_paper`` controls are
not Bybit's and never count.

**Per account** (:class:`AccountRateLimiter`): Bybit's per-UID limits on the signed endpoints, in a
rolling one-second window. Order create is 10 per second (``order_create_per_s``). Every signed answer
carries ``X-Bapi-Limit`` (the endpoint's limit per second), ``X-Bapi-Limit-Status`` (requests left in the
window) and ``X-Bapi-Limit-Reset-Timestamp`` (when the window frees a slot if the limit is reached;
otherwise now), as Bybit's do. A request over the limit gets retCode 10006 "Too many visits!".

Both are on by default (:class:`ExchangeLimits`); each can be turned off, and its numbers changed.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from lib.errors import ConfigError
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
#: The body of Bybit's IP-ban answer (HTTP 403), as its rate-limit page quotes it.
IP_BAN_TEXT = "403, access too frequent"


@dataclass(frozen=True, slots=True)
class ExchangeLimits:
    """Which of Bybit's limits a paper exchange enforces, and their numbers.

    - ``ip_requests`` per ``ip_window_s`` seconds per source address (``None``: no IP limit), past which
      the address is banned (HTTP 403) for ``ip_ban_s`` seconds;
    - ``account_limits``: the per-account limits of the signed endpoints (retCode 10006), of which order
      create allows ``order_create_per_s`` per second.
    """

    ip_requests: int | None = bybit.IP_LIMIT_REQUESTS
    ip_window_s: float = bybit.IP_LIMIT_WINDOW_S
    ip_ban_s: float = bybit.DEFAULT_BAN_COOLDOWN_S
    account_limits: bool = True
    order_create_per_s: int = LIMITS_PER_SECOND[bybit.ORDER_CREATE]

    def __post_init__(self) -> None:
        if self.ip_requests is not None and self.ip_requests < 1:
            raise ConfigError(f"paper exchange ip_requests must be >= 1 or None, got {self.ip_requests}")
        if not self.ip_window_s > 0 or not self.ip_ban_s >= 0:
            raise ConfigError("paper exchange ip_window_s must be > 0 and ip_ban_s >= 0")
        if self.order_create_per_s < 1:
            raise ConfigError(f"order_create_per_s must be >= 1, not {self.order_create_per_s}")

    @classmethod
    def off(cls) -> ExchangeLimits:
        """No limit at all (a test that must hammer the exchange)."""
        return cls(ip_requests=None, account_limits=False)


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

    def __init__(self, limits: ExchangeLimits | None = None) -> None:
        self.limits = limits or ExchangeLimits()
        self._per_path = {**LIMITS_PER_SECOND, bybit.ORDER_CREATE: self.limits.order_create_per_s}
        self._hits: dict[tuple[str, str], deque[int]] = {}
        #: Requests answered 10006 by this limiter (``GET /_paper/stats``).
        self.refused = 0

    def hit(self, account_id: str, path: str, wall_ms: int) -> RateStatus:
        """Count one request and say whether it is within the limit."""
        limit = self._per_path.get(path, DEFAULT_LIMIT)
        if not self.limits.account_limits:
            return RateStatus(allowed=True, limit=limit, remaining=limit, reset_ms=wall_ms)
        hits = self._hits.setdefault((account_id, path), deque())
        while hits and hits[0] <= wall_ms - WINDOW_MS:
            hits.popleft()
        if len(hits) >= limit:
            self.refused += 1
            return RateStatus(allowed=False, limit=limit, remaining=0, reset_ms=hits[0] + WINDOW_MS)
        hits.append(wall_ms)
        return RateStatus(allowed=True, limit=limit, remaining=limit - len(hits), reset_ms=wall_ms)


@dataclass(slots=True)
class _Address:
    hits: deque[float] = field(default_factory=deque)
    banned_until: float = float("-inf")


class IpRateLimiter:
    """Bybit's per-IP limit in a sliding window, with bans (monotonic seconds, passed in)."""

    def __init__(self, limits: ExchangeLimits | None = None) -> None:
        self.limits = limits or ExchangeLimits()
        self._addresses: dict[str, _Address] = {}
        #: Bans started, and requests refused with a 403 (``GET /_paper/stats``).
        self.bans = 0
        self.refused = 0
        #: Requests let through, per source address (``GET /_paper/stats``): which host sent what.
        self.allowed: dict[str, int] = {}

    def allow(self, address: str, now_s: float) -> bool:
        """Count one request from ``address``; False (answer 403) when banned or over the limit."""
        limit = self.limits.ip_requests
        if limit is None:
            self.allowed[address] = self.allowed.get(address, 0) + 1
            return True
        state = self._addresses.setdefault(address, _Address())
        if now_s < state.banned_until:
            self.refused += 1
            return False
        hits = state.hits
        while hits and hits[0] <= now_s - self.limits.ip_window_s:
            hits.popleft()
        if len(hits) >= limit:
            # The ban starts now; when it ends the address starts again from an empty window.
            state.banned_until = now_s + self.limits.ip_ban_s
            hits.clear()
            self.bans += 1
            self.refused += 1
            return False
        hits.append(now_s)
        self.allowed[address] = self.allowed.get(address, 0) + 1
        return True

    def banned(self, address: str, now_s: float) -> bool:
        """Whether ``address`` is banned at ``now_s``."""
        state = self._addresses.get(address)
        return state is not None and now_s < state.banned_until


def rate_limited_status(wall_ms: int, limit: int = DEFAULT_LIMIT) -> RateStatus:
    """The status of an injected rate-limit fault: nothing left, a slot again in one second."""
    return RateStatus(allowed=False, limit=limit, remaining=0, reset_ms=wall_ms + WINDOW_MS)
