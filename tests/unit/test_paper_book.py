"""The matching core: orders against filters, balances and positions, moved by replayed candles."""

import dataclasses
from decimal import Decimal as D

import numpy as np
import pytest

from lib.core.candles import Candles
from lib.core.timeframes import FIVE_MINUTES_MS
from lib.errors import ExchangeRejected
from lib.paper_exchange.book import Book, Fees
from lib.paper_exchange.instruments import derive_instrument
from lib.paper_exchange.market import MarketData
from lib.paper_exchange.models import BookState
from lib.paper_exchange.order_request import OrderRequest, parse_order_request

T0 = 1_704_067_200_000
SYMBOL = "TESTUSDT"
FEES = Fees(taker=D("0.001"), maker=D("0.0005"))
# open, high, low, close of consecutive candles; trading starts at candle 1 (open 0.1).
OHLC = [
    (0.1, 0.1, 0.1, 0.1),
    (0.1, 0.101, 0.099, 0.1),
    (0.1, 0.1005, 0.0995, 0.1),
    (0.1, 0.1, 0.094, 0.095),
    (0.095, 0.12, 0.095, 0.119),
]
NOW = T0 + FIVE_MINUTES_MS  # candle 0 complete, candle 1 forming: the replay price is 0.1


def new_book() -> Book:
    table = np.array(OHLC, dtype=np.float64)
    times = T0 + FIVE_MINUTES_MS * np.arange(len(OHLC), dtype=np.int64)
    candles = Candles(SYMBOL, times, table[:, 0], table[:, 1], table[:, 2], table[:, 3], np.ones(len(OHLC)))
    market = MarketData({SYMBOL: candles})
    # tick 0.00001, step 10, max leverage 25. The derived minimum is one step; two steps here, so that
    # the minimum-quantity rule has a case of its own, below the 5 USDT minimum notional.
    derived = derive_instrument(SYMBOL, D("0.1"), T0)
    instruments = {SYMBOL: dataclasses.replace(derived, min_order_qty=D("20"))}
    return Book(BookState(processed_until_ms=NOW), market, instruments, FEES)


def order(**fields: object) -> OrderRequest:
    body: dict[str, object] = {"category": "linear", "symbol": SYMBOL, "side": "Buy", "orderType": "Market"}
    body.update(fields)
    return parse_order_request(body)


def rejection(book: Book, request: OrderRequest, balance: str = "10000") -> int | None:
    account = book.create_account(D(balance), NOW)
    with pytest.raises(ExchangeRejected) as caught:
        book.place_order(account, request, NOW)
    assert account.order_ids == []
    return caught.value.ret_code


def test_a_market_order_fills_at_the_replay_price_and_pays_the_taker_fee() -> None:
    book = new_book()
    account = book.create_account(D("10000"), NOW)
    placed = book.place_order(account, order(qty="100"), NOW)
    assert (placed.status, placed.avg_price, placed.cum_exec_fee) == ("Filled", D("0.1"), D("0.0100"))
    position = account.positions[SYMBOL]
    assert (position.side, position.size, position.avg_price) == ("Buy", D("100"), D("0.1"))
    assert account.wallet["USDT"] == D("10000") - D("0.01")


def test_closing_realises_the_price_difference_and_flipping_opens_the_rest() -> None:
    book = new_book()
    account = book.create_account(D("10000"), NOW)
    book.place_order(account, order(qty="100"), NOW)
    later = T0 + 4 * FIVE_MINUTES_MS  # candle 4 forming: price 0.095
    book.process_until(later)
    book.place_order(account, order(side="Sell", qty="150"), later)
    position = account.positions[SYMBOL]
    assert (position.side, position.size, position.avg_price) == ("Sell", D("50"), D("0.095"))
    fees = D("100") * D("0.1") * D("0.001") + D("150") * D("0.095") * D("0.001")
    assert account.wallet["USDT"] == D("10000") + D("100") * (D("0.095") - D("0.1")) - fees


def test_a_stop_loss_closes_the_position_on_the_candle_that_reaches_it() -> None:
    book = new_book()
    account = book.create_account(D("10000"), NOW)
    book.place_order(account, order(qty="100", stopLoss="0.097", takeProfit="0.11"), NOW)
    assert not book.process_until(T0 + 3 * FIVE_MINUTES_MS)  # candles 1, 2 stay inside the stops
    assert book.process_until(T0 + 4 * FIVE_MINUTES_MS)  # candle 3 (low 0.094, open 0.1) hits the stop
    assert account.positions[SYMBOL].size == 0
    closing = book.orders_of(account)[0]
    assert (closing.stop_order_type, closing.avg_price, closing.created_time_ms) == (
        "StopLoss",
        D("0.097"),
        T0 + 4 * FIVE_MINUTES_MS,
    )
    fees = D("100") * D("0.1") * D("0.001") + D("100") * D("0.097") * D("0.001")
    assert account.wallet["USDT"] == D("10000") - D("0.3") - fees


def test_a_resting_limit_order_fills_as_maker_when_a_later_candle_trades_through_it() -> None:
    book = new_book()
    account = book.create_account(D("10000"), NOW)
    resting = book.place_order(account, order(orderType="Limit", price="0.0996", qty="100"), NOW)
    assert resting.status == "New"
    book.process_until(T0 + 2 * FIVE_MINUTES_MS)  # candle 1: low 0.099 reaches 0.0996
    assert (resting.status, resting.avg_price, resting.cum_exec_fee) == ("Filled", D("0.0996"), D("0.004980"))


def test_a_crossing_post_only_order_is_cancelled_instead_of_taking() -> None:
    book = new_book()
    account = book.create_account(D("10000"), NOW)
    placed = book.place_order(
        account, order(orderType="Limit", price="0.2", qty="100", timeInForce="PostOnly"), NOW
    )
    assert (placed.status, placed.reject_reason) == ("Cancelled", "EC_PostOnlyWillTakeLiquidity")


def test_a_duplicate_order_link_id_is_110072_and_creates_nothing() -> None:
    book = new_book()
    account = book.create_account(D("10000"), NOW)
    book.place_order(account, order(qty="100", orderLinkId="sig-1"), NOW)
    with pytest.raises(ExchangeRejected) as caught:
        book.place_order(account, order(qty="100", orderLinkId="sig-1"), NOW)
    assert caught.value.ret_code == 110072
    assert len(account.order_ids) == 1
    assert account.positions[SYMBOL].size == D("100")


def test_the_same_order_link_id_is_free_for_another_account() -> None:
    book = new_book()
    for _ in range(2):
        account = book.create_account(D("10000"), NOW)
        assert book.place_order(account, order(qty="100", orderLinkId="sig-1"), NOW).status == "Filled"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"qty": "105"}, 10001),  # not a multiple of the step 10
        ({"qty": "5"}, 110017),  # truncates to zero
        ({"qty": "10"}, 10001),  # below the minimum quantity 20
        ({"qty": "40"}, 110094),  # notional 4 < 5
        ({"qty": "100000000"}, 10001),  # above the maximum quantity
        ({"orderType": "Limit", "price": "0.099995", "qty": "100"}, 10001),  # off the 0.00001 tick
        ({"qty": "100", "reduceOnly": True}, 110017),  # nothing to reduce
        ({"qty": "100", "stopLoss": "0.2"}, 10001),  # a long's stop above the price
        ({"qty": "100", "takeProfit": "0.05"}, 10001),  # a long's take-profit below the price
        ({"qty": "100", "positionIdx": 1}, 10001),  # hedge mode is not available
        ({"qty": "1000000"}, 110007),  # margin 10,000 at 10x on a 100 USDT account
    ],
)
def test_linear_orders_breaking_a_rule_are_refused_with_bybits_code(
    fields: dict[str, object], code: int
) -> None:
    assert rejection(new_book(), order(**fields), balance="100") == code


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"orderType": "Limit", "price": "0.099995", "qty": "100"}, 170134),
        ({"orderType": "Limit", "price": "0.099", "qty": "100.001"}, 170137),  # basePrecision 0.01
        ({"orderType": "Limit", "price": "0.099", "qty": "10"}, 170136),
        ({"orderType": "Limit", "price": "0.099", "qty": "100000000"}, 170135),
        ({"orderType": "Limit", "price": "0.099", "qty": "40"}, 170140),
        ({"qty": "4"}, 170140),  # market buy of 4 USDT (quote amount by default)
        ({"side": "Sell", "qty": "100"}, 170131),  # no TEST to sell
    ],
)
def test_spot_orders_breaking_a_rule_are_refused_with_bybits_code(
    fields: dict[str, object], code: int
) -> None:
    assert rejection(new_book(), order(category="spot", **fields)) == code


def test_a_spot_market_buy_spends_a_quote_amount_by_default() -> None:
    book = new_book()
    account = book.create_account(D("10000"), NOW)
    placed = book.place_order(account, order(category="spot", qty="50"), NOW)
    assert (placed.market_unit, placed.cum_exec_qty) == ("quoteCoin", D("500"))
    assert account.wallet["TEST"] == D("500")
    assert account.wallet["USDT"] == D("10000") - D("50") - D("0.05")


def test_leverage_set_twice_to_the_same_value_is_110043() -> None:
    book = new_book()
    account = book.create_account(D("10000"), NOW)
    book.set_leverage(account, SYMBOL, D("5"), D("5"), NOW)
    with pytest.raises(ExchangeRejected) as caught:
        book.set_leverage(account, SYMBOL, D("5"), D("5"), NOW)
    assert caught.value.ret_code == 110043


@pytest.mark.parametrize(("buy", "sell"), [("0.5", "0.5"), ("26", "26"), ("5", "6"), ("5.001", "5.001")])
def test_leverage_outside_the_filter_is_10001(buy: str, sell: str) -> None:
    book = new_book()
    account = book.create_account(D("10000"), NOW)
    with pytest.raises(ExchangeRejected) as caught:
        book.set_leverage(account, SYMBOL, D(buy), D(sell), NOW)
    assert caught.value.ret_code == 10001
