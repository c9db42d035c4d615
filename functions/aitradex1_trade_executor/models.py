"""Request and response models of ``aitradex1-trade-executor``."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field, StringConstraints, model_validator

from lib.core.vocabulary import Symbol
from lib.http.spec import Request, Response

ClientOrderId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class ExecutePending(Request):
    """Claim new signals and execute each for its eligible users (cron, service role)."""

    action: Literal["execute_pending"]
    batch_size: Annotated[int, Field(ge=1, le=500)] = 50


class ExecuteTrade(Request):
    """Execute one signal for the caller, or a manual order (symbol, side, amount_usd, client_order_id)."""

    action: Literal["execute_trade"]
    signal_id: UUID | None = None
    symbol: Symbol | None = None
    side: Literal["Buy", "Sell"] | None = None
    amount_usd: Annotated[Decimal, Field(gt=0, le=10_000_000, max_digits=20, decimal_places=8)] | None = None
    client_order_id: ClientOrderId | None = Field(
        default=None, description="your idempotency key: the same key never places a second order"
    )
    stop_loss: Annotated[Decimal, Field(gt=0, max_digits=30, decimal_places=18)] | None = None
    take_profit: Annotated[Decimal, Field(gt=0, max_digits=30, decimal_places=18)] | None = None

    @model_validator(mode="after")
    def one_kind(self) -> ExecuteTrade:
        manual = (self.symbol, self.side, self.amount_usd, self.client_order_id)
        if self.signal_id is not None:
            if any(v is not None for v in (*manual, self.stop_loss, self.take_profit)):
                raise ValueError("give either signal_id, or symbol/side/amount_usd/client_order_id, not both")
        elif any(v is None for v in manual):
            raise ValueError("a manual trade needs symbol, side, amount_usd and client_order_id")
        return self


class ExecutorStatus(Request):
    """Liveness, and the executor's queue at a glance."""

    action: Literal["status"]


ExecutorRequest = Annotated[ExecutePending | ExecuteTrade | ExecutorStatus, Field(discriminator="action")]


class PendingResult(Response):
    claimed: int
    expired: int
    outcomes: dict[str, int]
    duration_ms: float


class TradeResult(Response):
    outcome: str
    order_link_id: str | None
    reason: str


class ExecutorState(Response):
    function: str
    status: Literal["ok"] = "ok"
    pending_signals: int
    processing_signals: int
    requested_orders: int
    open_orders: int


ExecutorResponse = PendingResult | TradeResult | ExecutorState
