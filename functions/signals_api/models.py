"""Request and response models of ``signals-api``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field

from lib.core.evidence import ScoreEvidence
from lib.core.signal import Signal
from lib.core.vocabulary import Algorithm, Direction, Environment, Symbol, Timeframe
from lib.http.spec import Request, Response, StatusRequest, StatusResponse
from lib.services.signals_query import DEFAULT_CANDLES, DEFAULT_LIMIT, MAX_CANDLES, MAX_LIMIT


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


class GetCandles(Request):
    """A symbol's recent candles from the deployment's exchange, for the chart beside its signals."""

    action: Literal["candles"]
    symbol: Symbol
    timeframe: Timeframe
    limit: Annotated[int, Field(ge=1, le=MAX_CANDLES)] = DEFAULT_CANDLES
    end: Annotated[AwareDatetime, Field(description="the newest candle starts at or before this")] | None = (
        None
    )


SignalsRequest = Annotated[ListSignals | GetCandles | StatusRequest, Field(discriminator="action")]


class SignalsPage(Response):
    """One page, newest first; pass ``next_cursor`` back for the next page (null on the last one)."""

    # The stored signal's own dataclass: its fields (and their schema) are defined once, in lib.core.
    signals: list[Signal]
    next_cursor: str | None
    evidence: dict[str, list[ScoreEvidence]] = Field(
        description="per algorithm, what the out-of-sample backtest found its score worth after fees"
    )


class Candle(Response):
    """One candle: its start (epoch ms), prices and base-coin volume."""

    t: int = Field(description="start time, epoch milliseconds")
    o: float
    h: float
    l: float  # noqa: E741 - the usual one-letter OHLC names keep 500 candles small
    c: float
    v: float


class CandlesPage(Response):
    """Candles oldest first; the last one may still be open (its close is the latest trade)."""

    symbol: str
    timeframe: Timeframe
    environment: Environment
    candles: list[Candle]


SignalsResponse = SignalsPage | CandlesPage | StatusResponse
