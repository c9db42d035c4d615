"""Pure parts of the activity figures and the kill switch's stored value."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import uuid4

from lib.services.activity import _position_fields, open_risk
from lib.stores.settings import parse_trading_halted


def row(side: str = "Buy", **over: Any) -> dict[str, Any]:
    base = {
        "id": uuid4(),
        "side": side,
        "filled_qty": Decimal("2"),
        "avg_fill_price": Decimal("100"),
        "stop_loss": Decimal("95"),
        "fee": Decimal("0.11"),
        "filled_at": datetime(2024, 1, 15, tzinfo=UTC),
        "placed_at": None,
    }
    return {**base, **over}


def test_unrealized_pnl_is_signed_by_side() -> None:
    assert _position_fields(row("Buy"), Decimal("103"))["unrealized_pnl"] == Decimal("6")
    assert _position_fields(row("Sell"), Decimal("103"))["unrealized_pnl"] == Decimal("-6")


def test_without_a_price_the_pnl_is_null_with_the_reason_never_a_guess() -> None:
    fields = _position_fields(row(), "the paper exchange gave no price: timeout")
    assert fields["last_price"] is None
    assert fields["unrealized_pnl"] is None
    assert fields["price_unavailable_reason"] == "the paper exchange gave no price: timeout"
    unknown_entry = _position_fields(row(avg_fill_price=None), Decimal("103"))
    assert unknown_entry["unrealized_pnl"] is None
    assert unknown_entry["price_unavailable_reason"] == "the entry price is not known yet"


def test_open_risk_sums_size_times_stop_distance_and_counts_unbounded_positions() -> None:
    risk, unbounded = open_risk([row(), row("Sell", stop_loss=Decimal("104")), row(stop_loss=None)])
    assert risk == Decimal("2") * 5 + Decimal("2") * 4
    assert unbounded == 1


def test_the_kill_switch_value_parses_strictly() -> None:
    assert parse_trading_halted(False).halted is False
    assert parse_trading_halted(True).halted is True
    state = parse_trading_halted(
        {"halted": True, "reason": "incident", "by": "cli:ops", "at": "2026-12-01T10:00:00+00:00"}
    )
    assert (state.halted, state.reason, state.by) == (True, "incident", "cli:ops")
    assert state.at == datetime(2026, 12, 1, 10, tzinfo=UTC)
    for odd in ("true", 1, None, {"halted": "yes"}, []):
        assert parse_trading_halted(odd).halted is False
