"""``aitradex1-trade-executor``: execute pending signals (cron), a user's own trade, and report state.

Actions:

- ``execute_pending`` (service): claim new signals and fan each out to its eligible users;
- ``execute_trade`` (user): one signal, or a manual market order;
- ``close_position`` (user): a reduce-only market close of the caller's open position of one order;
- ``cancel_order`` (user): cancel one of the caller's orders still open on the exchange;
- ``set_trading_halted`` (service): the operator kill switch (``halted``, ``reason``), audited;
- ``status`` (anyone): the queue at a glance, and whether trading is halted.

Both exits are idempotent (a repeat answers the same outcome with ``repeated: true`` and sends
nothing) and answer 404 for an order the caller cannot see, another user's included. While trading
is halted, ``execute_pending`` and ``execute_trade`` place nothing; exits go on.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from uuid import UUID

from functions.aitradex1_trade_executor.models import (
    CancelOrder,
    ClosePosition,
    ExecutePending,
    ExecuteTrade,
    ExecutorRequest,
    ExecutorResponse,
    ExecutorState,
    ExecutorStatus,
    ExitResult,
    PendingResult,
    SetTradingHalted,
    TradeResult,
    TradingHaltState,
)
from lib.app.context import Context
from lib.app.wiring import executor_deps, tracker_deps
from lib.http.spec import FunctionSpec
from lib.services.execution.deps import outcomes_summary
from lib.services.execution.exits import ExitReport, cancel_order, close_position
from lib.services.execution.fanout import execute_pending
from lib.services.execution.halt import set_trading_halted, trading_state
from lib.services.execution.manual import ManualOrder, execute_manual_for_user, execute_signal_for_user
from lib.services.execution.status import queue_status

NAME = "aitradex1-trade-executor"


def _exit_result(action: str, report: ExitReport) -> ExitResult:
    return ExitResult.model_validate({"action": action, **dataclasses.asdict(report)})


async def handle(
    request: ExecutePending | ExecuteTrade | ExecutorStatus | ClosePosition | CancelOrder | SetTradingHalted,
    ctx: Context,
) -> ExecutorResponse:
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
            trading_halted=(await trading_state(ctx.db)).halted,
        )
    if isinstance(request, SetTradingHalted):
        state = await set_trading_halted(
            ctx.db, ctx.caller, halted=request.halted, reason=request.reason, by="service_role", now=now
        )
        return TradingHaltState(
            trading_halted=state.halted, reason=state.reason, changed_at=state.at, changed_by=state.by
        )
    if isinstance(request, ClosePosition | CancelOrder):
        exit_deps = tracker_deps(ctx.services)
        exit_call = close_position if isinstance(request, ClosePosition) else cancel_order
        return _exit_result(request.action, await exit_call(exit_deps, ctx.caller, request.order_id, now=now))
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
    access={
        "execute_pending": "service",
        "execute_trade": "user",
        "close_position": "user",
        "cancel_order": "user",
        "set_trading_halted": "service",
        "status": "anyone",
    },
    default_access="service",
)
