"""``symbol-validator``: anyone checks a symbol's status and filters, and normalizes an order to them.

Filters come from the shared 5-minute instruments cache (``lib.services.instruments``). An unknown
symbol is a 404 ``not_found`` whose ``details.suggestions`` lists the closest listed symbols. The executor
does not come through here: it calls ``lib.services.symbol_validation.validate_symbol`` directly.
"""

from __future__ import annotations

from decimal import Decimal
from typing import cast

from functions.symbol_validator.models import (
    Filters,
    OrderViolation,
    SymbolValidatorRequest,
    SymbolValidatorResponse,
    ValidateSymbol,
    Validation,
)
from lib.app.context import Context
from lib.core.instruments import fmt
from lib.core.vocabulary import Environment
from lib.http.spec import FunctionSpec, StatusRequest, status_response
from lib.services.symbol_validation import SymbolValidation, served_environment, validate_symbol

NAME = "symbol-validator"


def _text(value: Decimal | None) -> str | None:
    return None if value is None else fmt(value)


def _to_response(request: ValidateSymbol, result: SymbolValidation) -> Validation:
    f = result.filters
    return Validation(
        symbol=f.symbol,
        category=request.category,
        # The model validates it again: the deployment's setting names one of the four environments.
        environment=cast(Environment, result.environment),
        status=f.status,
        trading=f.is_trading,
        filters=Filters(
            tick_size=fmt(f.tick_size),
            qty_step=fmt(f.qty_step),
            min_qty=fmt(f.min_qty),
            max_qty=fmt(f.max_qty),
            min_notional=fmt(f.min_notional),
        ),
        normalized_qty=_text(result.normalized_qty),
        normalized_price=_text(result.normalized_price),
        notional=_text(result.notional),
        violations=[
            OrderViolation(code=v.code, message=v.message, limit=_text(v.limit), actual=_text(v.actual))
            for v in result.violations
        ],
        ok=result.ok,
        fetched_at=result.fetched_at.isoformat(),
        stale=result.stale,
    )


async def handle(request: ValidateSymbol | StatusRequest, ctx: Context) -> SymbolValidatorResponse:
    """Parse, call lib, map."""
    if isinstance(request, StatusRequest):
        return await status_response(NAME)
    environment = await served_environment(ctx.db, request.environment)
    result = await validate_symbol(
        ctx.db,
        ctx.services.market,
        ctx.clock,
        symbol=request.symbol,
        category=request.category,
        environment=environment,
        qty=request.qty,
        price=request.price,
        price_rounding=request.price_rounding,
    )
    return _to_response(request, result)


SPEC = FunctionSpec(
    name=NAME,
    summary="A symbol's status and filters from the 5-minute instruments cache; normalizes qty/price "
    "to step/tick and lists what the order breaks; unknown symbols get close suggestions (404)",
    request_type=SymbolValidatorRequest,
    response_type=SymbolValidatorResponse,
    handler=handle,
    access={"validate": "anyone", "status": "anyone"},
    default_access="anyone",
    http_get=True,
)
