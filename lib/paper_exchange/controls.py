"""The paper exchange's local ``/_paper`` controls: the replay clock, the injected faults, new accounts,
and the request counters (``GET /_paper/stats``: requests per path, 403s and bans, 10006s, and each
account's orders that carry an ``orderLinkId`` per symbol, which is how a bench counts duplicates on
the book).

They answer plain JSON (not Bybit's envelope), only to loopback clients; errors are
``{"error": {"code", "message", "details"}}`` with the error's HTTP status. Their one client is
:mod:`lib.paper_exchange.client`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lib.errors import AitradexError, Forbidden, InvalidRequest, MalformedBody
from lib.paper_exchange.engine import PaperEngine
from lib.paper_exchange.faults import FaultPlan
from lib.paper_exchange.json_body import BodyError, load_json_object
from lib.paper_exchange.numbers import parse_balance
from lib.paper_exchange.paths import ACCOUNTS, ADVANCE, CLOCK, FAULTS, SET_CLOCK, STATS

_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


class AdvanceBody(BaseModel):
    """``POST /_paper/clock/advance``."""

    model_config = ConfigDict(extra="forbid")
    candles: int = Field(ge=0, le=10_000_000)


class SetClockBody(BaseModel):
    """``POST /_paper/clock/set``: a time to jump forward to, a new speed, or both."""

    model_config = ConfigDict(extra="forbid")
    time_ms: int | None = Field(default=None, ge=0)
    speed: float | None = Field(default=None, ge=0, allow_inf_nan=False)


class AccountBody(BaseModel):
    """``POST /_paper/accounts``."""

    model_config = ConfigDict(extra="forbid")
    balance: str | int | float = "10000"


def _control_error(exc: AitradexError) -> JSONResponse:
    return JSONResponse(exc.to_dict(), status_code=exc.http_status)


async def _control_body(request: Request, model: type[BaseModel]) -> Any:
    try:
        body = load_json_object(await request.body())
    except BodyError as exc:
        raise MalformedBody(str(exc)) from None
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        errors = [{"field": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in exc.errors()]
        raise InvalidRequest("invalid control request", details={"errors": errors}) from None


ControlHandler = Callable[[Request], Awaitable[tuple[dict[str, Any], int]]]


def _control_endpoint(handler: ControlHandler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            if request.client is None or request.client.host not in _LOOPBACK:
                raise Forbidden("the /_paper controls answer local clients only")
            body, status = await handler(request)
        except AitradexError as exc:
            return _control_error(exc)
        return JSONResponse(body, status_code=status)

    return endpoint


def control_routes(engine: PaperEngine) -> list[Route]:
    """The ``/_paper`` routes of ``engine``: its clock, its faults, its accounts (loopback clients only)."""

    async def get_clock(request: Request) -> tuple[dict[str, Any], int]:
        return engine.clock_view(), 200

    async def advance(request: Request) -> tuple[dict[str, Any], int]:
        body: AdvanceBody = await _control_body(request, AdvanceBody)
        engine.advance(body.candles)
        return engine.clock_view(), 200

    async def set_clock(request: Request) -> tuple[dict[str, Any], int]:
        body: SetClockBody = await _control_body(request, SetClockBody)
        if body.time_ms is None and body.speed is None:
            raise InvalidRequest("give time_ms, speed or both")
        if body.time_ms is not None:
            engine.set_time(body.time_ms)
        if body.speed is not None:
            engine.set_speed(body.speed)
        return engine.clock_view(), 200

    async def get_faults(request: Request) -> tuple[dict[str, Any], int]:
        specs = {group: spec.model_dump() for group, spec in engine.faults.specs().items()}
        return {"seed": engine.faults.seed, **specs}, 200

    async def set_faults(request: Request) -> tuple[dict[str, Any], int]:
        plan: FaultPlan = await _control_body(request, FaultPlan)
        engine.faults.configure(plan)
        return await get_faults(request)

    async def create_account(request: Request) -> tuple[dict[str, Any], int]:
        body: AccountBody = await _control_body(request, AccountBody)
        account = engine.create_account(parse_balance(body.balance))
        # The one answer that carries a secret: the caller needs it to sign requests.
        return {
            "account_id": account.account_id,
            "api_key": account.api_key,
            "api_secret": account.api_secret,
        }, 201

    async def stats(request: Request) -> tuple[dict[str, Any], int]:
        return engine.stats(), 200

    return [
        Route(STATS, _control_endpoint(stats), methods=["GET"]),
        Route(CLOCK, _control_endpoint(get_clock), methods=["GET"]),
        Route(ADVANCE, _control_endpoint(advance), methods=["POST"]),
        Route(SET_CLOCK, _control_endpoint(set_clock), methods=["POST"]),
        Route(FAULTS, _control_endpoint(get_faults), methods=["GET"]),
        Route(FAULTS, _control_endpoint(set_faults), methods=["POST"]),
        Route(ACCOUNTS, _control_endpoint(create_account), methods=["POST"]),
    ]
