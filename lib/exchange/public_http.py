"""One GET of Bybit's public REST API: the rate limiter, retries with backoff, and the retCode table.

What every request promises (the market-data client sends all its requests through here):

- it first takes a slot from the shared :class:`RateLimiter` (the IP's budget);
- timeouts, connection errors, HTTP 5xx, retCode 10000/10016 (server timeout/error) and malformed bodies
  are retried with exponential backoff and jitter, then raised as ``ExchangeUnavailable``;
- HTTP 429 and retCode 10006/10018 (too many visits) pause the limiter until Bybit's
  ``X-Bapi-Limit-Reset-Timestamp`` (bounded), are retried, then raised as ``RateLimited``;
- HTTP 403 (Bybit's IP ban) and retCode 10009 raise ``IpBanned`` at once and pause the limiter for the
  ban cooldown, so no request leaves this process until then: later requests fail fast with
  ``IpBanned`` instead of hammering a banned IP;
- any other non-zero retCode raises ``ExchangeRejected`` carrying ``ret_code``/``ret_msg``;
- which retCode means what is read from the one table, :mod:`lib.exchange.bybit`.

No credentials pass through this module: these endpoints are public.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from lib.errors import (
    ConfigError,
    ExchangeError,
    ExchangeRejected,
    ExchangeUnavailable,
    IpBanned,
    RateLimited,
)
from lib.exchange import bybit
from lib.exchange.rate_limit import Clock, PauseTooLong, RateLimiter, Sleep

# Logged under the market client's name, as before this module was split out of it.
logger = logging.getLogger("lib.exchange.market")

_IP_BAN_REASON = "ip_ban"
_RATE_LIMIT_REASON = "rate_limited"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a failing request is tried again.

    ``max_attempts`` counts the first try. Backoff before attempt ``n + 1`` is drawn from
    ``[cap/2, cap]`` with ``cap = min(max_delay_s, base_delay_s * 2**(n-1))``: the floor keeps retries
    from bunching at zero, the jitter keeps many clients from retrying in step.
    """

    max_attempts: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    #: A 10006 reset timestamp further away than this is not trusted (clock skew): wait this long.
    max_reset_wait_s: float = 10.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base_delay_s < 0 or self.max_delay_s < self.base_delay_s:
            raise ConfigError(f"invalid retry policy: {self}")

    def backoff_s(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        cap = min(self.max_delay_s, self.base_delay_s * 2.0 ** (attempt - 1))
        return cap / 2 + rng.random() * cap / 2


class PublicHttp:
    """Sends GETs to ``base_url`` through the injected ``http`` client, as the module docstring says.

    ``sleep``, ``wall_clock`` and ``rng`` are injectable so tests run without real waiting.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        *,
        limiter: RateLimiter,
        retry: RetryPolicy,
        ban_cooldown_s: float,
        max_pause_wait_s: float,
        sleep: Sleep,
        wall_clock: Clock,
        rng: random.Random,
    ) -> None:
        self._http = http
        self._base_url = bybit.checked_base_url(base_url)
        self._limiter = limiter
        self._retry = retry
        self._ban_cooldown_s = ban_cooldown_s
        self._max_pause_wait_s = max_pause_wait_s
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._rng = rng

    @property
    def base_url(self) -> str:
        """The REST base URL requests go to."""
        return self._base_url

    async def get(self, path: str, params: Mapping[str, str | int]) -> dict[str, Any]:
        """``result`` of one GET, with rate limiting and retries as described in the module docstring."""
        attempts = self._retry.max_attempts
        for attempt in range(1, attempts + 1):
            try:
                await self._limiter.acquire(max_pause_s=self._max_pause_wait_s)
            except PauseTooLong as paused:
                raise _paused_error(paused, path) from None
            try:
                return await self._send_once(path, params)
            except (ExchangeUnavailable, RateLimited) as error:
                if attempt == attempts:
                    error.details["attempts"] = attempts
                    raise
                delay = self._retry_delay(error, attempt)
                logger.warning(
                    "bybit GET %s failed (%s: %s); attempt %d of %d, retrying in %.2f s",
                    path,
                    error.code,
                    error.message,
                    attempt,
                    attempts,
                    delay,
                )
                if isinstance(error, RateLimited):
                    # The budget is shared: everyone waits for the reset, not only this request.
                    self._limiter.pause_for(delay, _RATE_LIMIT_REASON)
                else:
                    await self._sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover

    def _retry_delay(self, error: ExchangeError, attempt: int) -> float:
        backoff = self._retry.backoff_s(attempt, self._rng)
        retry_after = error.details.get("retry_after_s")
        if isinstance(error, RateLimited) and isinstance(retry_after, int | float):
            # Wait for Bybit's reset, but never less than the backoff: a reset that looks past is
            # clock skew, and retrying at once would only earn another 10006.
            return max(float(retry_after), backoff)
        return backoff

    async def _send_once(self, path: str, params: Mapping[str, str | int]) -> dict[str, Any]:
        details: dict[str, Any] = {"path": path}
        try:
            response = await self._http.get(self._base_url + path, params=dict(params))
        except httpx.TimeoutException as exc:
            raise ExchangeUnavailable(
                f"Bybit did not answer {path} in time", details={**details, "reason": type(exc).__name__}
            ) from exc
        except httpx.TransportError as exc:
            raise ExchangeUnavailable(
                f"could not reach Bybit for {path}", details={**details, "reason": type(exc).__name__}
            ) from exc

        status = response.status_code
        details["http_status"] = status
        if status == 403:
            raise self._banned(path, f"Bybit answered HTTP 403 for {path} (IP banned or region blocked)")
        if status == 429:
            raise RateLimited(
                f"Bybit answered HTTP 429 for {path}",
                details={**details, **self._retry_after(response)},
            )
        if status >= 500:
            raise ExchangeUnavailable(f"Bybit answered HTTP {status} for {path}", details=details)

        if status != 200:
            # Any other 4xx is about this request (wrong path, category, parameters): not retried.
            # The body may or may not be Bybit's JSON envelope; take its code when it is.
            envelope = _json_object(response)
            code = envelope.get("retCode") if envelope else None
            raise ExchangeRejected(
                f"Bybit answered HTTP {status} for {path}",
                ret_code=code if isinstance(code, int) else None,
                ret_msg=str(envelope["retMsg"]) if envelope and "retMsg" in envelope else None,
                details=details,
            )
        envelope = _json_object(response)
        if envelope is None:
            # A proxy or load-balancer page, or a truncated body: transient as far as we can tell.
            raise ExchangeUnavailable(
                f"Bybit sent a body that is not JSON for {path}",
                details={**details, "content_type": response.headers.get("content-type", "")},
            )
        return self._result(envelope, response, path, details)

    def _result(
        self, envelope: dict[str, Any], response: httpx.Response, path: str, details: dict[str, Any]
    ) -> dict[str, Any]:
        ret_code = envelope.get("retCode")
        ret_msg = str(envelope.get("retMsg", ""))
        if not isinstance(ret_code, int) or isinstance(ret_code, bool):
            raise ExchangeUnavailable(f"Bybit's answer to {path} has no integer retCode", details=details)
        if ret_code == bybit.OK:
            result = envelope.get("result")
            if not isinstance(result, dict):
                raise ExchangeError(f"Bybit's answer to {path} has no result object", details=details)
            return result
        error = bybit.error_class(ret_code)
        if error is RateLimited:
            raise bybit.ret_code_error(
                ret_code,
                ret_msg,
                f"Bybit rate-limited {path}",
                details={**details, **self._retry_after(response)},
            )
        if error is IpBanned:
            raise self._banned(path, f"Bybit reports this IP as banned ({path})", ret_code, ret_msg)
        if error is ExchangeUnavailable:
            raise bybit.ret_code_error(
                ret_code, ret_msg, f"Bybit had a server error on {path}", details=details
            )
        # Refused on purpose; an auth failure's message may echo the signed string, so it is not kept.
        shown = "" if ret_code in bybit.AUTH_RET_CODES else ret_msg
        raise bybit.ret_code_error(
            ret_code, ret_msg, f"Bybit rejected {path}: {shown or 'no message'}", details=details
        )

    def _banned(
        self, path: str, message: str, ret_code: int | None = None, ret_msg: str | None = None
    ) -> IpBanned:
        # Stop all traffic through this limiter: retrying into a ban prolongs it (or makes it permanent).
        self._limiter.pause_for(self._ban_cooldown_s, _IP_BAN_REASON)
        logger.error("%s; pausing all Bybit requests for %.0f s", message, self._ban_cooldown_s)
        return IpBanned(
            message,
            ret_code=ret_code,
            ret_msg=ret_msg,
            details={"path": path, "retry_after_s": self._ban_cooldown_s},
        )

    def _retry_after(self, response: httpx.Response) -> dict[str, float]:
        """``{"retry_after_s": s}`` from Bybit's reset timestamp header, bounded; empty if absent."""
        raw = response.headers.get(bybit.RATE_LIMIT_RESET_HEADER)
        if raw is None:
            return {}
        try:
            reset_ms = int(raw)
        except ValueError:
            return {}
        wait = reset_ms / 1000.0 - self._wall_clock()
        return {"retry_after_s": min(max(wait, 0.0), self._retry.max_reset_wait_s)}


def _paused_error(paused: PauseTooLong, path: str) -> ExchangeError:
    details = {"path": path, "retry_after_s": round(paused.remaining_s, 3)}
    if paused.reason == _IP_BAN_REASON:
        return IpBanned(
            f"Bybit requests are paused after an IP ban; {paused.remaining_s:.0f} s left", details=details
        )
    return RateLimited(f"Bybit requests are paused for {paused.remaining_s:.0f} s", details=details)


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    """The body as a JSON object, or ``None`` when it is not JSON or not an object."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
