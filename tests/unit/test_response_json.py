"""An answer's JSON: a model is written by its own serializer, byte for byte what the function's
declared (union) response type would write."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from pydantic import TypeAdapter

from functions.signals_api.models import SignalsPage, SignalsResponse
from lib.core.signal import Signal
from lib.http.app import response_json


def _signal(i: int) -> Signal:
    at = datetime(2024, 1, 1, i % 24, tzinfo=UTC)
    return Signal(
        symbol=f"SYM{i}USDT",
        category="linear",
        timeframe="5",
        direction="LONG" if i % 2 else "SHORT",
        algorithm="unirail_core",
        score=60.0 + i,
        confidence=0.5,
        entry_price=100.0 + i,
        stop_loss=97.0,
        take_profit=106.5,
        atr=1.25,
        components={"trend": 25.0, "momentum": None},
        bar_time=at,
        expires_at=at,
        id=uuid4(),
        status="new",
        created_at=at,
    )


def test_a_model_answer_is_the_same_bytes_as_the_declared_union_writes() -> None:
    page = SignalsPage(signals=[_signal(i) for i in range(50)], next_cursor="abc", evidence={})
    adapter: TypeAdapter[SignalsResponse] = TypeAdapter(SignalsResponse)
    assert response_json(adapter, page) == adapter.dump_json(page)


def test_a_value_that_is_not_a_model_goes_through_the_adapter() -> None:
    adapter: TypeAdapter[dict[str, int]] = TypeAdapter(dict[str, int])
    assert response_json(adapter, {"a": 1}) == b'{"a":1}'
