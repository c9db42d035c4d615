"""``diagnostics``: is the system healthy? The summary for anyone, every check for the service role."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from functions.diagnostics.models import Check, DiagnosticsRequest, DiagnosticsResponse, HealthDocument
from lib.app.context import Context
from lib.app.wiring import market_now
from lib.db.session import Caller
from lib.http.spec import FunctionSpec, status_response
from lib.services.diagnostics import HealthReport, run_checks
from lib.services.evidence import score_evidence

NAME = "diagnostics"


def _status_calls(ctx: Context) -> dict[str, Callable[[], Awaitable[Any]]]:
    from functions import registry

    service_ctx = Context(caller=Caller.service(), services=ctx.services, request_id=ctx.request_id)
    calls: dict[str, Callable[[], Awaitable[Any]]] = {}
    for name, spec in registry().items():
        if name == NAME:
            continue  # diagnostics is answering right now
        calls[name] = partial(
            spec.handler, spec.request_adapter.validate_python({"action": "status"}), service_ctx
        )
    return calls


async def handle(request: DiagnosticsRequest, ctx: Context) -> DiagnosticsResponse:
    """Parse, call lib, map; only the service role sees the checks."""
    if request.action == "status":
        return await status_response(NAME)

    def run() -> Awaitable[HealthReport]:
        return run_checks(
            db=ctx.db,
            market=ctx.services.market,
            environment=None,
            now=ctx.clock.now(),
            status_calls=_status_calls(ctx),
            market_now=market_now(ctx.services),
            vault=ctx.services.vault,
        )

    is_service = ctx.caller.role == "service_role"
    cache = ctx.services.health_cache
    # The service role never gets a cached report; concurrent service-role calls share one run.
    report = await (cache.fresh(run) if is_service else cache.get(run))
    checks = None
    if is_service:
        checks = [
            Check(
                name=c.name,
                status=c.status,
                latency_ms=c.latency_ms,
                message=c.message,
                cold=c.cold,
                details=c.details,
            )
            for c in report.checks
        ]
    return HealthDocument(
        status=report.status,
        checked_at=report.checked_at,
        checks=checks,
        trading_halted=report.trading_halted,
        evidence=score_evidence(),
    )


SPEC = FunctionSpec(
    name=NAME,
    summary="Health of the database, exchange, functions, scans, instruments cache and execution queue",
    request_type=DiagnosticsRequest,
    response_type=DiagnosticsResponse,
    handler=handle,
    default_access="anyone",
    http_get=True,
)
