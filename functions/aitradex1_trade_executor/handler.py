"""``aitradex1-trade-executor``: execute pending signals (cron), a user's own trade, and report state."""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

from functions.aitradex1_trade_executor.models import (
    ExecutePending,
    ExecuteTrade,
    ExecutorRequest,
    ExecutorResponse,
    ExecutorState,
    ExecutorStatus,
    PendingResult,
    TradeResult,
)
from lib.app.context import Context
from lib.app.wiring import executor_deps
from lib.http.spec import FunctionSpec
from lib.services.execution.deps import outcomes_summary
from lib.services.execution.fanout import execute_pending
from lib.services.execution.manual import ManualOrder, execute_manual_for_user, execute_signal_for_user
from lib.services.execution.status import queue_status

NAME = "aitradex1-trade-executor"


async def handle(request: ExecutePending | ExecuteTrade | ExecutorStatus, ctx: Context) -> ExecutorResponse:
    """Parse, call lib, map."""
    now = ctx.clock.now()
    if isinstance(request, ExecutorStatus):
        counts = await queue_status(ctx.db, now)
        return ExecutorState(
            function=NAME,
            pending_signals=counts["pending"],
            processing_signals=counts["processing"],
            requested_orders=counts["requested"],
            open_orders=counts["open_orders"],
        )
    deps = executor_deps(ctx.services, worker=f"{NAME}:{ctx.request_id[:12]}")
    if isinstance(request, ExecutePending):
        report = await execute_pending(deps, now=now, batch_size=request.batch_size)
        return PendingResult(
            claimed=report.claimed,
            expired=report.expired,
            outcomes=outcomes_summary(report.outcomes),
            duration_ms=report.duration_ms,
        )
    user_id = UUID(ctx.require_user_id())
    if request.signal_id is not None:
        outcome = await execute_signal_for_user(deps, user_id=user_id, signal_id=request.signal_id, now=now)
    else:
        order = ManualOrder(
            symbol=str(request.symbol),
            side=request.side or "Buy",  # the model guarantees symbol, side, amount and key are all set
            amount_usd=request.amount_usd or Decimal(0),
            client_order_id=str(request.client_order_id),
            stop_loss=request.stop_loss,
            take_profit=request.take_profit,
        )
        market = ctx.services.market
        outcome = await execute_manual_for_user(deps, market, user_id=user_id, order=order, now=now)
    return TradeResult(outcome=outcome.outcome, order_link_id=outcome.order_link_id, reason=outcome.reason)


SPEC = FunctionSpec(
    name=NAME,
    summary="Execute pending signals for eligible users (service), a user's own trade (user), executor state",
    request_type=ExecutorRequest,
    response_type=ExecutorResponse,
    handler=handle,
    access={"execute_pending": "service", "execute_trade": "user", "status": "anyone"},
    default_access="service",
)
