"""``signals-api``: anyone reads recent signals for display, filtered and paginated with a cursor."""

from __future__ import annotations

from typing import cast

from functions.signals_api.models import (
    Candle,
    CandlesPage,
    GetCandles,
    ListSignals,
    SignalsPage,
    SignalsRequest,
    SignalsResponse,
)
from lib.app.context import Context
from lib.core.vocabulary import Environment
from lib.http.spec import FunctionSpec, StatusRequest, status_response
from lib.services.evidence import score_evidence
from lib.services.signals_query import SignalFilters, list_signals, recent_candles

NAME = "signals-api"


async def _candles(request: GetCandles, ctx: Context) -> CandlesPage:
    series = await recent_candles(
        ctx.db,
        ctx.services.market,
        ctx.clock,
        symbol=request.symbol,
        timeframe=request.timeframe,
        limit=request.limit,
        end_ms=None if request.end is None else int(request.end.timestamp() * 1000),
    )
    k = series.klines
    return CandlesPage(
        symbol=k.symbol,
        timeframe=request.timeframe,
        # The model validates it again: the deployment's setting names one of the four environments.
        environment=cast(Environment, series.environment),
        candles=[
            Candle(t=int(t), o=float(o), h=float(h), l=float(low), c=float(c), v=float(v))
            for t, o, h, low, c, v in zip(
                k.open_time_ms, k.open, k.high, k.low, k.close, k.volume, strict=True
            )
        ],
    )


async def handle(request: ListSignals | GetCandles | StatusRequest, ctx: Context) -> SignalsResponse:
    """Parse, call lib, map. Runs as the caller (anon without a token), so RLS decides visibility."""
    if isinstance(request, StatusRequest):
        return await status_response(NAME)
    if isinstance(request, GetCandles):
        return await _candles(request, ctx)
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
    "since; newest first with a cursor. `candles`: a symbol's recent candles (at most 500) for a chart",
    request_type=SignalsRequest,
    response_type=SignalsResponse,
    handler=handle,
    access={"list": "anyone", "candles": "anyone", "status": "anyone"},
    default_access="anyone",
    http_get=True,
)
