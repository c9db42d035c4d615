"""The paper exchange's ``/v5/order/history`` and ``/v5/execution/list`` over real HTTP, through pybit
(``get_order_history``, ``get_executions``) and through ``PybitExchange``'s paging client methods."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from pybit.exceptions import InvalidRequestError
from pybit.unified_trading import HTTP

from lib.exchange.bybit import HISTORY_WINDOW_MS, PAPER
from lib.exchange.ports import Credentials
from lib.exchange.trading import PybitExchange, history_windows
from lib.paper_exchange import PaperAccount, PaperExchangeConfig, create_paper_account, running_paper_exchange

SYMBOL = "ETHUSDT"


@pytest.fixture
def exchange(tmp_path: Path) -> Iterator[str]:
    with running_paper_exchange(PaperExchangeConfig(state_path=tmp_path / "state.json", port=0)) as url:
        yield url


def _session(url: str, account: PaperAccount) -> HTTP:
    client = HTTP(api_key=account.api_key, api_secret=account.api_secret, timeout=5, max_retries=1)
    client.endpoint = url
    return client


def _orders(client: HTTP) -> list[dict[str, Any]]:
    """A filled market buy, a filled market sell, a limit buy resting far below the price; the ids."""
    placed = []
    for n, (side, kind, price) in enumerate(
        [("Buy", "Market", None), ("Sell", "Market", None), ("Buy", "Limit", "100")]
    ):
        params: dict[str, Any] = {"price": price} if price else {}
        result = client.place_order(
            category="linear",
            symbol=SYMBOL,
            side=side,
            orderType=kind,
            qty="0.1",
            orderLinkId=f"ax-h{n}",
            **params,
        )["result"]
        placed.append(result)
    return placed


def test_order_history_lists_open_and_closed_orders_newest_first_with_bybits_fields(exchange: str) -> None:
    client = _session(exchange, create_paper_account(exchange))
    placed = _orders(client)

    answer = client.get_order_history(category="linear")
    rows = answer["result"]["list"]

    assert [r["orderId"] for r in rows] == [p["orderId"] for p in reversed(placed)]
    assert [r["orderStatus"] for r in rows] == ["New", "Filled", "Filled"]
    assert {"orderLinkId", "avgPrice", "cumExecQty", "cumExecFee", "createdTime", "updatedTime"} <= set(
        rows[0]
    )
    assert answer["result"]["category"] == "linear"
    assert answer["result"]["nextPageCursor"] == ""
    only = client.get_order_history(category="linear", orderLinkId="ax-h1")["result"]["list"]
    assert [r["orderLinkId"] for r in only] == ["ax-h1"]
    assert client.get_order_history(category="linear", symbol="BTCUSDT")["result"]["list"] == []


def test_order_history_pages_through_a_cursor_and_filters_by_time(exchange: str) -> None:
    client = _session(exchange, create_paper_account(exchange))
    placed = _orders(client)
    created = int(client.get_order_history(category="linear")["result"]["list"][0]["createdTime"])

    first = client.get_order_history(category="linear", limit=2)["result"]
    second = client.get_order_history(category="linear", limit=2, cursor=first["nextPageCursor"])["result"]

    assert len(first["list"]) == 2
    assert first["nextPageCursor"]
    assert [r["orderId"] for r in first["list"] + second["list"]] == [p["orderId"] for p in reversed(placed)]
    assert second["nextPageCursor"] == ""
    later = client.get_order_history(category="linear", startTime=created + 1)["result"]["list"]
    assert later == []
    window = client.get_order_history(category="linear", startTime=created - 1, endTime=created)["result"]
    assert len(window["list"]) == 3
    with pytest.raises(InvalidRequestError) as refused:
        client.get_order_history(category="linear", startTime=0, endTime=HISTORY_WINDOW_MS + 1)
    assert refused.value.status_code == 10001


def test_executions_are_one_per_fill_with_its_price_qty_and_fee(exchange: str) -> None:
    client = _session(exchange, create_paper_account(exchange))
    _orders(client)
    orders = {r["orderLinkId"]: r for r in client.get_order_history(category="linear")["result"]["list"]}

    rows = client.get_executions(category="linear")["result"]["list"]

    assert [r["orderLinkId"] for r in rows] == ["ax-h1", "ax-h0"]  # the resting limit order has no fill
    for row in rows:
        order = orders[row["orderLinkId"]]
        assert (row["orderId"], row["execType"], row["side"]) == (order["orderId"], "Trade", order["side"])
        assert D(row["execQty"]) == D(order["cumExecQty"]) == D("0.1")
        assert D(row["execPrice"]) == D(order["avgPrice"])
        assert D(row["execFee"]) == D(order["cumExecFee"]) > 0
    again = client.get_executions(category="linear", limit=1)["result"]
    assert [r["execId"] for r in again["list"]] == [rows[0]["execId"]]  # stable ids, one page of one
    rest = client.get_executions(category="linear", limit=1, cursor=again["nextPageCursor"])["result"]
    assert [r["execId"] for r in rest["list"]] == [rows[1]["execId"]]
    assert rest["nextPageCursor"] == ""
    assert client.get_executions(category="linear", orderLinkId="ax-h2")["result"]["list"] == []


def test_the_trading_client_reads_every_page_of_both(exchange: str) -> None:
    account = create_paper_account(exchange)
    client = _session(exchange, account)
    for n in range(7):  # pages of 2: four pages each (the exchange allows 10 creates a second)
        client.place_order(
            category="linear",
            symbol=SYMBOL,
            side="Buy" if n % 2 == 0 else "Sell",
            orderType="Market",
            qty="0.01",
            orderLinkId=f"ax-p{n}",
        )
    pybit = PybitExchange(paper_url=exchange)
    creds = Credentials(PAPER, account.api_key, account.api_secret)

    async def run() -> tuple[int, int, set[str]]:
        orders = await pybit.order_history(creds, "linear", since_ms=None, page_size=2)
        fills = await pybit.executions(creds, "linear", since_ms=None, page_size=2)
        return len(orders), len(fills), {o.order_link_id for o in orders}

    n_orders, n_fills, links = asyncio.run(run())

    assert (n_orders, n_fills) == (7, 7)
    assert links == {f"ax-p{n}" for n in range(7)}


def test_history_windows_cover_the_range_in_slices_of_at_most_7_days() -> None:
    day = 24 * 3600 * 1000
    windows = history_windows(0, None, 15 * day)

    assert windows[0] == (0, 7 * day)
    assert windows[-1] is not None
    assert windows[-1][1] == 15 * day
    assert all(w is not None and w[1] - w[0] <= HISTORY_WINDOW_MS for w in windows)
    assert len(windows) == 3
    assert history_windows(None, None, 15 * day) == [None]
