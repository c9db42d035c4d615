"""Request and response models of ``trading-preferences``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from lib.core.vocabulary import Algorithm, Symbol, Timeframe
from lib.http.spec import Request, Response, StatusRequest, StatusResponse


class GetPreferences(Request):
    """Read the caller's own preferences (the defaults if never saved)."""

    action: Literal["get"]


class UpdatePreferences(Request):
    """Change any subset of the caller's preferences; omitted fields keep their value."""

    action: Literal["update"]
    auto_trade_enabled: bool | None = None
    algorithms: Annotated[list[Algorithm], Field(min_length=1, max_length=2)] | None = None
    timeframes: Annotated[list[Timeframe], Field(min_length=1, max_length=13)] | None = None
    min_score: Annotated[float, Field(ge=0, le=100)] | None = None
    risk_per_trade_pct: Annotated[float, Field(gt=0, le=10)] | None = None
    max_position_usd: Annotated[float, Field(gt=0, le=10_000_000)] | None = None
    leverage: Annotated[int, Field(ge=1, le=100)] | None = None
    max_open_positions: Annotated[int, Field(ge=1, le=1000)] | None = None
    daily_loss_limit_pct: Annotated[float, Field(gt=0, le=100)] | None = None
    symbol_allowlist: Annotated[list[Symbol], Field(max_length=500)] | None = None
    symbol_blocklist: Annotated[list[Symbol], Field(max_length=500)] | None = None


PreferencesRequest = Annotated[
    GetPreferences | UpdatePreferences | StatusRequest, Field(discriminator="action")
]


class Preferences(Response):
    """The caller's preferences."""

    user_id: str
    saved: bool
    updated_at: str | None
    auto_trade_enabled: bool
    algorithms: list[Algorithm]
    timeframes: list[Timeframe]
    min_score: float
    risk_per_trade_pct: float
    max_position_usd: float
    leverage: int
    max_open_positions: int
    daily_loss_limit_pct: float
    symbol_allowlist: list[str]
    symbol_blocklist: list[str]


PreferencesResponse = Preferences | StatusResponse
