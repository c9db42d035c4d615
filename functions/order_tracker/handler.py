"""``order-tracker``: follow every order to its end; reconcile after crashes (cron, service role)."""

from __future__ import annotations

from functions.order_tracker.models import (
    OrderTrackerRequest,
    OrderTrackerResponse,
    TrackRequest,
    TrackResult,
)
from lib.app.context import Context
from lib.app.wiring import tracker_deps
from lib.http.spec import FunctionSpec, StatusRequest, status_response
from lib.services.tracking import track_orders

NAME = "order-tracker"


async def handle(request: TrackRequest | StatusRequest, ctx: Context) -> OrderTrackerResponse:
    """Parse, call lib, map."""
    if isinstance(request, StatusRequest):
        return await status_response(NAME)
    report = await track_orders(tracker_deps(ctx.services), now=ctx.clock.now(), limit=request.limit)
    return TrackResult(
        checked=report.checked, transitions=report.transitions, closed=report.closed, errors=report.errors
    )


SPEC = FunctionSpec(
    name=NAME,
    summary="Sync open orders and positions from the exchange; reconcile orders left in requested",
    request_type=OrderTrackerRequest,
    response_type=OrderTrackerResponse,
    handler=handle,
    access={"track": "service", "status": "anyone"},
    default_access="service",
)
