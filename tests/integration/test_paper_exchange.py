"""The paper exchange over real HTTP: httpx for the raw protocol, pybit (unchanged) as the trading client.

Every test starts its own server on a free loopback port unless it only reads market data, so clocks,
faults and accounts never leak between tests. The server replays the bundled USDT markets; expected
prices come from their CSV files.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import requests
from pybit.exceptions import FailedRequestError, InvalidRequestError
from pybit.unified_trading import HTTP

from lib.core.candles import Candles
from lib.core.timeframes import FIVE_MINUTES_MS
from lib.exchange.signing import signed_headers
from lib.paper_exchange import PaperAccount, PaperExchangeConfig, create_paper_account, running_paper_exchange
from lib.paper_exchange.client import PaperControls
from lib.paper_exchange.market import load_market
from lib.paper_exchange.server import create_paper_account_async
from lib.research.bundled_data import BUNDLED_USDT_DIR, list_symbols, load_candles

SYMBOL = "ETHUSDT"  # five-minute candles, no gaps; tick 0.01, qty step 0.01
HOURLY_ONLY = "ACAUSDT"  # hourly candles only
START_INDEX = 300  # the default replay start: 300 candles of history (ETHUSDT opens with the data)
TAKER, MAKER = D("0.00055"), D("0.0002")  # Bybit's base linear fees, the defaults
QTY = D("1")  # 1 ETH, about 2,400 USDT at the replay start

StartServer = Callable[..., AbstractContextManager[str]]
# One pooled client for the raw calls: a fresh httpx client per call costs tens of milliseconds.
HTTP_CLIENT = httpx.Client(timeout=5)


@pytest.fixture(scope="module", autouse=True)
def _close_http_client() -> Iterator[None]:
    yield
    HTTP_CLIENT.close()


@pytest.fixture(scope="module")
def eth() -> Candles:
    return load_candles(SYMBOL, BUNDLED_USDT_DIR, "5")


def d(value: float) -> D:
    return D(repr(float(value)))


@pytest.fixture
def start_server(tmp_path: Path) -> StartServer:
    """Start a paper exchange with its own state file (``state`` to reuse one across restarts)."""

    def start(state: Path | None = None, **overrides: Any) -> AbstractContextManager[str]:
        config = PaperExchangeConfig(state_path=state or tmp_path / "state.json", port=0, **overrides)
        return running_paper_exchange(config)

    return start


@pytest.fixture
def exchange(start_server: StartServer) -> Iterator[str]:
    with start_server() as url:
        yield url


@pytest.fixture(scope="module")
def shared_exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A read-only server for market-data tests: nobody moves its clock or sets faults."""
    config = PaperExchangeConfig(state_path=tmp_path_factory.mktemp("shared") / "state.json", port=0)
    with running_paper_exchange(config) as url:
        yield url


def session(url: str, account: PaperAccount, *, secret: str | None = None, timeout: float = 5.0) -> HTTP:
    """A stock pybit session pointed at the paper exchange."""
    client = HTTP(
        api_key=account.api_key, api_secret=secret or account.api_secret, timeout=timeout, max_retries=1
    )
    client.endpoint = url
    return client


def market(url: str, path: str, **params: Any) -> dict[str, Any]:
    response = HTTP_CLIENT.get(f"{url}{path}", params=params)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def advance(url: str, candles: int) -> int:
    response = HTTP_CLIENT.post(f"{url}/_paper/clock/advance", json={"candles": candles})
    assert response.status_code == 200
    time_ms: int = response.json()["time_ms"]
    return time_ms


def clock_ms(url: str) -> int:
    time_ms: int = HTTP_CLIENT.get(f"{url}/_paper/clock").json()["time_ms"]
    return time_ms


def signed_get(
    url: str,
    account: PaperAccount,
    path: str,
    query: str,
    *,
    secret: str | None = None,
    timestamp_ms: int | None = None,
) -> httpx.Response:
    headers = signed_headers(
        api_key=account.api_key,
        api_secret=secret or account.api_secret,
        timestamp_ms=timestamp_ms if timestamp_ms is not None else int(time.time() * 1000),
        payload=query,
    )
    return HTTP_CLIENT.get(f"{url}{path}?{query}", headers=headers)


def kline_of(candles: Candles, index: int) -> list[D]:
    """A CSV candle as the exact decimals a kline row must carry (turnover: volume x close)."""
    volume, close = d(candles.volume[index]), d(candles.close[index])
    return [
        D(int(candles.open_time_ms[index])),
        d(candles.open[index]),
        d(candles.high[index]),
        d(candles.low[index]),
        close,
        volume,
        volume * close,
    ]


def as_decimals(row: list[str]) -> list[D]:
    return [D(value) for value in row]


# ------------------------------------------------------------------------------------------ market side


def market_buy(client: Any, order_link_id: str) -> Any:
    """A market Buy of ``QTY`` ``SYMBOL`` with ``order_link_id``: the order these tests send again."""
    return client.place_order(
        category="linear",
        symbol=SYMBOL,
        side="Buy",
        orderType="Market",
        qty=str(QTY),
        orderLinkId=order_link_id,
    )


def test_every_answer_wears_bybits_envelope(shared_exchange: str) -> None:
    before = int(time.time() * 1000)
    body = market(shared_exchange, "/v5/market/time")
    assert (body["retCode"], body["retMsg"], body["retExtInfo"]) == (0, "OK", {})
    assert before - 1000 <= body["time"] <= int(time.time() * 1000) + 1000
    assert int(body["result"]["timeSecond"]) == body["time"] // 1000


def test_klines_are_the_csv_candles_newest_first_ending_with_the_forming_one(
    shared_exchange: str, eth: Candles
) -> None:
    rows = market(
        shared_exchange, "/v5/market/kline", category="linear", symbol=SYMBOL, interval="5", limit=50
    )["result"]["list"]
    starts = [int(row[0]) for row in rows]
    assert len(rows) == 50
    assert starts == sorted(starts, reverse=True)
    forming_open = d(eth.open[START_INDEX])
    assert as_decimals(rows[0]) == [D(int(eth.open_time_ms[START_INDEX])), *[forming_open] * 4, D(0), D(0)]
    for offset, row in enumerate(rows[1:], start=1):
        assert as_decimals(row) == kline_of(eth, START_INDEX - offset)


@pytest.mark.parametrize(("interval", "minutes"), [("15", 15), ("60", 60), ("240", 240)])
def test_a_longer_kline_aggregates_exactly_its_5_minute_candles(
    shared_exchange: str, eth: Candles, interval: str, minutes: int
) -> None:
    rows = market(shared_exchange, "/v5/market/kline", symbol=SYMBOL, interval=interval, limit=3)["result"][
        "list"
    ]
    start = int(rows[1][0])  # the newest complete bucket (rows[0] is still forming)
    inside = [i for i in range(len(eth)) if start <= int(eth.open_time_ms[i]) < start + minutes * 60_000]
    assert len(inside) == minutes // 5
    parts = [kline_of(eth, i) for i in inside]
    expected = [
        D(start),
        parts[0][1],
        max(p[2] for p in parts),
        min(p[3] for p in parts),
        parts[-1][4],
        sum((p[5] for p in parts), D(0)),
        sum((p[6] for p in parts), D(0)),
    ]
    assert as_decimals(rows[1]) == expected


@pytest.mark.parametrize("interval", ["1", "3", "7"])
def test_intervals_finer_than_the_replay_or_unknown_are_refused(shared_exchange: str, interval: str) -> None:
    body = market(shared_exchange, "/v5/market/kline", symbol=SYMBOL, interval=interval)
    assert body["retCode"] == 10001
    assert body["result"] == {}


def test_an_hourly_only_symbol_serves_60_minutes_and_up_and_finer_intervals_empty(
    shared_exchange: str,
) -> None:
    hourly = load_candles(HOURLY_ONLY, BUNDLED_USDT_DIR, "60")
    now = clock_ms(shared_exchange)
    rows = market(shared_exchange, "/v5/market/kline", symbol=HOURLY_ONLY, interval="60", limit=5)["result"][
        "list"
    ]
    completed = int(np.searchsorted(hourly.open_time_ms, now - 3_600_000, side="right"))
    assert [int(r[0]) for r in rows[1:]] == [int(hourly.open_time_ms[completed - k]) for k in range(1, 5)]
    assert as_decimals(rows[1]) == kline_of(hourly, completed - 1)
    four_hours = market(shared_exchange, "/v5/market/kline", symbol=HOURLY_ONLY, interval="240", limit=2)
    assert len(four_hours["result"]["list"]) == 2
    for interval in ("5", "15", "30"):
        # Bybit's answer for a symbol with no candles in the range asked for: OK, and an empty list.
        body = market(shared_exchange, "/v5/market/kline", symbol=HOURLY_ONLY, interval=interval)
        assert (body["retCode"], body["retMsg"]) == (0, "OK")
        assert body["result"] == {"category": "linear", "symbol": HOURLY_ONLY, "list": []}


@pytest.mark.parametrize(
    ("symbol", "tick", "step", "max_leverage"),
    [
        ("BTCUSDT", "0.1", "0.001", "100.00"),
        ("ETHUSDT", "0.01", "0.01", "100.00"),
        ("SOLUSDT", "0.01", "0.01", "50.00"),
        ("DOGEUSDT", "0.00001", "10", "50.00"),  # a sub-dollar coin: a finer tick
        ("PEPEUSDT", "0.0000000001", "1000000", "50.00"),
        ("ACAUSDT", "0.00001", "10", "25.00"),
    ],
)
def test_each_usdt_perpetual_has_bybit_like_filters_for_its_price(
    shared_exchange: str, symbol: str, tick: str, step: str, max_leverage: str
) -> None:
    item = market(shared_exchange, "/v5/market/instruments-info", category="linear", symbol=symbol)["result"][
        "list"
    ][0]
    assert (item["contractType"], item["quoteCoin"], item["settleCoin"]) == (
        "LinearPerpetual",
        "USDT",
        "USDT",
    )
    assert item["priceFilter"]["tickSize"] == tick
    lot = item["lotSizeFilter"]
    assert (lot["qtyStep"], lot["minOrderQty"], lot["minNotionalValue"]) == (step, step, "5")
    assert item["leverageFilter"]["maxLeverage"] == max_leverage


def test_instruments_page_through_a_cursor(shared_exchange: str) -> None:
    seen: list[str] = []
    cursor = ""
    pages = 0
    while True:
        result = market(
            shared_exchange, "/v5/market/instruments-info", category="linear", limit=40, cursor=cursor
        )["result"]
        seen += [item["symbol"] for item in result["list"]]
        pages += 1
        cursor = result["nextPageCursor"]
        if not cursor:
            break
    assert pages == 3  # 102 symbols: 40 + 40 + 22
    assert seen == list_symbols(BUNDLED_USDT_DIR, "60")  # every pair has hourly candles
    assert len(seen) == 102


def test_instrument_filters_use_bybits_names_per_category(shared_exchange: str) -> None:
    linear = market(shared_exchange, "/v5/market/instruments-info", category="linear", symbol=SYMBOL)[
        "result"
    ]
    lot = linear["list"][0]["lotSizeFilter"]
    assert set(lot) >= {"qtyStep", "minOrderQty", "maxOrderQty", "minNotionalValue"}
    assert linear["list"][0]["priceFilter"]["tickSize"] == "0.01"
    spot = market(shared_exchange, "/v5/market/instruments-info", category="spot", symbol=SYMBOL)["result"]
    assert set(spot["list"][0]["lotSizeFilter"]) >= {
        "basePrecision",
        "minOrderQty",
        "maxOrderQty",
        "minOrderAmt",
    }


def test_tickers_summarise_the_last_24_hours_before_the_replay_time(
    shared_exchange: str, eth: Candles
) -> None:
    item = market(shared_exchange, "/v5/market/tickers", category="linear", symbol=SYMBOL)["result"]["list"][
        0
    ]
    window = range(START_INDEX - 288, START_INDEX)
    last = d(eth.open[START_INDEX])
    assert D(item["lastPrice"]) == last
    assert D(item["bid1Price"]) < last < D(item["ask1Price"])
    assert D(item["highPrice24h"]) == max([d(eth.high[i]) for i in window] + [last])
    assert D(item["lowPrice24h"]) == min([d(eth.low[i]) for i in window] + [last])
    assert D(item["volume24h"]) == sum((d(eth.volume[i]) for i in window), D(0))
    assert D(item["prevPrice24h"]) == d(eth.open[START_INDEX - 288])
    all_symbols = market(shared_exchange, "/v5/market/tickers", category="spot")["result"]["list"]
    # Every pair already listed at the replay time (some list later in 2024: no ticker before then).
    served = load_market(BUNDLED_USDT_DIR.resolve())
    now = int(eth.open_time_ms[START_INDEX])
    listed = [s for s in served.symbols if served.first_open_of(s) <= now]
    assert [item["symbol"] for item in all_symbols] == listed
    assert len(listed) == 88  # 14 of the 102 list later in 2024


def test_no_candle_from_the_future_is_served_after_advancing(exchange: str, eth: Candles) -> None:
    now = advance(exchange, 7)
    index = START_INDEX + 7
    assert now == int(eth.open_time_ms[index])
    rows = market(exchange, "/v5/market/kline", symbol=SYMBOL, interval="5", end=now + 10 * FIVE_MINUTES_MS)[
        "result"
    ]["list"]
    assert max(int(row[0]) for row in rows) == now
    assert as_decimals(rows[0])[1:] == [d(eth.open[index])] * 4 + [D(0), D(0)]
    assert as_decimals(rows[1]) == kline_of(eth, index - 1)
    day = market(exchange, "/v5/market/kline", symbol=SYMBOL, interval="D")["result"]["list"][0]
    assert D(day[4]) == d(eth.open[index])  # the forming day closes at the price of now, not later
    ticker = market(exchange, "/v5/market/tickers", category="linear", symbol=SYMBOL)["result"]["list"][0]
    assert D(ticker["lastPrice"]) == d(eth.open[index])


# ---------------------------------------------------------------------------------------------- faults


def outcomes(url: str, n: int) -> list[tuple[int, int | None, str | None]]:
    seen = []
    for _ in range(n):
        response = HTTP_CLIENT.get(f"{url}/v5/market/time")
        code = response.json()["retCode"] if response.status_code == 200 else None
        seen.append((response.status_code, code, response.headers.get("X-Bapi-Limit-Status")))
    return seen


def test_market_faults_repeat_with_the_same_seed(exchange: str) -> None:
    plan = {"seed": 42, "market": {"http_5xx_probability": 0.3, "rate_limit_probability": 0.3}}
    assert HTTP_CLIENT.post(f"{exchange}/_paper/faults", json=plan).status_code == 200
    first = outcomes(exchange, 24)
    HTTP_CLIENT.post(f"{exchange}/_paper/faults", json=plan)
    assert outcomes(exchange, 24) == first
    assert {(503, None, None), (200, 10006, "0"), (200, 0, None)} == set(first)
    HTTP_CLIENT.post(f"{exchange}/_paper/faults", json={**plan, "seed": 43})
    assert outcomes(exchange, 24) != first


def test_a_rate_limit_fault_carries_bybits_headers(exchange: str) -> None:
    HTTP_CLIENT.post(f"{exchange}/_paper/faults", json={"market": {"rate_limit_probability": 1.0}})
    response = HTTP_CLIENT.get(f"{exchange}/v5/market/kline", params={"symbol": SYMBOL, "interval": "5"})
    now = int(time.time() * 1000)
    assert response.json()["retCode"] == 10006
    assert response.headers["X-Bapi-Limit-Status"] == "0"
    assert int(response.headers["X-Bapi-Limit"]) > 0
    assert now < int(response.headers["X-Bapi-Limit-Reset-Timestamp"]) <= now + 2000


def test_a_timeout_fault_holds_the_request_past_the_client_timeout(exchange: str) -> None:
    HTTP_CLIENT.post(
        f"{exchange}/_paper/faults", json={"market": {"timeout_probability": 1.0, "hang_ms": 1500}}
    )
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        HTTP_CLIENT.get(f"{exchange}/v5/market/time", timeout=0.3)
    assert time.monotonic() - started < 1.4
    HTTP_CLIENT.post(f"{exchange}/_paper/faults", json={})
    assert market(exchange, "/v5/market/time")["retCode"] == 0


def test_latency_delays_only_its_own_group(exchange: str) -> None:
    HTTP_CLIENT.post(f"{exchange}/_paper/faults", json={"market": {"latency_ms": 300}})
    started = time.monotonic()
    assert market(exchange, "/v5/market/time")["retCode"] == 0
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    session(exchange, create_paper_account(exchange)).get_wallet_balance(accountType="UNIFIED")
    assert time.monotonic() - started < 0.3


# ---------------------------------------------------------------------------------------------- signing


def test_an_unknown_api_key_is_10003(exchange: str) -> None:
    stranger = PaperAccount(account_id="0", api_key="NOTAKEY00000000000", api_secret="x" * 36)
    with pytest.raises(InvalidRequestError) as caught:
        session(exchange, stranger).get_wallet_balance(accountType="UNIFIED")
    assert caught.value.status_code == 10003


def test_a_request_signed_with_the_wrong_secret_is_10004(exchange: str) -> None:
    account = create_paper_account(exchange)
    with pytest.raises(InvalidRequestError) as caught:
        session(exchange, account, secret="y" * 36).place_order(
            category="linear", symbol=SYMBOL, side="Buy", orderType="Market", qty="100"
        )
    assert caught.value.status_code == 10004


@pytest.mark.parametrize(("offset_ms", "code"), [(-6000, 10002), (1500, 10002), (-4000, 0)])
def test_the_recv_window_is_checked_against_the_wall_clock(exchange: str, offset_ms: int, code: int) -> None:
    account = create_paper_account(exchange)
    query = "accountType=UNIFIED"
    response = signed_get(
        exchange,
        account,
        "/v5/account/wallet-balance",
        query,
        timestamp_ms=int(time.time() * 1000) + offset_ms,
    )
    assert response.json()["retCode"] == code


# ---------------------------------------------------------------------------------------------- trading


def test_a_market_order_fills_at_the_replay_price(exchange: str, eth: Candles) -> None:
    account = create_paper_account(exchange, "10000")
    client = session(exchange, account)
    created = client.place_order(
        category="linear", symbol=SYMBOL, side="Buy", orderType="Market", qty=str(QTY)
    )
    order = client.get_open_orders(category="linear", orderId=created["result"]["orderId"])["result"]["list"][
        0
    ]
    price = d(eth.open[START_INDEX])
    assert (order["orderStatus"], D(order["avgPrice"]), D(order["cumExecQty"])) == ("Filled", price, QTY)
    fee = QTY * price * TAKER  # the taker fee on a market order, about 1.31 USDT
    assert D(order["cumExecFee"]) == fee
    position = client.get_positions(category="linear", symbol=SYMBOL)["result"]["list"][0]
    assert (position["side"], D(position["size"]), D(position["avgPrice"])) == ("Buy", QTY, price)
    coin = client.get_wallet_balance(accountType="UNIFIED", coin="USDT")["result"]["list"][0]["coin"][0]
    assert D(coin["walletBalance"]) == D(10000) - fee


def test_the_fees_are_configurable_and_every_fill_pays_them_from_the_wallet(
    start_server: StartServer,
) -> None:
    taker, maker = D("0.001"), D("0.0004")
    with start_server(taker_fee_rate=taker, maker_fee_rate=maker) as url:
        client = session(url, create_paper_account(url, "10000"))
        bought = client.place_order(
            category="linear", symbol="BTCUSDT", side="Buy", orderType="Market", qty="0.01"
        )
        order = client.get_open_orders(category="linear", orderId=bought["result"]["orderId"])["result"][
            "list"
        ][0]
        entry = D(order["avgPrice"])
        assert D(order["cumExecFee"]) == D("0.01") * entry * taker  # about 0.45 USDT on 450 USDT
        advance(url, 12)
        sold = client.place_order(
            category="linear", symbol="BTCUSDT", side="Sell", orderType="Market", qty="0.01"
        )
        exit_order = client.get_open_orders(category="linear", orderId=sold["result"]["orderId"])["result"][
            "list"
        ]
        exit_price = D(exit_order[0]["avgPrice"])
        fees = D("0.01") * (entry + exit_price) * taker
        wallet = client.get_wallet_balance(accountType="UNIFIED")["result"]["list"][0]
        assert D(wallet["totalWalletBalance"]) == D(10000) + D("0.01") * (exit_price - entry) - fees
        position = client.get_positions(category="linear", symbol="BTCUSDT")["result"]["list"][0]
        assert D(position["cumRealisedPnl"]) == D("0.01") * (exit_price - entry) - fees


@pytest.mark.parametrize(("symbol", "highest"), [("BTCUSDT", "100"), ("SOLUSDT", "50"), ("ACAUSDT", "25")])
def test_leverage_goes_up_to_each_symbols_maximum_and_no_further(
    exchange: str, symbol: str, highest: str
) -> None:
    client = session(exchange, create_paper_account(exchange))
    above = str(D(highest) + D("0.01"))
    with pytest.raises(InvalidRequestError) as caught:
        client.set_leverage(category="linear", symbol=symbol, buyLeverage=above, sellLeverage=above)
    assert caught.value.status_code == 10001
    assert (
        client.set_leverage(category="linear", symbol=symbol, buyLeverage=highest, sellLeverage=highest)[
            "retCode"
        ]
        == 0
    )
    assert client.get_positions(category="linear", symbol=symbol)["result"]["list"][0]["leverage"] == highest


def test_a_duplicate_order_link_id_is_110072_and_the_order_is_not_placed_twice(exchange: str) -> None:
    client = session(exchange, create_paper_account(exchange))
    order = {"category": "linear", "symbol": SYMBOL, "side": "Buy", "orderType": "Market", "qty": str(QTY)}
    client.place_order(**order, orderLinkId="signal-42-user-7")
    with pytest.raises(InvalidRequestError) as caught:
        client.place_order(**order, orderLinkId="signal-42-user-7")
    assert caught.value.status_code == 110072
    found = client.get_open_orders(category="linear", orderLinkId="signal-42-user-7")["result"]["list"]
    assert len(found) == 1
    assert client.get_positions(category="linear", symbol=SYMBOL)["result"]["list"][0]["size"] == str(QTY)


@pytest.mark.parametrize(
    ("symbol", "category", "fields", "code"),
    [
        ("ETHUSDT", "linear", {"qty": "1.005"}, 10001),  # not a multiple of qtyStep 0.01
        ("ETHUSDT", "linear", {"qty": "0.005"}, 110017),  # truncates to zero
        ("DOGEUSDT", "linear", {"qty": "50"}, 110094),  # notional about 4.66 < 5 (DOGE at 0.0932)
        ("ETHUSDT", "linear", {"orderType": "Limit", "price": "2300.005", "qty": "1"}, 10001),  # off tick
        ("ETHUSDT", "spot", {"orderType": "Limit", "price": "2300.005", "qty": "1"}, 170134),
        ("ETHUSDT", "spot", {"orderType": "Limit", "price": "2300", "qty": "1.000005"}, 170137),
        ("ETHUSDT", "spot", {"orderType": "Limit", "price": "2300", "qty": "0.005"}, 170136),
        ("DOGEUSDT", "spot", {"orderType": "Limit", "price": "0.09", "qty": "50"}, 170140),  # 4.5 USDT
    ],
)
def test_lot_tick_and_notional_filters_reject_with_bybits_codes(
    shared_exchange: str, symbol: str, category: str, fields: dict[str, str], code: int
) -> None:
    client = session(shared_exchange, create_paper_account(shared_exchange))
    order = {"category": category, "symbol": symbol, "side": "Buy", "orderType": "Market", **fields}
    with pytest.raises(InvalidRequestError) as caught:
        client.place_order(**order)
    assert caught.value.status_code == code
    assert client.get_open_orders(category=category, symbol=symbol, openOnly=1)["result"]["list"] == []


def first_touch(eth: Candles, after: int, level: D, *, below: bool) -> int:
    """Index of the first candle after ``after`` whose low (or high) reaches ``level``."""
    for i in range(after, len(eth)):
        if (below and d(eth.low[i]) <= level) or (not below and d(eth.high[i]) >= level):
            return i
    raise AssertionError(f"the data never reaches {level}")


def test_a_stop_loss_triggers_on_a_later_candle_and_the_loss_reaches_the_wallet(
    exchange: str, eth: Candles
) -> None:
    client = session(exchange, create_paper_account(exchange, "10000"))
    entry = d(eth.open[START_INDEX])
    stop, target = (entry * D("0.98")).quantize(D("0.01")), (entry * D("1.5")).quantize(D("0.01"))
    hit = first_touch(eth, START_INDEX, stop, below=True)
    assert all(d(eth.high[i]) < target for i in range(START_INDEX, hit + 1))
    client.place_order(
        category="linear",
        symbol=SYMBOL,
        side="Buy",
        orderType="Market",
        qty=str(QTY),
        stopLoss=str(stop),
        takeProfit=str(target),
        slTriggerBy="LastPrice",
    )
    advance(exchange, hit - START_INDEX)  # every candle before the touching one has completed
    assert client.get_positions(category="linear", symbol=SYMBOL)["result"]["list"][0]["size"] == str(QTY)
    advance(exchange, 1)
    assert client.get_positions(category="linear", symbol=SYMBOL)["result"]["list"][0]["size"] == "0"
    closing = client.get_open_orders(category="linear", symbol=SYMBOL, openOnly=1)["result"]["list"][0]
    exit_price = min(stop, d(eth.open[hit]))
    assert (closing["stopOrderType"], closing["side"], D(closing["avgPrice"])) == (
        "StopLoss",
        "Sell",
        exit_price,
    )
    expected = D(10000) + QTY * (exit_price - entry) - QTY * (entry + exit_price) * TAKER
    coin = client.get_wallet_balance(accountType="UNIFIED")["result"]["list"][0]["coin"][0]
    assert D(coin["walletBalance"]) == expected < D(10000)


def test_a_short_take_profit_triggers_and_the_profit_reaches_the_wallet(exchange: str, eth: Candles) -> None:
    client = session(exchange, create_paper_account(exchange, "10000"))
    client.set_leverage(category="linear", symbol=SYMBOL, buyLeverage="5", sellLeverage="5")
    entry = d(eth.open[START_INDEX])
    target = (entry * D("0.99")).quantize(D("0.01"))
    hit = first_touch(eth, START_INDEX, target, below=True)
    client.place_order(
        category="linear",
        symbol=SYMBOL,
        side="Sell",
        orderType="Market",
        qty=str(2 * QTY),
        takeProfit=str(target),
    )
    advance(exchange, hit - START_INDEX + 1)
    closing = client.get_open_orders(category="linear", symbol=SYMBOL, openOnly=1)["result"]["list"][0]
    exit_price = min(target, d(eth.open[hit]))
    assert (closing["stopOrderType"], D(closing["avgPrice"])) == ("TakeProfit", exit_price)
    expected = D(10000) + 2 * QTY * (entry - exit_price) - 2 * QTY * (entry + exit_price) * TAKER
    balance = client.get_wallet_balance(accountType="UNIFIED")["result"]["list"][0]["totalWalletBalance"]
    assert D(balance) == expected > D(10000)


def test_a_limit_order_rests_until_a_candle_trades_through_it(exchange: str, eth: Candles) -> None:
    client = session(exchange, create_paper_account(exchange))
    price = (d(eth.open[START_INDEX]) * D("0.995")).quantize(D("0.01"))
    hit = first_touch(eth, START_INDEX, price, below=True)
    created = client.place_order(
        category="linear", symbol=SYMBOL, side="Buy", orderType="Limit", price=str(price), qty=str(QTY)
    )
    order_id = created["result"]["orderId"]
    advance(exchange, hit - START_INDEX)
    resting = client.get_open_orders(category="linear", symbol=SYMBOL)["result"]["list"]
    assert [(o["orderId"], o["orderStatus"]) for o in resting] == [(order_id, "New")]
    advance(exchange, 1)
    assert client.get_open_orders(category="linear", symbol=SYMBOL)["result"]["list"] == []
    filled = client.get_open_orders(category="linear", orderId=order_id)["result"]["list"][0]
    fill = min(price, d(eth.open[hit]))
    assert (filled["orderStatus"], D(filled["avgPrice"]), D(filled["cumExecFee"])) == (
        "Filled",
        fill,
        QTY * fill * MAKER,
    )


def test_leverage_set_twice_answers_110043(exchange: str) -> None:
    client = session(exchange, create_paper_account(exchange))
    assert (
        client.set_leverage(category="linear", symbol=SYMBOL, buyLeverage="3", sellLeverage="3")["retCode"]
        == 0
    )
    with pytest.raises(InvalidRequestError) as caught:
        client.set_leverage(category="linear", symbol=SYMBOL, buyLeverage="3", sellLeverage="3")
    assert caught.value.status_code == 110043
    assert client.get_positions(category="linear", symbol=SYMBOL)["result"]["list"][0]["leverage"] == "3"


def test_order_create_is_limited_to_ten_per_second_per_account(exchange: str) -> None:
    account = create_paper_account(exchange)

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=exchange, timeout=5) as client:
            bodies = [
                f'{{"category":"linear","symbol":"{SYMBOL}","side":"Buy","orderType":"Market","qty":"0.005"}}'
            ] * 12
            stamp = int(time.time() * 1000)
            calls = [
                client.post(
                    "/v5/order/create",
                    content=body,
                    headers={
                        **signed_headers(
                            api_key=account.api_key,
                            api_secret=account.api_secret,
                            timestamp_ms=stamp,
                            payload=body,
                        ),
                        "Content-Type": "application/json",
                    },
                )
                for body in bodies
            ]
            return await asyncio.gather(*calls)

    responses = asyncio.run(burst())
    codes = sorted(r.json()["retCode"] for r in responses)
    assert codes.count(10006) >= 2
    assert set(codes) == {110017, 10006}
    limited = next(r for r in responses if r.json()["retCode"] == 10006)
    assert (limited.headers["X-Bapi-Limit"], limited.headers["X-Bapi-Limit-Status"]) == ("10", "0")


# ------------------------------------------------------------------------------------- durability, faults


def test_state_survives_a_restart_of_the_server(start_server: StartServer, tmp_path: Path) -> None:
    state = tmp_path / "durable.json"
    with start_server(state=state) as url:
        account = create_paper_account(url, "5000")
        client = session(url, account)
        client.set_leverage(category="linear", symbol=SYMBOL, buyLeverage="4", sellLeverage="4")
        order_id = market_buy(client, "keep-me")["result"]["orderId"]
        moved_to = advance(url, 5)
        wallet_before = client.get_wallet_balance(accountType="UNIFIED")["result"]["list"][0][
            "totalWalletBalance"
        ]
    with start_server(state=state) as url:
        client = session(url, account)
        assert clock_ms(url) == moved_to
        found = client.get_open_orders(category="linear", orderLinkId="keep-me")["result"]["list"]
        assert [o["orderId"] for o in found] == [order_id]
        position = client.get_positions(category="linear", symbol=SYMBOL)["result"]["list"][0]
        assert (position["size"], position["leverage"]) == (str(QTY), "4")
        wallet = client.get_wallet_balance(accountType="UNIFIED")["result"]["list"][0]["totalWalletBalance"]
        assert wallet == wallet_before
        with pytest.raises(InvalidRequestError) as caught:
            market_buy(client, "keep-me")
        assert caught.value.status_code == 110072


def test_an_order_accepted_before_a_timeout_is_recorded(exchange: str) -> None:
    account = create_paper_account(exchange)
    faults = {"seed": 1, "order": {"accepted_timeout_probability": 1.0, "hang_ms": 1500}}
    HTTP_CLIENT.post(f"{exchange}/_paper/faults", json=faults)
    with pytest.raises(requests.exceptions.ReadTimeout):
        market_buy(session(exchange, account, timeout=0.3), "lost-answer")
    HTTP_CLIENT.post(f"{exchange}/_paper/faults", json={})
    client = session(exchange, account)
    found = client.get_open_orders(category="linear", orderLinkId="lost-answer")["result"]["list"]
    assert [o["orderStatus"] for o in found] == ["Filled"]
    with pytest.raises(InvalidRequestError) as caught:
        market_buy(client, "lost-answer")
    assert caught.value.status_code == 110072


@pytest.mark.parametrize(
    ("fault", "ret_code", "ret_msg"),
    [
        ("accepted_server_timeout_probability", 10000, "Server Timeout"),
        ("accepted_server_error_probability", 10016, "Server error"),
    ],
)
def test_an_order_accepted_then_answered_with_a_server_error_is_recorded(
    exchange: str, fault: str, ret_code: int, ret_msg: str
) -> None:
    account = create_paper_account(exchange)
    HTTP_CLIENT.post(f"{exchange}/_paper/faults", json={"seed": 1, "order": {fault: 1.0}})
    client = session(exchange, account)
    # Only order create meets the fault: the account's other signed calls answer as usual.
    assert client.get_wallet_balance(accountType="UNIFIED")["retCode"] == 0
    with pytest.raises(InvalidRequestError) as answered:
        market_buy(client, "said-no")
    assert (answered.value.status_code, answered.value.message) == (ret_code, ret_msg)
    found = client.get_open_orders(category="linear", orderLinkId="said-no")["result"]["list"]
    assert [o["orderStatus"] for o in found] == ["Filled"]
    # Sent again with the same orderLinkId (the fault still on): a duplicate, nothing new recorded.
    with pytest.raises(InvalidRequestError) as again:
        market_buy(client, "said-no")
    assert again.value.status_code == 110072
    HTTP_CLIENT.post(f"{exchange}/_paper/faults", json={})
    closed = client.get_open_orders(category="linear", settleCoin="USDT", openOnly=1)["result"]["list"]
    assert [o["orderLinkId"] for o in closed] == ["said-no"]


# ---------------------------------------------------------------------------------------------- controls


def test_account_creation_hands_out_a_working_key_pair(exchange: str) -> None:
    account = asyncio.run(create_paper_account_async(exchange, "2500"))
    assert len(account.api_key) == 18
    assert len(account.api_secret) == 36
    assert account.api_secret not in repr(account)
    wallet = session(exchange, account).get_wallet_balance(accountType="UNIFIED")["result"]["list"][0]
    assert wallet["totalWalletBalance"] == "2500"


def test_the_controls_client_drives_the_exchange_over_http(exchange: str) -> None:
    with httpx.Client(timeout=5) as http:
        for paper in (PaperControls(exchange), PaperControls(exchange + "/", http=http)):
            before = paper.clock()
            assert before.time_ms == clock_ms(exchange)
            after = paper.advance(2)
            assert after.time_ms == before.time_ms + 2 * FIVE_MINUTES_MS == clock_ms(exchange)
            account = paper.create_account("1234")
            wallet = session(exchange, account).get_wallet_balance(accountType="UNIFIED")["result"]["list"][0]
            assert wallet["totalWalletBalance"] == "1234"
            assert paper.set_faults({"seed": 4, "order": {"http_5xx_probability": 1.0}})["seed"] == 4
            with pytest.raises(FailedRequestError):  # the 5xx the plan asked for
                session(exchange, account).get_wallet_balance(accountType="UNIFIED")
            paper.clear_faults()
            assert paper.faults()["order"]["http_5xx_probability"] == 0.0


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/_paper/accounts", {"balance": "-1"}),
        ("/_paper/clock/advance", {"candles": -1}),
        ("/_paper/clock/set", {"time_ms": 0}),
        ("/_paper/faults", {"market": {"timeout_probability": 2}}),
    ],
)
def test_controls_refuse_nonsense_with_422(exchange: str, path: str, body: dict[str, Any]) -> None:
    response = HTTP_CLIENT.post(f"{exchange}{path}", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
