"""How one completed candle fills a resting limit order or triggers a take-profit / stop-loss."""

from decimal import Decimal as D

from lib.paper_exchange.market import Candle
from lib.paper_exchange.matching import STOP_LOSS, TAKE_PROFIT, Trigger, limit_fill_price, tpsl_trigger


def candle(open_: str, high: str, low: str, close: str) -> Candle:
    return Candle(open_time_ms=0, open=D(open_), high=D(high), low=D(low), close=D(close), volume=D(1))


def test_a_buy_limit_fills_at_its_price_when_the_low_reaches_it() -> None:
    assert limit_fill_price("Buy", D("9.5"), candle("10", "11", "9", "10")) == D("9.5")


def test_a_buy_limit_fills_at_the_open_when_the_candle_gaps_below_it() -> None:
    assert limit_fill_price("Buy", D("9.5"), candle("9", "9.2", "8", "9")) == D("9")


def test_a_buy_limit_above_the_low_of_nothing_does_not_fill() -> None:
    assert limit_fill_price("Buy", D("8.5"), candle("10", "11", "9", "10")) is None


def test_a_sell_limit_fills_when_the_high_reaches_it() -> None:
    assert limit_fill_price("Sell", D("10.5"), candle("10", "11", "9", "10")) == D("10.5")
    assert limit_fill_price("Sell", D("11.5"), candle("10", "11", "9", "10")) is None


def test_when_both_stops_are_inside_one_candle_the_stop_loss_wins() -> None:
    both = candle("10", "12", "8", "10")
    assert tpsl_trigger("Buy", D("11"), D("9"), both) == Trigger(STOP_LOSS, D("9"))
    assert tpsl_trigger("Sell", D("9"), D("11"), both) == Trigger(STOP_LOSS, D("11"))


def test_a_long_take_profit_triggers_on_the_high() -> None:
    assert tpsl_trigger("Buy", D("11"), D("8"), candle("10", "11.5", "9", "11")) == Trigger(
        TAKE_PROFIT, D("11")
    )


def test_a_stop_loss_gapped_through_fills_at_the_worse_open() -> None:
    gap_down = candle("8", "8.5", "7.5", "8")
    assert tpsl_trigger("Buy", None, D("9"), gap_down) == Trigger(STOP_LOSS, D("8"))


def test_a_take_profit_gapped_through_fills_at_the_better_open() -> None:
    gap_down = candle("8", "8.5", "7.5", "8")
    assert tpsl_trigger("Sell", D("9"), None, gap_down) == Trigger(TAKE_PROFIT, D("8"))


def test_a_candle_inside_both_stops_triggers_nothing() -> None:
    assert tpsl_trigger("Buy", D("12"), D("8"), candle("10", "11", "9", "10")) is None
