"""The paper exchange's exits over real HTTP with pybit (unchanged): ``/v5/order/cancel`` and reduce-only
market orders, with Bybit's shapes and retCodes (110001 order not exists or too late to cancel,
110017 reduce-only rule not satisfied, 10001 params error)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
from pybit.exceptions import InvalidRequestError
from pybit.unified_trading import HTTP

from lib.exchange.bybit import ORDER_NOT_EXISTS, PARAMS_ERROR, REDUCE_ONLY_NOT_SATISFIED
from lib.ops.stack_replay import stack_symbols
from lib.paper_exchange import PaperExchangeConfig, create_paper_account, running_paper_exchange

SYMBOL = "ETHUSDT"


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with running_paper_exchange(PaperExchangeConfig(symbols=stack_symbols(), state_path=None, port=0)) as url:
        yield url


@pytest.fixture
def client(url: str) -> HTTP:
    account = create_paper_account(url, "100000")
    session = HTTP(api_key=account.api_key, api_secret=account.api_secret, max_retries=1, retry_codes={-1})
    session.endpoint = url
    return session


def link() -> str:
    return f"t-{uuid.uuid4().hex[:24]}"


def order(client: HTTP, order_link_id: str) -> dict[str, object]:
    result = client.get_open_orders(category="linear", symbol=SYMBOL, orderLinkId=order_link_id, openOnly=0)
    [item] = result["result"]["list"]
    return dict(item)


def last_price(client: HTTP) -> Decimal:
    return Decimal(client.get_tickers(category="linear", symbol=SYMBOL)["result"]["list"][0]["lastPrice"])


def ret_code(excinfo: pytest.ExceptionInfo[InvalidRequestError]) -> int:
    return int(excinfo.value.status_code)


def test_cancel_a_resting_order_by_link_id_then_again(client: HTTP) -> None:
    resting = link()
    price = (last_price(client) / 2).quantize(Decimal("0.01"))
    placed = client.place_order(
        category="linear",
        symbol=SYMBOL,
        side="Buy",
        orderType="Limit",
        qty="0.5",
        price=str(price),
        orderLinkId=resting,
    )["result"]

    answer = client.cancel_order(category="linear", symbol=SYMBOL, orderLinkId=resting)

    assert answer["retCode"] == 0
    assert answer["result"] == {"orderId": placed["orderId"], "orderLinkId": resting}
    state = order(client, resting)
    assert state["orderStatus"] == "Cancelled"
    assert state["cancelType"] == "CancelByUser"
    with pytest.raises(InvalidRequestError) as again:
        client.cancel_order(category="linear", symbol=SYMBOL, orderId=placed["orderId"])
    assert ret_code(again) == ORDER_NOT_EXISTS
    assert "too late to cancel" in again.value.message


def test_a_filled_order_an_unknown_one_or_no_id_cannot_be_cancelled(client: HTTP) -> None:
    filled = link()
    client.place_order(
        category="linear", symbol=SYMBOL, side="Buy", orderType="Market", qty="0.1", orderLinkId=filled
    )
    for ids in ({"orderLinkId": filled}, {"orderLinkId": link()}, {"orderId": str(uuid.uuid4())}):
        with pytest.raises(InvalidRequestError) as refused:
            client.cancel_order(category="linear", symbol=SYMBOL, **ids)
        assert ret_code(refused) == ORDER_NOT_EXISTS
    with pytest.raises(InvalidRequestError) as missing:
        client.cancel_order(category="linear", symbol=SYMBOL)
    assert ret_code(missing) == PARAMS_ERROR
    assert order(client, filled)["orderStatus"] == "Filled"


def test_a_reduce_only_market_order_closes_the_position_and_is_trimmed_to_it(client: HTTP) -> None:
    client.place_order(
        category="linear", symbol=SYMBOL, side="Sell", orderType="Market", qty="0.3", orderLinkId=link()
    )
    close = link()

    client.place_order(
        category="linear",
        symbol=SYMBOL,
        side="Buy",
        orderType="Market",
        qty="1",
        reduceOnly=True,
        orderLinkId=close,
    )

    state = order(client, close)
    assert state["orderStatus"] == "Filled"
    assert state["reduceOnly"] is True
    assert Decimal(str(state["cumExecQty"])) == Decimal("0.3")  # trimmed to the position
    [position] = client.get_positions(category="linear", symbol=SYMBOL)["result"]["list"]
    assert Decimal(position["size"]) == 0


def test_a_reduce_only_order_that_would_open_or_grow_a_position_is_refused(client: HTTP) -> None:
    with pytest.raises(InvalidRequestError) as flat:
        client.place_order(
            category="linear",
            symbol=SYMBOL,
            side="Sell",
            orderType="Market",
            qty="0.1",
            reduceOnly=True,
            orderLinkId=link(),
        )
    assert ret_code(flat) == REDUCE_ONLY_NOT_SATISFIED
    client.place_order(
        category="linear", symbol=SYMBOL, side="Buy", orderType="Market", qty="0.1", orderLinkId=link()
    )
    with pytest.raises(InvalidRequestError) as same_way:
        client.place_order(
            category="linear",
            symbol=SYMBOL,
            side="Buy",
            orderType="Market",
            qty="0.1",
            reduceOnly=True,
            orderLinkId=link(),
        )
    assert ret_code(same_way) == REDUCE_ONLY_NOT_SATISFIED
