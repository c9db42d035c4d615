"""``signals-api``: anyone reads recent signals for display, filtered and paginated with a cursor."""

from __future__ import annotations

from functions.signals_api.models import ListSignals, SignalsPage, SignalsRequest, SignalsResponse
from lib.app.context import Context
from lib.http.spec import FunctionSpec, StatusRequest, status_response
from lib.services.evidence import score_evidence
from lib.services.signals_query import SignalFilters, list_signals

NAME = "signals-api"


async def handle(request: ListSignals | StatusRequest, ctx: Context) -> SignalsResponse:
    """Parse, call lib, map. Runs as the caller (anon without a token), so RLS decides visibility."""
    if isinstance(request, StatusRequest):
        return await status_response(NAME)
    filters = SignalFilters(
        symbol=request.symbol,
        algorithm=request.algorithm,
        timeframe=request.timeframe,
        direction=request.direction,
        min_score=request.min_score,
        since=request.since,
    )
    page = await list_signals(ctx.db, ctx.caller, filters, limit=request.limit, cursor=request.cursor)
    return SignalsPage(signals=page.signals, next_cursor=page.next_cursor, evidence=score_evidence())


SPEC = FunctionSpec(
    name=NAME,
    summary="Recent signals for display: filter by symbol, algorithm, timeframe, direction, min score, "
    "since; newest first with a cursor",
    request_type=SignalsRequest,
    response_type=SignalsResponse,
    handler=handle,
    access={"list": "anyone", "status": "anyone"},
    default_access="anyone",
    http_get=True,
)
