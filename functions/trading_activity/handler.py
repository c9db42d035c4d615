"""``trading-activity``: a signed-in user's own orders, positions, trade log and P&L summary.

Actions (all for the user's token; ``status`` for anyone):

- ``orders``: keyset pages (at most 200), optional ``status`` list and ``symbol``;
- ``positions``: open positions with unrealized P&L at the last price (null, with the reason, when the
  exchange gives no price);
- ``trade_logs``: the event timeline, optionally of one ``order_id``, in pages;
- ``summary``: realized P&L today (UTC), over 7 days and in total, fees, win rate, open risk, and the
  realized-P&L series for an equity chart.

It runs as the caller, so RLS decides what it returns. The service role is refused (403): it would
see every user's rows at once, and "my activity" means nothing for it; operators have the database.
"""

from __future__ import annotations

from functions.trading_activity.models import (
    GetSummary,
    ListOrders,
    ListPositions,
    ListTradeLogs,
    OrdersPage,
    OrderView,
    PnlPoint,
    PositionsList,
    PositionView,
    Summary,
    TradeLogsPage,
    TradeLogView,
    TradingActivityRequest,
    TradingActivityResponse,
)
from lib.app.context import Context
from lib.http.spec import FunctionSpec, StatusRequest, status_response
from lib.services import activity

NAME = "trading-activity"


async def handle(
    request: ListOrders | ListPositions | ListTradeLogs | GetSummary | StatusRequest, ctx: Context
) -> TradingActivityResponse:
    """Parse, call lib, map."""
    if isinstance(request, StatusRequest):
        return await status_response(NAME)
    ctx.require_user_id()
    if isinstance(request, ListOrders):
        page = await activity.list_orders(
            ctx.db,
            ctx.caller,
            statuses=request.status,
            symbol=request.symbol,
            cursor=request.cursor,
            limit=request.limit,
        )
        return OrdersPage(
            orders=[OrderView.model_validate(r) for r in page.rows], next_cursor=page.next_cursor
        )
    if isinstance(request, ListPositions):
        rows = await activity.open_positions(ctx.db, ctx.caller, ctx.services.market)
        return PositionsList(positions=[PositionView.model_validate(r) for r in rows], as_of=ctx.clock.now())
    if isinstance(request, ListTradeLogs):
        page = await activity.list_trade_logs(
            ctx.db, ctx.caller, order_id=request.order_id, cursor=request.cursor, limit=request.limit
        )
        return TradeLogsPage(
            trade_logs=[TradeLogView.model_validate(r) for r in page.rows], next_cursor=page.next_cursor
        )
    figures = await activity.summary(ctx.db, ctx.caller, now=ctx.clock.now())
    totals = figures.totals
    return Summary(
        as_of=figures.as_of,
        realized_pnl_today=totals.pnl_today,
        realized_pnl_7d=totals.pnl_7d,
        realized_pnl_total=totals.pnl_total,
        fees_paid=totals.fees,
        closed_positions=totals.closed,
        wins=totals.wins,
        losses=totals.losses,
        win_rate=figures.win_rate,
        open_positions=figures.open_positions,
        open_risk=figures.open_risk,
        open_positions_without_stop=figures.open_positions_without_stop,
        pnl_series=[PnlPoint.model_validate(p) for p in figures.series],
    )


SPEC = FunctionSpec(
    name=NAME,
    summary="The signed-in user's own orders, open positions, trade log and P&L summary (RLS decides)",
    request_type=TradingActivityRequest,
    response_type=TradingActivityResponse,
    handler=handle,
    access={"status": "anyone"},
    default_access="user",
)
