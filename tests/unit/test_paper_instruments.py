"""Filters follow the price level the way Bybit sets them for its USDT perpetuals, deterministically."""

from decimal import Decimal as D

import pytest

from lib.errors import ConfigError
from lib.paper_exchange.instruments import derive_instrument, linear_info, split_symbol, spot_info


@pytest.mark.parametrize(
    ("symbol", "price", "tick", "step", "max_qty", "max_leverage"),
    [
        ("BTCUSDT", "62674.705", "0.1", "0.001", "10", "100"),  # Bybit: tick 0.10, qty step 0.001
        ("ETHUSDT", "3125.83", "0.01", "0.01", "100", "100"),  # Bybit: tick 0.01, qty step 0.01
        ("SOLUSDT", "144.17", "0.01", "0.01", "1000", "50"),
        ("LINKUSDT", "14.689", "0.001", "0.1", "10000", "50"),  # Bybit: tick 0.001, qty step 0.1
        ("DOGEUSDT", "0.124645", "0.00001", "10", "1000000", "50"),  # sub-dollar: a finer tick
        ("PEPEUSDT", "0.000007845", "1E-10", "1E+6", "1E+11", "50"),
        ("ACAUSDT", "0.1018", "0.00001", "10", "1000000", "25"),
    ],
)
def test_filters_follow_the_price_level(
    symbol: str, price: str, tick: str, step: str, max_qty: str, max_leverage: str
) -> None:
    inst = derive_instrument(symbol, D(price), 0)
    assert (inst.tick_size, inst.qty_step, inst.min_order_qty, inst.max_order_qty, inst.max_leverage) == (
        D(tick),
        D(step),
        D(step),
        D(max_qty),
        D(max_leverage),
    )
    assert inst.min_notional == D(5)


@pytest.mark.parametrize(
    "price", ["0.0000293", "0.00265", "0.0434", "0.5", "3.7", "99.99", "100", "999.9", "1000", "41000"]
)
def test_a_step_times_a_tick_is_a_ten_thousandth_and_a_step_worth_one_to_a_hundred_usdt(price: str) -> None:
    p = D(price)
    inst = derive_instrument("XUSDT", p, 0)
    assert inst.qty_step * inst.tick_size == D("0.0001")
    # Five significant digits of price, six from 1,000 USDT up.
    digits = 6 if p >= 1000 else 5
    assert inst.tick_size * 10 ** (digits - 1) <= p < inst.tick_size * 10**digits
    low, high = (D(10), D(100)) if p >= 1000 else (D(1), D(10))
    assert low <= inst.qty_step * p < high
    assert inst.max_order_qty * p <= D(1_000_000) < inst.max_order_qty * p * 10


def test_new_positions_start_at_10x_or_the_maximum() -> None:
    assert derive_instrument("BTCUSDT", D("60000"), 0).default_leverage == D(10)


def test_the_bybit_shapes_carry_the_category_specific_names() -> None:
    inst = derive_instrument("ETHUSDT", D("3125.83"), 123)
    linear = linear_info(inst)
    assert linear["lotSizeFilter"]["qtyStep"] == "0.01"
    assert linear["lotSizeFilter"]["minOrderQty"] == "0.01"
    assert linear["lotSizeFilter"]["minNotionalValue"] == "5"
    assert linear["priceFilter"]["tickSize"] == "0.01"
    assert linear["priceScale"] == "2"
    assert linear["leverageFilter"] == {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"}
    assert (linear["baseCoin"], linear["quoteCoin"], linear["settleCoin"]) == ("ETH", "USDT", "USDT")
    assert linear["launchTime"] == "123"
    spot = spot_info(inst)
    # A spot pair trades in finer units than the contract (Bybit's ETHUSDT spot: 0.00001).
    assert spot["lotSizeFilter"]["basePrecision"] == "0.00001"
    assert spot["lotSizeFilter"]["minOrderQty"] == "0.01"
    assert spot["lotSizeFilter"]["minOrderAmt"] == "5"


def test_usdt_pairs_split_on_their_quote() -> None:
    assert split_symbol("BTCUSDT") == ("BTC", "USDT")
    assert split_symbol("1000SATSUSDT") == ("1000SATS", "USDT")


@pytest.mark.parametrize("symbol", ["ETHBTC", "XLMBTC", "USDT", "BTCUSDC"])
def test_a_pair_not_quoted_in_usdt_is_refused_so_no_price_is_read_as_usdt(symbol: str) -> None:
    with pytest.raises(ConfigError, match="USDT-quoted pairs only"):
        derive_instrument(symbol, D("0.05"), 0)


def test_the_seeded_markets_are_the_stacks_usdt_perpetuals_with_the_paper_exchanges_filters() -> None:
    import json

    from lib.ops.rebuild import MARKETS_FILE
    from lib.ops.stack_replay import stack_market, stack_symbols
    from lib.paper_exchange.numbers import fmt

    market = stack_market()
    seeded = json.loads(MARKETS_FILE.read_text())
    assert [row["symbol"] for row in seeded] == list(stack_symbols())
    for row in seeded:
        inst = derive_instrument(row["symbol"], market.median_close(row["symbol"]), 0)
        assert (row["category"], row["base"], row["quote"], row["status"]) == (
            "linear",
            inst.base_coin,
            "USDT",
            "Trading",
        )
        assert (row["tick_size"], row["qty_step"], row["min_qty"], row["max_qty"], row["min_notional"]) == (
            fmt(inst.tick_size),
            fmt(inst.qty_step),
            fmt(inst.min_order_qty),
            fmt(inst.max_order_qty),
            "5",
        )
