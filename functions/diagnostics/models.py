"""Request and response models of ``diagnostics``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from lib.core.evidence import ScoreEvidence
from lib.http.spec import Request, Response, StatusResponse

Health = Literal["healthy", "degraded", "down"]


class DiagnosticsRequest(Request):
    """``check`` (the default, so an empty body works) runs every health check; ``status`` is liveness."""

    action: Literal["check", "status"] = "check"


class Check(Response):
    name: str
    status: Health
    latency_ms: float
    message: str
    cold: bool
    details: dict[str, Any]


class HealthDocument(Response):
    """The health document."""

    status: Health
    checked_at: datetime
    checks: list[Check] | None = Field(default=None, description="present for the service role only")
    trading_halted: bool = Field(
        default=False, description="the operator kill switch: no new orders while true (exits go on)"
    )
    evidence: dict[str, list[ScoreEvidence]] = Field(
        default_factory=dict,
        description="per algorithm, whether its score showed an edge after fees out of sample",
    )


DiagnosticsResponse = HealthDocument | StatusResponse
