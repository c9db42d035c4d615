"""Invented filters follow the price level, deterministically."""

from decimal import Decimal as D

from lib.paper_exchange.instruments import derive_instrument, linear_info, split_symbol, spot_info


def test_filters_follow_the_price_level() -> None:
    eth = derive_instrument("ETHBTC", D("0.0922"), 0)
    assert (eth.tick_size, eth.qty_step, eth.min_order_qty, eth.max_order_qty) == (
        D("0.000001"),
        D("0.1"),
        D("1"),
        D("1E+7"),
    )
    ada = derive_instrument("ADABTC", D("0.0000546"), 0)
    assert (ada.tick_size, ada.qty_step, ada.min_order_qty) == (D("1E-9"), D("100"), D("1000"))


def test_one_step_is_worth_at_least_a_thousandth_and_the_maximum_at_most_a_million() -> None:
    for price in (D("0.0000293"), D("0.00265"), D("0.0434"), D("3.7"), D("41000")):
        inst = derive_instrument("XBTC", price, 0)
        assert inst.qty_step * price >= D("0.001") > inst.qty_step * price / 10
        assert inst.max_order_qty * price <= D(1_000_000)


def test_the_bybit_shapes_carry_the_category_specific_names() -> None:
    inst = derive_instrument("ETHBTC", D("0.0922"), 123)
    linear = linear_info(inst)
    assert linear["lotSizeFilter"]["qtyStep"] == "0.1"
    assert linear["lotSizeFilter"]["minNotionalValue"] == "5"
    assert linear["settleCoin"] == "USDT"
    assert linear["launchTime"] == "123"
    spot = spot_info(inst)
    assert spot["lotSizeFilter"]["basePrecision"] == "0.1"
    assert spot["lotSizeFilter"]["minOrderAmt"] == "5"


def test_pairs_split_on_their_quote() -> None:
    assert split_symbol("ETHBTC") == ("ETH", "BTC")
    assert split_symbol("BTCUSDT") == ("BTC", "USDT")
