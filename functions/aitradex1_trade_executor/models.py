"""Request and response models of ``aitradex1-trade-executor``."""

from __future__ import annotations

from datetime import datetime
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


class ClosePosition(Request):
    """Close the caller's open position of one of their orders with a reduce-only market order.

    Idempotent: the close order's orderLinkId is derived from the order's, so a second call sends
    nothing and answers the same outcome. Another user's order is a 404, as if it did not exist.
    """

    action: Literal["close_position"]
    order_id: UUID


class CancelOrder(Request):
    """Cancel one of the caller's orders that is still open on the exchange (idempotent; 404 for others')."""

    action: Literal["cancel_order"]
    order_id: UUID


class SetTradingHalted(Request):
    """The operator kill switch (service role): while halted, no executor path places a new order.

    Exits (``close_position``, ``cancel_order``) and the order tracker go on.
    """

    action: Literal["set_trading_halted"]
    halted: bool
    reason: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = None


ExecutorRequest = Annotated[
    ExecutePending | ExecuteTrade | ExecutorStatus | ClosePosition | CancelOrder | SetTradingHalted,
    Field(discriminator="action"),
]


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
    trading_halted: bool = False


ExitOutcome = Literal["closed", "close_pending", "cancelled"]


class ExitResult(Response):
    """What ``close_position`` or ``cancel_order`` did to the order (the same answer on a repeat call).

    ``closed``: the position is flat and its exit recorded (``exit_price``, ``exit_reason``,
    ``realized_pnl``; the reason is ``TakeProfit``/``StopLoss`` if that closed it first).
    ``close_pending``: the close order was sent but its fill is not known yet (the tracker records it).
    ``cancelled``: the exchange cancelled the order. ``repeated`` is true when an earlier call had
    already done it, and this one sent nothing to the exchange.
    """

    order_id: UUID
    action: Literal["close_position", "cancel_order"]
    outcome: ExitOutcome
    status: str = Field(description="the order's status after the call")
    close_order_link_id: str | None = Field(default=None, description="the reduce-only close order's id")
    exit_price: Decimal | None = None
    exit_reason: Literal["TakeProfit", "StopLoss", "Closed"] | None = None
    realized_pnl: Decimal | None = None
    repeated: bool = False


class TradingHaltState(Response):
    """The kill switch as stored: whether trading is halted, why, since when and set by whom."""

    trading_halted: bool
    reason: str | None = None
    changed_at: datetime | None = None
    changed_by: str | None = None


ExecutorResponse = PendingResult | TradeResult | ExecutorState | ExitResult | TradingHaltState
