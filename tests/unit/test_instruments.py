"""Instrument filters, normalization, order validation and symbol suggestions (pure code)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest

from lib.core.instruments import (
    InstrumentFilters,
    fmt,
    normalize_price,
    normalize_qty,
    split_symbol,
    suggest,
    validate_order,
)
from lib.services.instruments.memo import LocalMemo
from lib.services.instruments.payload import InstrumentsSnapshot, entry_json, parse_entry

# ETHBTC as the paper exchange lists it.
ETH = InstrumentFilters(
    symbol="ETHBTC",
    category="linear",
    status="Trading",
    tick_size=D("0.000001"),
    qty_step=D("0.1"),
    min_qty=D("1"),
    max_qty=D("10000000"),
    min_notional=D("5"),
)
# A coarse contract: whole hundreds, half-unit ticks.
COARSE = replace(ETH, symbol="ADAUSDT", tick_size=D("0.5"), qty_step=D("100"), min_qty=D("100"))
PAPER_LINEAR = ["ADABTC", "ETCBTC", "ETHBTC", "LTCBTC", "NXTBTC", "TRXBTC", "XLMBTC", "ZECBTC"]
BYBIT_LIKE = ["BTCUSDT", "BTCPERP", "ETHUSDT", "ETHBTC", "ETCUSDT", "SOLUSDT", "1000PEPEUSDT", "XRPUSDT"]


def codes(qty: str, price: str | None, filters: InstrumentFilters = ETH) -> list[str]:
    return [v.code for v in validate_order(D(qty), None if price is None else D(price), filters)]


# -- filters ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"tick_size": D(0)},
        {"qty_step": D("-0.1")},
        {"min_qty": D("-1")},
        {"max_qty": D("0.5")},
        {"min_notional": D("-5")},
        {"tick_size": D("NaN")},
        {"max_qty": D("Infinity")},
    ],
    ids=["zero-tick", "negative-step", "negative-min", "max-below-min", "negative-notional", "nan", "inf"],
)
def test_filters_no_order_could_satisfy_are_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="ETHBTC"):
        replace(ETH, **change)


@pytest.mark.parametrize(
    "change",
    [
        {"max_qty": D("1e999999")},
        {"min_notional": D("1e31")},
        {"tick_size": D("1e-999999")},
        {"qty_step": D("1e-19")},
        {"max_leverage": D("0.5")},
        {"max_leverage": D("NaN")},
    ],
    ids=["huge-max", "huge-notional", "tiny-tick", "tiny-step", "leverage-below-one", "nan-leverage"],
)
def test_filters_out_of_any_sane_range_are_refused_rather_than_overflowing_later(
    change: dict[str, Any],
) -> None:
    # A tick of 1e-999999 would make price / tick overflow Decimal's exponent range inside sizing.
    with pytest.raises(ValueError, match="ETHBTC"):
        replace(ETH, **change)


def test_the_maximum_leverage_survives_the_shared_cache_payload() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    both = [replace(ETH, max_leverage=D("25.00")), replace(ETH, symbol="LTCBTC")]
    entry = json.loads(json.dumps(entry_json(both, at, at)))

    snapshot = parse_entry("linear", "paper", entry)

    assert snapshot is not None
    assert snapshot.filters["ETHBTC"].max_leverage == D("25.00")
    assert snapshot.filters["LTCBTC"].max_leverage is None
    assert snapshot.filters["ETHBTC"] == replace(ETH, max_leverage=D("25.00"))


def test_only_the_trading_status_takes_orders() -> None:
    assert ETH.is_trading
    assert not replace(ETH, status="PreLaunch").is_trading
    assert not replace(ETH, status="Closed").is_trading


# -- normalization ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("qty", "filters", "expected"),
    [
        ("12.39", ETH, "12.3"),
        ("12.3", ETH, "12.3"),
        ("0.09", ETH, "0.0"),
        ("1299", COARSE, "1200"),
        ("99", COARSE, "0"),
        ("100000000000.05", ETH, "100000000000.0"),
    ],
)
def test_a_quantity_rounds_down_to_the_step_and_is_written_with_its_decimals(
    qty: str, filters: InstrumentFilters, expected: str
) -> None:
    assert fmt(normalize_qty(D(qty), filters)) == expected


def test_a_quantity_is_normalized_exactly_beyond_pythons_default_28_digits() -> None:
    fine = replace(ETH, qty_step=D("1E-18"), min_qty=D(0))
    qty = D("123456789012.123456789012345678999")  # 33 significant digits

    assert normalize_qty(qty, fine) == D("123456789012.123456789012345678")


@pytest.mark.parametrize(
    ("price", "rounding", "expected"),
    [
        ("0.0345675", "nearest", "0.034568"),
        ("0.0345674", "nearest", "0.034567"),
        ("0.0345671", "up", "0.034568"),
        ("0.0345679", "down", "0.034567"),
        ("0.034567", "up", "0.034567"),
        ("0.034567", "down", "0.034567"),
    ],
)
def test_a_price_rounds_to_the_tick_in_the_direction_asked(price: str, rounding: str, expected: str) -> None:
    assert fmt(normalize_price(D(price), ETH, rounding)) == expected  # type: ignore[arg-type]


def test_a_coarse_tick_rounds_half_up_to_the_nearest() -> None:
    assert normalize_price(D("10.25"), COARSE) == D("10.5")
    assert normalize_price(D("10.24"), COARSE) == D("10.0")


@pytest.mark.parametrize("bad", ["-1", "NaN", "Infinity"])
def test_negative_or_non_finite_numbers_are_a_callers_bug(bad: str) -> None:
    with pytest.raises(ValueError, match="quantity must be a finite number"):
        normalize_qty(D(bad), ETH)
    with pytest.raises(ValueError, match="price must be a finite number"):
        normalize_price(D(bad), ETH)


def test_validating_a_non_finite_order_is_a_callers_bug() -> None:
    with pytest.raises(ValueError, match="finite"):
        validate_order(D("NaN"), None, ETH)
    with pytest.raises(ValueError, match="finite"):
        validate_order(D("1"), D("Infinity"), ETH)


def test_plain_notation_never_uses_exponents() -> None:
    assert fmt(D("1E-9")) == "0.000000001"
    assert fmt(D("1E+3")) == "1000"


# -- validation ------------------------------------------------------------------------------------


def test_an_order_on_step_and_tick_above_every_minimum_breaks_nothing() -> None:
    assert validate_order(D("200.0"), D("0.034568"), ETH) == []


def test_each_broken_filter_is_reported_with_its_limit_and_the_offending_value() -> None:
    violations = validate_order(D("0.55"), D("0.0345675"), ETH)

    assert [(v.code, v.limit, v.actual) for v in violations] == [
        ("qty_not_on_step", D("0.1"), D("0.55")),
        ("below_min_qty", D("1"), D("0.55")),
        ("price_not_on_tick", D("0.000001"), D("0.0345675")),
        ("below_min_notional", D("5"), D("0.55") * D("0.0345675")),
    ]
    assert all(v.message for v in violations)


def test_a_quantity_above_the_maximum_is_reported() -> None:
    assert codes("10000000.1", None) == ["above_max_qty"]


def test_a_halted_symbol_is_reported_whatever_the_order() -> None:
    assert codes("200", "0.034568", replace(ETH, status="Settling")) == ["not_trading"]


def test_a_zero_quantity_is_not_positive_and_below_the_minimum() -> None:
    assert codes("0", "0.03") == ["non_positive_qty", "below_min_qty"]


def test_a_non_positive_price_is_reported_and_nothing_is_computed_from_it() -> None:
    assert codes("200", "0") == ["non_positive_price"]


def test_without_a_price_neither_the_tick_nor_the_notional_is_checked() -> None:
    assert codes("1", None) == []


def test_the_notional_minimum_is_inclusive() -> None:
    assert codes("1000", "0.005") == []  # exactly 5
    assert codes("1000", "0.004999") == ["below_min_notional"]


# -- suggestions -----------------------------------------------------------------------------------


def test_a_one_letter_typo_suggests_the_symbol_first() -> None:
    assert suggest("ETHBTX", PAPER_LINEAR)[0] == "ETHBTC"


def test_separators_and_case_do_not_hide_an_exact_match() -> None:
    assert suggest("eth/btc", PAPER_LINEAR)[0] == "ETHBTC"
    assert suggest("ETH-BTC", PAPER_LINEAR)[0] == "ETHBTC"


def test_a_missing_quote_suffix_finds_the_pair_and_the_same_base_comes_before_lookalikes() -> None:
    found = suggest("ETHUSD", BYBIT_LIKE)

    assert found[0] == "ETHUSDT"
    assert found.index("ETHBTC") < found.index("ETCUSDT")


def test_a_bare_base_coin_suggests_its_pairs() -> None:
    assert set(suggest("BTC", BYBIT_LIKE)[:2]) == {"BTCUSDT", "BTCPERP"}
    assert suggest("1000PEPE", BYBIT_LIKE)[0] == "1000PEPEUSDT"


def test_nothing_alike_suggests_nothing() -> None:
    assert suggest("QQQQQQQQ", PAPER_LINEAR) == []
    assert suggest("", PAPER_LINEAR) == []
    assert suggest("ETHBTX", []) == []


def test_at_most_n_suggestions_best_first_and_deterministic() -> None:
    many = [f"ETH{q}" for q in ("USDT", "USDC", "BTC", "EUR", "DAI", "BRL", "TRY")]

    first = suggest("ETHUSX", many, n=3)

    assert len(first) == 3
    assert first == suggest("ETHUSX", list(reversed(many)), n=3)
    assert suggest("ETHUSX", many, n=0) == []


@pytest.mark.parametrize(
    ("symbol", "expected"),
    [
        ("ETHUSDT", ("ETH", "USDT")),
        ("BTCPERP", ("BTC", "PERP")),
        ("ETHBTC", ("ETH", "BTC")),
        ("XYZ", ("XYZ", "")),
    ],
)
def test_symbols_split_into_base_and_quote_by_their_quote_suffix(
    symbol: str, expected: tuple[str, str]
) -> None:
    assert split_symbol(symbol) == expected


# -- the process memo (lib.services.instruments.memo.LocalMemo; no I/O involved) ------------------------

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def snapshot(expires_in: timedelta, *, stale: bool = False) -> InstrumentsSnapshot:
    return InstrumentsSnapshot("linear", "paper", {"ETHBTC": ETH}, NOW, NOW + expires_in, stale=stale)


def test_the_memo_keeps_a_snapshot_for_its_ttl() -> None:
    memo = LocalMemo(ttl_s=5)
    kept = snapshot(timedelta(minutes=5))
    memo.put(kept, NOW)

    assert memo.get("linear", "paper", NOW + timedelta(seconds=4.9)) is kept
    assert memo.get("linear", "paper", NOW + timedelta(seconds=5)) is None
    assert memo.get("spot", "paper", NOW) is None
    assert memo.get("linear", "testnet", NOW) is None


def test_the_memo_never_keeps_a_fresh_snapshot_past_its_expiry() -> None:
    memo = LocalMemo(ttl_s=5)
    memo.put(snapshot(timedelta(seconds=2)), NOW)

    assert memo.get("linear", "paper", NOW + timedelta(seconds=2)) is None


def test_the_memo_keeps_a_stale_snapshot_for_its_ttl_so_an_outage_is_not_retried_on_every_call() -> None:
    memo = LocalMemo(ttl_s=5)
    stale = snapshot(-timedelta(seconds=10), stale=True)
    memo.put(stale, NOW)

    assert memo.get("linear", "paper", NOW + timedelta(seconds=4)) is stale
    memo.clear()
    assert memo.get("linear", "paper", NOW) is None
