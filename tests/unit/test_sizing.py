"""Sizing and level normalization: worked examples, then properties checked with hypothesis.

The properties are the rules DESIGN.md section 7 states. Examples are derandomized (the same ones on every
run, no example database) and bounded (200 each), so the run is deterministic and takes seconds. All
comparisons run in the same exact 60-digit context as the code, so a rounding slip cannot hide.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D
from decimal import localcontext
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.core.instruments import (
    EXACT,
    InstrumentFilters,
    normalize_price,
    normalize_qty,
    on_multiple,
    validate_market_order,
    validate_order,
)
from lib.core.sizing import (
    Levels,
    SizingDecision,
    level_problem,
    normalize_levels,
    size_order,
    usable_leverage,
)
from lib.core.vocabulary import Direction
from lib.services.execution.eligibility import within_daily_loss_limit

PROPERTY = settings(max_examples=200, derandomize=True, database=None, deadline=None)

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


def size(**overrides: Any) -> SizingDecision:
    args: dict[str, Any] = {
        "equity": D(10_000),
        "risk_pct": D(1),
        "entry": D("0.0345"),
        "stop_loss": D("0.0340"),
        "direction": "LONG",
        "max_position_usd": D(100_000),
        "leverage": 10,
        "filters": ETH,
        **overrides,
    }
    return size_order(**args)


# -- worked examples -------------------------------------------------------------------------------


def test_risk_over_the_stop_distance_sets_the_size() -> None:
    decision = size()  # 1 % of 10,000 over a distance of 0.0005

    assert decision.ok
    assert decision.capped_by == ()
    assert decision.qty == D(200_000)
    assert decision.notional == D(6_900)
    assert decision.levels == Levels(entry=D("0.0345"), stop_loss=D("0.034"))


def test_the_size_rounds_down_to_the_step() -> None:
    decision = size(entry=D(100), stop_loss=D(97), max_position_usd=D(10**9), leverage=100)

    assert decision.qty == D("33.3")  # 100 / 3 = 33.33...
    assert decision.risk_amount == D("99.9")


def test_leverage_caps_the_notional_at_equity_times_leverage() -> None:
    decision = size(risk_pct=D(10), entry=D(100), stop_loss=D(95), max_position_usd=D(10**9), leverage=1)

    assert decision.capped_by == ("leverage",)
    assert decision.qty == D(100)  # 200 by risk; 10,000 x 1 / 100 = 100 by leverage
    assert decision.notional == D(10_000)


def test_an_uncapped_size_risks_exactly_the_budget_when_it_divides_evenly() -> None:
    decision = size(entry=D(100), stop_loss=D(95), max_position_usd=D(10**9), leverage=100)

    assert decision.ok
    assert decision.capped_by == ()
    assert decision.qty == D(20)  # 100 / 5
    assert decision.risk_amount == decision.risk_budget == D(100)


def test_the_max_position_caps_the_notional() -> None:
    decision = size(entry=D(100), stop_loss=D(95), max_position_usd=D(1234), leverage=100)

    assert decision.capped_by == ("max_position",)
    assert decision.qty == D("12.3")
    assert decision.risk_amount < decision.risk_budget


def test_the_max_qty_caps_the_size_after_the_other_caps() -> None:
    decision = size(
        entry=D(100),
        stop_loss=D(95),
        max_position_usd=D(10**9),
        leverage=100,
        filters=replace(ETH, max_qty=D("7.55")),
    )

    assert decision.capped_by == ("max_qty",)
    assert decision.qty == D("7.5")


def test_a_short_sizes_from_a_stop_above_the_entry_and_keeps_its_take_profit_below() -> None:
    decision = size(
        direction="SHORT", entry=D(100), stop_loss=D("105.0000004"), take_profit=D("90.0000004"), leverage=100
    )

    assert decision.ok
    assert decision.levels == Levels(
        entry=D("100.000000"), stop_loss=D("105.000001"), take_profit=D("90.000000")
    )


def test_a_size_below_the_minimum_quantity_is_skipped_never_raised_to_the_minimum() -> None:
    decision = size(equity=D(10), risk_pct=D("0.1"), entry=D(100), stop_loss=D(90))  # 0.001 units

    assert not decision.ok
    assert decision.skip_reason == "below_min_qty"
    assert decision.qty == 0
    assert "below the minimum" in decision.message


def test_a_size_below_the_minimum_notional_is_skipped() -> None:
    cheap = replace(ETH, min_qty=D("0.1"), min_notional=D(5))
    decision = size(
        equity=D(100), risk_pct=D("0.1"), entry=D(4), stop_loss=D(3), filters=cheap
    )  # 0.1 x 4 = 0.4

    assert decision.skip_reason == "below_min_notional"


def test_levels_on_the_wrong_side_are_skipped_as_invalid() -> None:
    assert size(direction="LONG", stop_loss=D("0.035")).skip_reason == "levels_invalid"
    assert size(direction="SHORT", stop_loss=D("0.034")).skip_reason == "levels_invalid"
    assert size(take_profit=D("0.03")).skip_reason == "levels_invalid"
    assert size(stop_loss=D(0)).skip_reason == "levels_invalid"


def test_a_stop_equal_to_the_entry_is_a_zero_stop_distance() -> None:
    assert size(stop_loss=D("0.0345")).skip_reason == "zero_stop_distance"


def test_no_equity_and_nonsense_preferences_are_skipped_with_their_reasons() -> None:
    assert size(equity=D(0)).skip_reason == "no_equity"
    assert size(equity=D(-5)).skip_reason == "no_equity"
    assert size(risk_pct=D(0)).skip_reason == "invalid_parameters"
    assert size(risk_pct=D(101)).skip_reason == "invalid_parameters"
    assert size(max_position_usd=D(0)).skip_reason == "invalid_parameters"
    assert size(leverage=0).skip_reason == "invalid_parameters"
    assert size(equity=D("NaN")).skip_reason == "invalid_parameters"


def test_a_symbol_that_is_not_trading_is_skipped() -> None:
    assert size(filters=replace(ETH, status="PreLaunch")).skip_reason == "not_trading"


def test_a_long_stop_within_a_tick_of_an_entry_rounded_onto_it_moves_one_tick_further() -> None:
    coarse = replace(ETH, tick_size=D("0.1"))

    levels = normalize_levels("LONG", D("1.04"), D("1.02"), D("1.06"), coarse)

    assert levels == Levels(entry=D("1.0"), stop_loss=D("0.9"), take_profit=D("1.1"))


def test_levels_that_cannot_keep_their_order_above_zero_are_refused() -> None:
    coarse = replace(ETH, tick_size=D("0.1"))

    assert normalize_levels("LONG", D("0.1"), D("0.05"), None, coarse) is None


# -- properties ------------------------------------------------------------------------------------

DIRECTIONS: list[Direction] = ["LONG", "SHORT"]
directions = st.sampled_from(DIRECTIONS)


def _scaled(mantissas: list[int], lo: int, hi: int) -> st.SearchStrategy[D]:
    return st.builds(lambda m, e: D(m).scaleb(e), st.sampled_from(mantissas), st.integers(lo, hi))


@st.composite
def instrument_filters(draw: st.DrawFn) -> InstrumentFilters:
    """Filters shaped like Bybit's: ticks and steps of 1, 2, 5 or 25 times a power of ten."""
    step = draw(_scaled([1, 2, 5, 25], -6, 2))
    min_qty = step * draw(st.integers(1, 100))
    return InstrumentFilters(
        symbol="TESTUSDT",
        category="linear",
        status=draw(st.sampled_from(["Trading"] * 9 + ["PreLaunch"])),
        tick_size=draw(_scaled([1, 2, 5, 25], -8, 0)),
        qty_step=step,
        min_qty=min_qty,
        max_qty=min_qty + step * draw(st.integers(0, 10**9)),
        min_notional=draw(st.sampled_from([D(0), D(1), D(5), D(100)])),
    )


def _around(draw: st.DrawFn, filters: InstrumentFilters) -> D:
    """A positive price a few to many ticks above zero, not necessarily on the tick."""
    ticks = draw(st.integers(1, 10**8))
    jitter = draw(st.decimals(min_value=0, max_value=1, places=4))
    return filters.tick_size * (ticks + jitter)


def _magnitude(draw: st.DrawFn, lo: int, hi: int) -> D:
    """A number from 1 x 10^lo to 9.99 x 10^hi, every decade equally likely."""
    mantissa = draw(st.decimals(min_value=1, max_value=D("9.99"), places=2))
    return mantissa.scaleb(draw(st.integers(lo, hi)))


@st.composite
def orders(draw: st.DrawFn) -> dict[str, Any]:
    """Sizing inputs shaped like real listings and accounts, with some deliberately bad levels.

    The price decade comes first; the tick is 3 to 6 decades below it, the step worth 0.001 to 25 of the
    quote, the minimum 1 to 100 steps, the maximum 1 to 10^12 minimums; equity, risk and caps span their
    ranges by decade. One stop in ten is arbitrary (either side of the entry, or on it).
    """
    entry = _magnitude(draw, -4, 5)
    decade = entry.adjusted()
    step = draw(st.sampled_from([1, 2, 5, 25])) * D(1).scaleb(draw(st.integers(-3, 0)) - decade)
    min_qty = step * draw(st.integers(1, 100))
    filters = InstrumentFilters(
        symbol="TESTUSDT",
        category="linear",
        status=draw(st.sampled_from(["Trading"] * 19 + ["PreLaunch"])),
        tick_size=draw(st.sampled_from([1, 2, 5, 25])) * D(1).scaleb(decade - draw(st.integers(3, 6))),
        qty_step=step,
        min_qty=min_qty,
        max_qty=min_qty * D(10) ** draw(st.integers(0, 12)),
        min_notional=draw(st.sampled_from([D(0), D(1), D(5), D(100)])),
    )
    direction: Direction = draw(directions)
    if draw(st.sampled_from(["arbitrary"] + ["ordered"] * 9)) == "arbitrary":
        stop = _around(draw, filters)
    else:
        fraction = min(_magnitude(draw, -4, -1), D("0.5"))  # tight scalps to wide swings
        stop = entry * (1 - fraction) if direction == "LONG" else entry * (1 + fraction)
    return {
        "equity": _magnitude(draw, 2, 6),
        "risk_pct": draw(st.decimals(min_value=D("0.05"), max_value=D(10), places=2)),
        "entry": entry,
        "stop_loss": stop,
        "direction": direction,
        "max_position_usd": _magnitude(draw, 2, 6),
        "leverage": draw(st.sampled_from([1, 2, 3, 5, 10, 25, 50, 100])),
        "filters": filters,
    }


@PROPERTY
@given(orders())
def test_a_sized_quantity_never_breaks_the_step_the_minimums_or_any_cap(order: dict[str, Any]) -> None:
    decision = size_order(**order)
    if not decision.ok:
        return
    f: InstrumentFilters = order["filters"]
    assert decision.levels is not None
    entry, qty = decision.levels.entry, decision.qty
    with localcontext(EXACT):
        assert on_multiple(qty, f.qty_step)
        assert f.min_qty <= qty <= f.max_qty
        assert qty > 0
        assert qty * entry >= f.min_notional
        assert qty * entry <= order["max_position_usd"]
        assert qty * entry <= order["equity"] * order["leverage"]
        assert qty * decision.levels.stop_distance <= decision.risk_budget
        assert decision.risk_budget == order["equity"] * order["risk_pct"] / 100
        assert decision.notional == qty * entry


@PROPERTY
@given(orders())
def test_a_sized_quantity_is_the_largest_on_step_quantity_within_every_limit(order: dict[str, Any]) -> None:
    decision = size_order(**order)
    if not decision.ok:
        return
    f: InstrumentFilters = order["filters"]
    assert decision.levels is not None
    one_more = decision.qty + f.qty_step
    with localcontext(EXACT):
        assert (
            one_more * decision.levels.stop_distance > decision.risk_budget
            or one_more * decision.levels.entry
            > min(order["max_position_usd"], order["equity"] * order["leverage"])
            or one_more > f.max_qty
        )


@PROPERTY
@given(orders())
def test_a_skipped_decision_always_has_a_reason_and_no_quantity(order: dict[str, Any]) -> None:
    decision = size_order(**order)

    assert decision.ok == (decision.skip_reason is None)
    if not decision.ok:
        assert decision.qty == 0
        assert decision.message


@PROPERTY
@given(
    st.builds(
        dict,
        equity=st.decimals(min_value=D(10**6), max_value=D(10**7), places=2),
        entry_ticks=st.integers(10**4, 10**6),
        stop_ticks=st.integers(10, 10**3),
        direction=directions,
        tick=_scaled([1, 2, 5], -4, -1),
    )
)
def test_a_generous_budget_on_a_small_lot_is_always_sized(case: dict[str, Any]) -> None:
    """Keeps the properties above honest: these inputs leave no reason to skip."""
    tick: D = case["tick"]
    filters = replace(ETH, tick_size=tick, qty_step=D("0.001"), min_qty=D("0.001"), min_notional=D(5))
    entry = tick * case["entry_ticks"]
    distance = tick * case["stop_ticks"]
    stop = entry - distance if case["direction"] == "LONG" else entry + distance

    decision = size_order(
        equity=case["equity"],
        risk_pct=D(1),
        entry=entry,
        stop_loss=stop,
        direction=case["direction"],
        max_position_usd=D(10**7),
        leverage=10,
        filters=filters,
    )

    assert decision.ok, decision.message


@st.composite
def well_ordered(draw: st.DrawFn) -> tuple[Direction, D, D, D, InstrumentFilters]:
    filters = draw(instrument_filters())
    direction: Direction = draw(directions)
    tick = filters.tick_size
    entry = tick * 3 + _around(draw, filters)  # at least three ticks above zero
    below = draw(st.decimals(min_value=D("0.0001"), max_value=D("0.66"), places=4))
    above = draw(st.decimals(min_value=D("0.0001"), max_value=D(5), places=4))
    lower = max(entry * (1 - below), tick)
    upper = entry * (1 + above)
    stop, target = (lower, upper) if direction == "LONG" else (upper, lower)
    return direction, entry, stop, target, filters


@PROPERTY
@given(well_ordered())
def test_normalized_levels_keep_a_shorts_stop_above_its_entry_and_a_longs_below(
    case: tuple[Direction, D, D, D, InstrumentFilters],
) -> None:
    direction, entry, stop, target, filters = case
    assert level_problem(direction, entry, stop, target) is None

    levels = normalize_levels(direction, entry, stop, target, filters)

    assert levels is not None
    assert levels.take_profit is not None
    for level in (levels.entry, levels.stop_loss, levels.take_profit):
        assert on_multiple(level, filters.tick_size)
        assert level > 0
    if direction == "LONG":
        assert levels.stop_loss < levels.entry < levels.take_profit
        assert levels.stop_loss <= stop  # rounded away from the entry, never toward it
        assert levels.take_profit >= target
    else:
        assert levels.take_profit < levels.entry < levels.stop_loss
        assert levels.stop_loss >= stop
        assert levels.take_profit <= target


@PROPERTY
@given(instrument_filters(), st.decimals(min_value=0, max_value=D(10**12), places=9))
def test_normalizing_a_quantity_never_rounds_up_and_loses_less_than_a_step(
    filters: InstrumentFilters, qty: D
) -> None:
    normalized = normalize_qty(qty, filters)

    with localcontext(EXACT):
        assert normalized <= qty
        assert qty - normalized < filters.qty_step
        assert on_multiple(normalized, filters.qty_step)


@PROPERTY
@given(instrument_filters(), st.decimals(min_value=0, max_value=D(10**9), places=10))
def test_a_price_rounds_to_a_tick_in_exactly_the_direction_asked(
    filters: InstrumentFilters, price: D
) -> None:
    down = normalize_price(price, filters, "down")
    up = normalize_price(price, filters, "up")
    nearest = normalize_price(price, filters, "nearest")
    tick = filters.tick_size

    with localcontext(EXACT):
        assert down <= price <= up
        assert up - down in (0, tick)
        assert nearest in (down, up)
        assert abs(nearest - price) <= tick / 2
        assert all(on_multiple(p, tick) for p in (down, up, nearest))


# -- the instrument's maximum leverage (issue 9, item 12) -------------------------------------------


def test_leverage_above_the_instruments_maximum_is_capped_to_it_and_the_decision_says_so() -> None:
    capped = replace(ETH, max_leverage=D("25.00"))
    decision = size(
        risk_pct=D(10), entry=D(100), stop_loss=D(95), max_position_usd=D(10**9), leverage=50, filters=capped
    )

    assert (decision.leverage, decision.requested_leverage, decision.leverage_capped) == (25, 50, True)
    # The notional cap follows the leverage really set: 10,000 x 25 / 100 = 2,500, not 5,000.
    assert decision.capped_by == ()
    assert decision.qty == D(200)
    assert size(leverage=50, filters=replace(ETH, max_leverage=D("12.5"))).leverage == 12


def test_leverage_within_the_maximum_or_without_one_is_kept() -> None:
    assert size(leverage=10, filters=replace(ETH, max_leverage=D(25))).leverage == 10
    assert not size(leverage=10, filters=replace(ETH, max_leverage=D(25))).leverage_capped
    assert size(leverage=100).leverage == 100  # no maximum published


def test_usable_leverage_is_at_most_the_maximum_rounded_down_and_at_least_one() -> None:
    assert usable_leverage(100, replace(ETH, max_leverage=D("25.00"))) == 25
    assert usable_leverage(3, replace(ETH, max_leverage=D("1.5"))) == 1
    assert usable_leverage(7, ETH) == 7


# -- amounts that are no amounts (issue 9, item 15) -------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"equity": D("1e999999")},
        {"equity": D("9.99e999999")},
        {"equity": D("1e16")},
        {"max_position_usd": D("1e999999")},
        {"entry": D("1e20"), "stop_loss": D("1e19")},
        {"entry": D("0.0345"), "stop_loss": D("0.034"), "take_profit": D("1e999999")},
    ],
)
def test_an_absurdly_large_amount_or_price_is_a_skip_with_a_reason_never_an_arithmetic_error(
    overrides: dict[str, Any],
) -> None:
    decision = size(**overrides)

    assert decision.skip_reason == "out_of_range"
    assert decision.qty == 0
    assert "at most 1000000000000000" in decision.message
    assert "999999" not in decision.message  # the value itself is never repeated


def test_the_largest_sane_equity_is_still_sized() -> None:
    assert size(equity=D("1e15"), max_position_usd=D(1000)).ok


def test_the_daily_loss_limit_never_computes_with_nonsense() -> None:
    assert not within_daily_loss_limit(D("1e999999"), D(5), D(0))
    assert not within_daily_loss_limit(D("NaN"), D(5), D(0))
    assert not within_daily_loss_limit(D(10_000), D(5), D("-Infinity"))
    assert within_daily_loss_limit(D(10_000), D(5), D(-499))
    assert not within_daily_loss_limit(D(10_000), D(5), D(-500))


# -- one check for every market order (issue 9, item 13) ---------------------------------------------


def test_a_market_order_is_never_refused_for_a_reference_price_off_the_tick() -> None:
    # ETHBTC's last price on the paper exchange is 0.08818994 while its tick is 0.000001.
    assert validate_market_order(D(100), D("0.08818994"), ETH) == []
    assert [v.code for v in validate_order(D(100), D("0.08818994"), ETH)] == ["price_not_on_tick"]


def test_a_market_order_is_judged_by_the_same_minimums_sizing_skips_on() -> None:
    assert [v.code for v in validate_market_order(D(50), D("0.08818994"), ETH)] == ["below_min_notional"]
    assert [v.code for v in validate_market_order(D("0.55"), D(100), ETH)] == [
        "qty_not_on_step",
        "below_min_qty",
    ]
    # Sizing skips exactly where the check objects.
    small = size(risk_pct=D("0.05"), entry=D(100), stop_loss=D(1), max_position_usd=D(10**9), leverage=100)
    assert small.skip_reason == "below_min_qty"
    assert [v.code for v in validate_market_order(D(0), D(100), ETH)] == ["non_positive_qty", "below_min_qty"]
    tiny = size(entry=D(4), stop_loss=D("3.9"), max_position_usd=D("4.5"), leverage=100)
    assert (tiny.skip_reason, tiny.qty) == ("below_min_notional", 0)
    assert [v.code for v in validate_market_order(D("1.1"), D(4), ETH)] == ["below_min_notional"]
