"""Request and response models of ``unireli-core-scanner``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import Discriminator, Field, Tag

from lib.core.vocabulary import Algorithm, Symbol, Timeframe
from lib.http.spec import Request, Response, StatusRequest, StatusResponse
from lib.services.scanning.universe import MAX_SYMBOLS_CAP


class RunScan(Request):
    """Scan one timeframe with one algorithm (``action`` may be left out: scanning is the default).

    Without ``symbols`` the universe comes from the exchange's tickers and ``scanner.universe``.
    """

    action: Literal["scan"] = "scan"
    timeframe: Annotated[Timeframe, Field(description="Bybit kline interval")]
    algorithm: Algorithm = "unirail_core"
    symbols: (
        Annotated[
            list[Symbol],
            Field(min_length=1, max_length=MAX_SYMBOLS_CAP, description="scan exactly these, in this order"),
        ]
        | None
    ) = None
    max_symbols: (
        Annotated[int, Field(ge=1, le=MAX_SYMBOLS_CAP, description="replaces scanner.universe's cap")] | None
    ) = None
    min_score: (
        Annotated[float, Field(ge=0, le=100, description="replaces scanner.threshold for this run")] | None
    ) = None
    dry_run: Annotated[bool, Field(description="score and record the run, store no signal")] = False


def _action(value: Any) -> str | None:
    action = value.get("action", "scan") if isinstance(value, dict) else getattr(value, "action", None)
    return action if isinstance(action, str) else None


ScannerRequest = Annotated[
    Annotated[RunScan, Tag("scan")] | Annotated[StatusRequest, Tag("status")],
    Discriminator(_action),
]


class ScanError(Response):
    """A symbol that could not be scored (``symbol`` null: the whole run)."""

    symbol: str | None
    code: str
    message: str


class ScanReport(Response):
    """One finished scan run, as recorded in ``scan_runs``."""

    run_id: UUID
    status: Literal["succeeded", "partial", "failed"]
    timeframe: Timeframe
    algorithm: Algorithm
    dry_run: bool
    threshold: float
    bar_time: datetime | None = Field(description="open time of the closed bar scored")
    symbols_requested: int
    symbols_scanned: int
    candidates: int
    qualified: int = Field(description="candidates at or above the threshold")
    signals_created: int
    duplicates: int = Field(description="qualified candidates already stored for this bar")
    signal_ids: list[UUID]
    errors: list[ScanError]
    duration_ms: int


ScannerResponse = ScanReport | StatusResponse
