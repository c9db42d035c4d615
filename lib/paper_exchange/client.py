"""A small client for the paper exchange's local ``/_paper`` controls: its clock, its faults, its accounts.

The only place outside the paper exchange's own app that uses those URLs (their paths are defined
once, in :mod:`lib.paper_exchange.paths`). :class:`PaperControls` is
synchronous (scripts, the CLI, tests), :class:`AsyncPaperControls` asynchronous (the scheduler's
clock, the demo); both take an ``httpx`` client to reuse, or open one per call.

Errors are ``lib.errors`` ones: ``ExchangeUnavailable`` when the paper exchange cannot be reached or
does not answer in time (``details.reason`` names the transport failure), ``ExchangeError`` when it
answers with a refusal or a body this client does not understand (``details.http_status``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

from lib.errors import ExchangeError, ExchangeUnavailable
from lib.paper_exchange.faults import FaultPlan
from lib.paper_exchange.paths import ACCOUNTS, ADVANCE, CLOCK, FAULTS, SET_CLOCK, STATS

DEFAULT_TIMEOUT_S = 10.0
#: A fault plan as the model or as the JSON object ``POST /_paper/faults`` takes.
FaultPlanLike = FaultPlan | Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class PaperAccount:
    """A paper account's credentials (the secret is left out of ``repr``)."""

    account_id: str
    api_key: str
    api_secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class PaperClockView:
    """The replay clock as ``GET /_paper/clock`` shows it (epoch milliseconds; ``speed`` 0 is frozen)."""

    time_ms: int
    speed: float
    start_ms: int
    end_ms: int
    candle_ms: int
    at_end: bool

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> PaperClockView:
        """Parse the clock object; anything but integers where times belong is an ``ExchangeError``."""
        times = {name: body.get(name) for name in ("time_ms", "start_ms", "end_ms", "candle_ms")}
        if any(not isinstance(v, int) or isinstance(v, bool) for v in times.values()):
            raise ExchangeError("the paper exchange's clock is not a set of integer times", details=times)
        speed = body.get("speed")
        if not isinstance(speed, int | float) or isinstance(speed, bool):
            raise ExchangeError("the paper exchange's clock has no numeric speed")
        return cls(
            time_ms=int(body["time_ms"]),
            speed=float(speed),
            start_ms=int(body["start_ms"]),
            end_ms=int(body["end_ms"]),
            candle_ms=int(body["candle_ms"]),
            at_end=bool(body.get("at_end")),
        )


def _plan_json(plan: FaultPlanLike) -> dict[str, Any]:
    return plan.model_dump(mode="json") if isinstance(plan, FaultPlan) else dict(plan)


def _set_clock_json(time_ms: int | None, speed: float | None) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if time_ms is not None:
        body["time_ms"] = time_ms
    if speed is not None:
        body["speed"] = speed
    return body


def _unreachable(base_url: str, path: str, exc: httpx.HTTPError) -> ExchangeUnavailable:
    return ExchangeUnavailable(
        f"the paper exchange at {base_url} is unreachable: {exc}",
        details={"path": path, "reason": type(exc).__name__},
    )


def _body(response: httpx.Response, path: str, expected: int) -> dict[str, Any]:
    """The answer's JSON object, or an ``ExchangeError`` for a refusal or a body that is not one."""
    if response.status_code != expected:
        if path == ACCOUNTS:
            message = f"the paper exchange refused to create an account (HTTP {response.status_code})"
        else:
            message = f"the paper exchange refused {path} (HTTP {response.status_code})"
        raise ExchangeError(
            message, details={"http_status": response.status_code, "body": response.text[:500]}
        )
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ExchangeError(
            f"the paper exchange's answer to {path} is not a JSON object",
            details={"http_status": response.status_code},
        )
    return body


def _account(body: Mapping[str, Any]) -> PaperAccount:
    try:
        return PaperAccount(
            account_id=str(body["account_id"]),
            api_key=str(body["api_key"]),
            api_secret=str(body["api_secret"]),
        )
    except KeyError as missing:
        raise ExchangeError(f"the paper exchange's new account has no {missing}") from None


class PaperControls:
    """The ``/_paper`` controls of the paper exchange at ``base_url``, synchronously."""

    def __init__(
        self, base_url: str, *, http: httpx.Client | None = None, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = http
        self._timeout_s = timeout_s

    def _call(self, method: str, path: str, json: dict[str, Any] | None = None, expected: int = 200) -> Any:
        url = self.base_url + path
        try:
            if self._http is not None:
                response = self._http.request(method, url, json=json)
            else:
                response = httpx.request(method, url, json=json, timeout=self._timeout_s)
        except httpx.HTTPError as exc:
            raise _unreachable(self.base_url, path, exc) from exc
        return _body(response, path, expected)

    def clock(self) -> PaperClockView:
        """The replay clock (``GET /_paper/clock``)."""
        return PaperClockView.from_json(self._call("GET", CLOCK))

    def advance(self, candles: int) -> PaperClockView:
        """Run ``candles`` more 5-minute candles (fills, stops); the clock afterwards."""
        return PaperClockView.from_json(self._call("POST", ADVANCE, {"candles": candles}))

    def set_clock(self, *, time_ms: int | None = None, speed: float | None = None) -> PaperClockView:
        """Jump the replay forward to ``time_ms`` and/or change its ``speed``; the clock afterwards."""
        return PaperClockView.from_json(self._call("POST", SET_CLOCK, _set_clock_json(time_ms, speed)))

    def stats(self) -> dict[str, Any]:
        """``GET /_paper/stats``: requests per path, 403s, bans, 10006s, orders per account."""
        body: dict[str, Any] = self._call("GET", STATS)
        return body

    def faults(self) -> dict[str, Any]:
        """The faults in force: ``{"seed", "market": {...}, "order": {...}}``."""
        body: dict[str, Any] = self._call("GET", FAULTS)
        return body

    def set_faults(self, plan: FaultPlanLike) -> dict[str, Any]:
        """Replace every group's faults (and reset their generators); the faults now in force."""
        body: dict[str, Any] = self._call("POST", FAULTS, _plan_json(plan))
        return body

    def clear_faults(self, seed: int | None = None) -> dict[str, Any]:
        """No faults any more (with ``seed`` for the generators, if given)."""
        return self.set_faults({} if seed is None else {"seed": seed})

    def create_account(self, balance: Decimal | str | int = "10000") -> PaperAccount:
        """A new account funded with ``balance`` USDT (the one answer that carries a secret)."""
        return _account(self._call("POST", ACCOUNTS, {"balance": str(balance)}, expected=201))


class AsyncPaperControls:
    """The ``/_paper`` controls of the paper exchange at ``base_url``, asynchronously."""

    def __init__(
        self, base_url: str, *, http: httpx.AsyncClient | None = None, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = http
        self._timeout_s = timeout_s

    async def _call(
        self, method: str, path: str, json: dict[str, Any] | None = None, expected: int = 200
    ) -> Any:
        url = self.base_url + path
        try:
            if self._http is not None:
                response = await self._http.request(method, url, json=json)
            else:
                async with httpx.AsyncClient(timeout=self._timeout_s) as own:
                    response = await own.request(method, url, json=json)
        except httpx.HTTPError as exc:
            raise _unreachable(self.base_url, path, exc) from exc
        return _body(response, path, expected)

    async def clock(self) -> PaperClockView:
        """The replay clock (``GET /_paper/clock``)."""
        return PaperClockView.from_json(await self._call("GET", CLOCK))

    async def advance(self, candles: int) -> PaperClockView:
        """Run ``candles`` more 5-minute candles (fills, stops); the clock afterwards."""
        return PaperClockView.from_json(await self._call("POST", ADVANCE, {"candles": candles}))

    async def set_clock(self, *, time_ms: int | None = None, speed: float | None = None) -> PaperClockView:
        """Jump the replay forward to ``time_ms`` and/or change its ``speed``; the clock afterwards."""
        return PaperClockView.from_json(await self._call("POST", SET_CLOCK, _set_clock_json(time_ms, speed)))

    async def stats(self) -> dict[str, Any]:
        """``GET /_paper/stats`` (see :meth:`PaperControls.stats`)."""
        body: dict[str, Any] = await self._call("GET", STATS)
        return body

    async def faults(self) -> dict[str, Any]:
        """The faults in force: ``{"seed", "market": {...}, "order": {...}}``."""
        body: dict[str, Any] = await self._call("GET", FAULTS)
        return body

    async def set_faults(self, plan: FaultPlanLike) -> dict[str, Any]:
        """Replace every group's faults (and reset their generators); the faults now in force."""
        body: dict[str, Any] = await self._call("POST", FAULTS, _plan_json(plan))
        return body

    async def clear_faults(self, seed: int | None = None) -> dict[str, Any]:
        """No faults any more (with ``seed`` for the generators, if given)."""
        return await self.set_faults({} if seed is None else {"seed": seed})

    async def create_account(self, balance: Decimal | str | int = "10000") -> PaperAccount:
        """A new account funded with ``balance`` USDT (the one answer that carries a secret)."""
        return _account(await self._call("POST", ACCOUNTS, {"balance": str(balance)}, expected=201))
