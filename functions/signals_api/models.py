"""Request and response models of ``signals-api``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field

from lib.core.evidence import ScoreEvidence
from lib.core.signal import Signal
from lib.core.vocabulary import Algorithm, Direction, Symbol, Timeframe
from lib.http.spec import Request, Response, StatusRequest, StatusResponse
from lib.services.signals_query import DEFAULT_LIMIT, MAX_LIMIT


class ListSignals(Request):
    """Recent signals, newest first; every filter is optional and they combine with AND."""

    action: Literal["list"]
    symbol: Symbol | None = None
    algorithm: Algorithm | None = None
    timeframe: Timeframe | None = None
    direction: Direction | None = None
    min_score: Annotated[float, Field(ge=0, le=100)] | None = None
    # Timezone required: a naive time would silently mean the server's zone.
    since: Annotated[AwareDatetime, Field(description="signals created at or after this instant")] | None = (
        None
    )
    # Above the maximum is refused, never clamped: a client asking for 500 must learn it gets 200.
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    cursor: (
        Annotated[
            str, Field(min_length=1, max_length=200, description="next_cursor of the previous page, as is")
        ]
        | None
    ) = None


SignalsRequest = Annotated[ListSignals | StatusRequest, Field(discriminator="action")]


class SignalsPage(Response):
    """One page, newest first; pass ``next_cursor`` back for the next page (null on the last one)."""

    # The stored signal's own dataclass: its fields (and their schema) are defined once, in lib.core.
    signals: list[Signal]
    next_cursor: str | None
    evidence: dict[str, list[ScoreEvidence]] = Field(
        description="per algorithm, what the out-of-sample backtest found its score worth after fees"
    )


SignalsResponse = SignalsPage | StatusResponse
