"""``unireli-core-scanner``: the service role scans a timeframe and stores the signals that qualify."""

from __future__ import annotations

from dataclasses import asdict

from functions.unireli_core_scanner.models import (
    RunScan,
    ScannerRequest,
    ScannerResponse,
    ScanReport,
)
from lib.app.context import Context
from lib.http.spec import FunctionSpec, StatusRequest, status_response
from lib.services.scanning.models import ScanRequest
from lib.services.scanning.scanner import scan

NAME = "unireli-core-scanner"


async def handle(request: RunScan | StatusRequest, ctx: Context) -> ScannerResponse:
    """Parse, call lib, map. The scan writes as service_role, the only role allowed to call it."""
    if isinstance(request, StatusRequest):
        return await status_response(NAME)
    result = await scan(
        ScanRequest(
            timeframe=request.timeframe,
            algorithm=request.algorithm,
            symbols=None if request.symbols is None else tuple(request.symbols),
            max_symbols=request.max_symbols,
            min_score=request.min_score,
            dry_run=request.dry_run,
        ),
        db=ctx.db,
        market_access=ctx.services.market,
    )
    return ScanReport.model_validate(asdict(result))


SPEC = FunctionSpec(
    name=NAME,
    summary="Scan a timeframe: universe from tickers, klines, one vectorized score (unirail_core or "
    "quantum_ai), store signals at or above the threshold; records the run in scan_runs",
    request_type=ScannerRequest,
    response_type=ScannerResponse,
    handler=handle,
    access={"scan": "service", "status": "anyone"},
    default_access="service",
)
