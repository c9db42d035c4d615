"""Request and response models of ``order-tracker``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from lib.http.spec import Request, Response, StatusRequest, StatusResponse


class TrackRequest(Request):
    """Sync every non-final order with the exchange and reconcile what a crash left in ``requested``."""

    action: Literal["track"]
    limit: Annotated[int, Field(ge=1, le=50_000)] = 5000


OrderTrackerRequest = Annotated[TrackRequest | StatusRequest, Field(discriminator="action")]


class TrackResult(Response):
    checked: int
    transitions: dict[str, int]
    closed: int
    errors: list[dict[str, str]]


OrderTrackerResponse = TrackResult | StatusResponse
