"""Request and response models of ``symbol-validator``.

Numbers of the exchange's filters and of normalized orders are strings in plain notation
(``"0.000001"``), as Bybit writes them: a JSON float would lose the exact tick.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field

from lib.core.instruments import Rounding, ViolationCode
from lib.core.vocabulary import Environment, Symbol
from lib.http.spec import Request, Response, StatusRequest, StatusResponse

# Bounded so that no value a caller sends can overflow Decimal arithmetic or carry absurd precision.
OrderNumber = Annotated[
    Decimal,
    Field(gt=0, le=Decimal("1e15"), max_digits=34, decimal_places=18, allow_inf_nan=False),
]


class ValidateSymbol(Request):
    """Is ``symbol`` listed and trading? What are ``qty`` and ``price`` once normalized; are they valid?"""

    action: Literal["validate"]
    symbol: Symbol
    # The categories this system trades (and the paper exchange lists).
    category: Literal["linear", "spot"] = "linear"
    qty: OrderNumber | None = Field(default=None, description="order quantity in base units; rounded down")
    price: OrderNumber | None = Field(default=None, description="order or reference price; rounded to tick")
    price_rounding: Rounding = Field(
        default="nearest",
        description="nearest for an entry; down for a LONG's stop-loss, up for a SHORT's (away from entry)",
    )
    environment: Environment | None = Field(
        default=None,
        description="defaults to the deployment's (app_settings exchange.environment), the only one served",
    )


SymbolValidatorRequest = Annotated[ValidateSymbol | StatusRequest, Field(discriminator="action")]


class Filters(Response):
    """The exchange's order filters for the symbol."""

    tick_size: str
    qty_step: str
    min_qty: str
    max_qty: str
    min_notional: str


class OrderViolation(Response):
    """One filter the normalized order breaks."""

    code: ViolationCode
    message: str
    limit: str | None
    actual: str | None


class Validation(Response):
    """The symbol's status and filters; the order normalized and checked when ``qty`` was given."""

    symbol: str
    category: Literal["linear", "spot"]
    environment: Environment
    status: str
    trading: bool
    filters: Filters
    normalized_qty: str | None
    normalized_price: str | None
    notional: str | None = Field(description="normalized qty x normalized price, when both were given")
    violations: list[OrderViolation]
    ok: bool = Field(description="the symbol trades and the normalized order breaks no filter")
    fetched_at: str = Field(description="when the filters were fetched from the exchange")
    stale: bool = Field(description="served past the cache's expiry (a refresh is running or failed)")


SymbolValidatorResponse = Validation | StatusResponse
