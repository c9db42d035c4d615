"""The Bybit V5 market-data client against respx-mocked HTTP, with fake time (no real sleeps)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import httpx
import numpy as np
import pytest
import respx

from lib.core.candles import Candles
from lib.errors import (
    ConfigError,
    ExchangeError,
    ExchangeRejected,
    ExchangeUnavailable,
    InvalidRequest,
    IpBanned,
    RateLimited,
)
from lib.exchange.bybit import base_url_for
from lib.exchange.market import MarketDataClient, RetryPolicy
from lib.exchange.rate_limit import RateLimiter

BASE = "https://api.bybit.com"
WALL_START = 1_700_000_000.0


class FakeTime:
    """Monotonic and wall clocks that only move when someone sleeps."""

    def __init__(self) -> None:
        self.now = 500.0
        self.start = self.now
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def wall(self) -> float:
        return WALL_START + (self.now - self.start)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def ok(result: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json={"retCode": 0, "retMsg": "OK", "result": result, "time": 1})


def rejected(ret_code: int, ret_msg: str, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"retCode": ret_code, "retMsg": ret_msg, "result": {}, "time": 1}
    return httpx.Response(200, json=body, headers=headers)


def linear_instrument(symbol: str) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "contractType": "LinearPerpetual",
        "status": "Trading",
        "baseCoin": symbol.removesuffix("USDT"),
        "quoteCoin": "USDT",
        "settleCoin": "USDT",
        "leverageFilter": {"minLeverage": "1", "maxLeverage": "50.00", "leverageStep": "0.01"},
        "priceFilter": {"minPrice": "0.10", "maxPrice": "199999.80", "tickSize": "0.10"},
        "lotSizeFilter": {
            "maxOrderQty": "1190.000",
            "minOrderQty": "0.001",
            "qtyStep": "0.001",
            "maxMktOrderQty": "500.000",
            "minNotionalValue": "5",
        },
    }


def kline_row(start_ms: int, close: float) -> list[str]:
    return [str(start_ms), str(close - 1), str(close + 2), str(close - 3), str(close), "12.5", "1000.25"]


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def bybit() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
async def client(fake_time: FakeTime) -> AsyncIterator[MarketDataClient]:
    limiter = RateLimiter(0.5, clock=fake_time.clock, sleep=fake_time.sleep)
    async with httpx.AsyncClient() as http:
        yield MarketDataClient(
            http,
            BASE,
            limiter=limiter,
            sleep=fake_time.sleep,
            clock=fake_time.clock,
            wall_clock=fake_time.wall,
            rng=random.Random(7),
        )


# -- environments ----------------------------------------------------------------------------------


def test_each_bybit_environment_has_its_documented_base_url() -> None:
    assert base_url_for("mainnet") == "https://api.bybit.com"
    assert base_url_for("testnet") == "https://api-testnet.bybit.com"
    assert base_url_for("demo") == "https://api-demo.bybit.com"


def test_paper_needs_an_explicit_base_url() -> None:
    assert base_url_for("paper", paper_url="http://127.0.0.1:8765/") == "http://127.0.0.1:8765"
    with pytest.raises(ConfigError):
        base_url_for("paper")


def test_an_unknown_environment_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError):
        base_url_for("staging")


async def test_the_factory_opens_a_client_on_the_environments_url_and_closes_it() -> None:
    with respx.mock(base_url="https://api-testnet.bybit.com") as testnet:
        route = testnet.get("/v5/market/time").mock(
            return_value=ok({"timeSecond": "1700000000", "timeNano": "1700000000123456789"})
        )
        async with MarketDataClient.open("testnet", limiter=RateLimiter(None)) as opened:
            server_time = await opened.server_time()

    assert route.call_count == 1
    assert server_time.epoch_ms == 1_700_000_000_123


# -- endpoints -------------------------------------------------------------------------------------


async def test_server_time_is_read_in_milliseconds(client: MarketDataClient, bybit: respx.MockRouter) -> None:
    bybit.get("/v5/market/time").mock(
        return_value=ok({"timeSecond": "1688639403", "timeNano": "1688639403423213947"})
    )

    server_time = await client.server_time()

    assert server_time.epoch_ms == 1_688_639_403_423


async def test_instruments_follow_the_cursor_through_every_page(
    client: MarketDataClient, bybit: respx.MockRouter
) -> None:
    pages = {
        None: (["BTCUSDT", "ETHUSDT"], "page-2"),
        "page-2": (["SOLUSDT"], "page-3"),
        "page-3": (["XRPUSDT"], ""),
    }
    cursors_sent: list[str | None] = []

    def page(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params.get("cursor")
        cursors_sent.append(cursor)
        assert request.url.params["limit"] == "1000"
        symbols, next_cursor = pages[cursor]
        return ok(
            {
                "category": "linear",
                "list": [linear_instrument(s) for s in symbols],
                "nextPageCursor": next_cursor,
            }
        )

    bybit.get("/v5/market/instruments-info", params={"category": "linear"}).mock(side_effect=page)

    instruments = await client.instruments("linear")

    assert cursors_sent == [None, "page-2", "page-3"]
    assert [i.symbol for i in instruments] == ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]
    btc = instruments[0]
    assert btc.tick_size == Decimal("0.10")
    assert btc.qty_step == Decimal("0.001")
    assert btc.min_qty == Decimal("0.001")
    assert btc.max_qty == Decimal("1190.000")
    assert btc.min_notional == Decimal("5")
    assert (btc.base, btc.quote, btc.status, btc.is_trading) == ("BTC", "USDT", "Trading", True)


async def test_spot_instruments_are_not_paged_and_use_spot_filter_names(
    client: MarketDataClient, bybit: respx.MockRouter
) -> None:
    spot = {
        "symbol": "BTCUSDT",
        "baseCoin": "BTC",
        "quoteCoin": "USDT",
        "status": "Trading",
        "lotSizeFilter": {
            "basePrecision": "0.000001",
            "quotePrecision": "0.00000001",
            "minOrderQty": "0.000048",
            "maxOrderQty": "71.73956243",
            "minOrderAmt": "1",
            "maxOrderAmt": "2000000",
        },
        "priceFilter": {"tickSize": "0.01"},
    }
    route = bybit.get("/v5/market/instruments-info").mock(
        return_value=ok({"category": "spot", "list": [spot], "nextPageCursor": ""})
    )

    [btc] = await client.instruments("spot")

    sent = route.calls.last.request.url.params
    assert "limit" not in sent
    assert "cursor" not in sent
    assert btc.qty_step == Decimal("0.000001")
    assert btc.min_notional == Decimal("1")
    assert btc.tick_size == Decimal("0.01")


async def test_tickers_are_parsed_and_empty_fields_become_none(
    client: MarketDataClient, bybit: respx.MockRouter
) -> None:
    route = bybit.get("/v5/market/tickers").mock(
        return_value=ok(
            {
                "category": "linear",
                "list": [
                    {
                        "symbol": "BTCUSDT",
                        "lastPrice": "64000.5",
                        "bid1Price": "",
                        "ask1Price": "64001",
                        "turnover24h": "123456789.5",
                        "volume24h": "1929.1",
                        "fundingRate": "0.0001",
                        "nextFundingTime": "1700006400000",
                    }
                ],
            }
        )
    )

    [ticker] = await client.tickers("linear", symbol="BTCUSDT")

    assert route.calls.last.request.url.params["symbol"] == "BTCUSDT"
    assert ticker.last_price == 64000.5
    assert ticker.bid1_price is None
    assert ticker.ask1_price == 64001.0
    assert ticker.turnover_24h == 123456789.5
    assert ticker.funding_rate == 0.0001
    assert ticker.next_funding_time_ms == 1_700_006_400_000


async def test_klines_come_back_oldest_first_as_numpy_arrays(
    client: MarketDataClient, bybit: respx.MockRouter
) -> None:
    newest_first = [kline_row(1_700_000_600_000, 103.0), kline_row(1_700_000_300_000, 102.0)]
    newest_first.append(kline_row(1_700_000_000_000, 101.0))
    route = bybit.get("/v5/market/kline").mock(
        return_value=ok({"category": "linear", "symbol": "BTCUSDT", "list": newest_first})
    )

    klines = await client.klines(
        "linear", "BTCUSDT", "5", limit=3, start=1_700_000_000_000, end=1_700_000_600_000
    )

    sent = route.calls.last.request.url.params
    assert (sent["interval"], sent["limit"], sent["start"], sent["end"]) == (
        "5",
        "3",
        "1700000000000",
        "1700000600000",
    )
    assert klines.open_time_ms.tolist() == [1_700_000_000_000, 1_700_000_300_000, 1_700_000_600_000]
    assert klines.close.tolist() == [101.0, 102.0, 103.0]
    assert klines.high.tolist() == [103.0, 104.0, 105.0]
    assert klines.turnover.tolist() == [1000.25] * 3
    assert klines.open_time_ms.dtype == np.int64
    for column in (klines.open, klines.high, klines.low, klines.close, klines.volume, klines.turnover):
        assert column.dtype == np.float64
        assert column.flags["C_CONTIGUOUS"]
    assert len(klines) == 3
    # A Klines is the Candles the indicators and the panel read, with nothing to convert.
    assert isinstance(klines, Candles)


async def test_klines_with_an_empty_list_are_empty_arrays(
    client: MarketDataClient, bybit: respx.MockRouter
) -> None:
    bybit.get("/v5/market/kline").mock(
        return_value=ok({"category": "linear", "symbol": "NEWUSDT", "list": []})
    )

    klines = await client.klines("linear", "NEWUSDT", "60")

    assert len(klines) == 0
    assert klines.close.dtype == np.float64


async def test_a_kline_row_that_is_not_a_number_is_a_clear_error(
    client: MarketDataClient, bybit: respx.MockRouter
) -> None:
    bad = [[*kline_row(1_700_000_000_000, 101.0)[:4], "n/a", "1", "1"]]
    route = bybit.get("/v5/market/kline").mock(return_value=ok({"list": bad}))

    with pytest.raises(ExchangeError, match="not a number"):
        await client.klines("linear", "BTCUSDT", "5")

    assert route.call_count == 1  # a shape Bybit will send again is not retried


@pytest.mark.parametrize(
    ("category", "interval", "limit"),
    [
        ("linear", "2", 200),
        ("linear", "1h", 200),
        ("option", "5", 200),
        ("linear", "5", 0),
        ("linear", "5", 1001),
    ],
)
async def test_invalid_kline_arguments_are_refused_before_any_request(
    client: MarketDataClient, bybit: respx.MockRouter, category: str, interval: str, limit: int
) -> None:
    route = bybit.get("/v5/market/kline").mock(return_value=ok({"list": []}))

    with pytest.raises(InvalidRequest):
        await client.klines(category, "BTCUSDT", interval, limit=limit)

    assert route.call_count == 0


async def test_a_lowercase_symbol_is_refused_before_any_request(
    client: MarketDataClient, bybit: respx.MockRouter
) -> None:
    route = bybit.get("/v5/market/kline").mock(return_value=ok({"list": []}))

    with pytest.raises(InvalidRequest):
        await client.klines("linear", "btcusdt", "5")

    assert route.call_count == 0


# -- retries ---------------------------------------------------------------------------------------


async def test_a_timeout_is_retried_after_a_backoff(
    client: MarketDataClient, bybit: respx.MockRouter, fake_time: FakeTime
) -> None:
    route = bybit.get("/v5/market/time").mock(
        side_effect=[httpx.ReadTimeout("slow"), ok({"timeSecond": "1", "timeNano": "1000000000"})]
    )

    server_time = await client.server_time()

    assert server_time.epoch_ms == 1_000
    assert route.call_count == 2
    assert len(fake_time.sleeps) == 1
    assert 0.25 <= fake_time.sleeps[0] <= 0.5  # first backoff: base 0.5 s with jitter in [cap/2, cap]


async def test_a_connection_error_is_retried(
    client: MarketDataClient, bybit: respx.MockRouter, fake_time: FakeTime
) -> None:
    route = bybit.get("/v5/market/time").mock(
        side_effect=[httpx.ConnectError("refused"), ok({"timeSecond": "2", "timeNano": "2000000000"})]
    )

    assert (await client.server_time()).epoch_ms == 2_000
    assert route.call_count == 2


async def test_a_5xx_is_retried(
    client: MarketDataClient, bybit: respx.MockRouter, fake_time: FakeTime
) -> None:
    route = bybit.get("/v5/market/time").mock(
        side_effect=[
            httpx.Response(502, text="Bad Gateway"),
            ok({"timeSecond": "3", "timeNano": "3000000000"}),
        ]
    )

    assert (await client.server_time()).epoch_ms == 3_000
    assert route.call_count == 2
    assert len(fake_time.sleeps) == 1


async def test_a_bybit_server_error_ret_code_is_retried(
    client: MarketDataClient, bybit: respx.MockRouter
) -> None:
    route = bybit.get("/v5/market/time").mock(
        side_effect=[rejected(10016, "Server error."), ok({"timeSecond": "6", "timeNano": "6000000000"})]
    )

    assert (await client.server_time()).epoch_ms == 6_000
    assert route.call_count == 2


async def test_10006_waits_until_the_reset_timestamp_then_retries(
    client: MarketDataClient, bybit: respx.MockRouter, fake_time: FakeTime
) -> None:
    reset_ms = int((fake_time.wall() + 2.5) * 1000)
    sent_at: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent_at.append(fake_time.now)
        if len(sent_at) == 1:
            return rejected(
                10006, "Too many visits!", headers={"X-Bapi-Limit-Reset-Timestamp": str(reset_ms)}
            )
        return ok({"timeSecond": "4", "timeNano": "4000000000"})

    bybit.get("/v5/market/time").mock(side_effect=answer)

    assert (await client.server_time()).epoch_ms == 4_000
    assert len(sent_at) == 2
    assert sent_at[1] - sent_at[0] == pytest.approx(2.5, abs=0.01)
    assert client.limiter.pause_remaining() == 0.0


async def test_http_429_is_retried_as_a_rate_limit(
    client: MarketDataClient, bybit: respx.MockRouter, fake_time: FakeTime
) -> None:
    route = bybit.get("/v5/market/time").mock(
        side_effect=[httpx.Response(429), ok({"timeSecond": "5", "timeNano": "5000000000"})]
    )

    assert (await client.server_time()).epoch_ms == 5_000
    assert route.call_count == 2


async def test_persistent_5xx_exhausts_the_retries_with_growing_backoff(
    client: MarketDataClient, bybit: respx.MockRouter, fake_time: FakeTime
) -> None:
    route = bybit.get("/v5/market/time").mock(return_value=httpx.Response(503))

    with pytest.raises(ExchangeUnavailable) as raised:
        await client.server_time()

    assert route.call_count == RetryPolicy().max_attempts == 4
    assert raised.value.details["attempts"] == 4
    assert raised.value.details["http_status"] == 503
    caps = [0.5, 1.0, 2.0]
    assert len(fake_time.sleeps) == 3
    for slept, cap in zip(fake_time.sleeps, caps, strict=True):
        assert cap / 2 <= slept <= cap


async def test_persistent_10006_exhausts_the_retries_as_rate_limited(
    client: MarketDataClient, bybit: respx.MockRouter
) -> None:
    route = bybit.get("/v5/market/time").mock(return_value=rejected(10006, "Too many visits!"))

    with pytest.raises(RateLimited) as raised:
        await client.server_time()

    assert route.call_count == 4
    assert raised.value.ret_code == 10006


async def test_a_403_raises_ip_banned_without_retrying_and_stops_later_requests(
    client: MarketDataClient, bybit: respx.MockRouter, fake_time: FakeTime
) -> None:
    route = bybit.get("/v5/market/time").mock(return_value=httpx.Response(403, text="access too frequent"))

    with pytest.raises(IpBanned):
        await client.server_time()
    with pytest.raises(IpBanned, match="paused"):
        await client.server_time()

    assert route.call_count == 1  # the second call never left the process
    assert fake_time.sleeps == []
    assert client.limiter.pause_remaining() == pytest.approx(600.0)


async def test_a_business_ret_code_raises_exchange_rejected_with_the_code(
    client: MarketDataClient, bybit: respx.MockRouter
) -> None:
    route = bybit.get("/v5/market/kline").mock(return_value=rejected(10001, "params error: symbol invalid"))

    with pytest.raises(ExchangeRejected) as raised:
        await client.klines("linear", "NOPEUSDT", "5")

    assert route.call_count == 1
    assert raised.value.ret_code == 10001
    assert raised.value.ret_msg == "params error: symbol invalid"
    assert raised.value.to_dict()["error"]["details"]["ret_code"] == 10001


async def test_an_http_404_is_rejected_without_retrying(
    client: MarketDataClient, bybit: respx.MockRouter
) -> None:
    route = bybit.get("/v5/market/time").mock(return_value=httpx.Response(404, text="Not Found"))

    with pytest.raises(ExchangeRejected):
        await client.server_time()

    assert route.call_count == 1


async def test_a_body_that_is_not_json_is_retried_then_reported_as_unavailable(
    client: MarketDataClient, bybit: respx.MockRouter
) -> None:
    route = bybit.get("/v5/market/time").mock(
        return_value=httpx.Response(200, text="<html>gateway</html>", headers={"content-type": "text/html"})
    )

    with pytest.raises(ExchangeUnavailable, match="not JSON"):
        await client.server_time()

    assert route.call_count == 4


async def test_a_successful_answer_without_a_list_is_a_clear_error(
    client: MarketDataClient, bybit: respx.MockRouter
) -> None:
    route = bybit.get("/v5/market/tickers").mock(return_value=ok({"category": "linear"}))

    with pytest.raises(ExchangeError, match="no list"):
        await client.tickers("linear")

    assert route.call_count == 1


# -- many symbols ----------------------------------------------------------------------------------


async def test_klines_many_reports_a_failing_symbol_and_returns_the_others(
    client: MarketDataClient, bybit: respx.MockRouter
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        symbol = request.url.params["symbol"]
        if symbol == "ETHUSDT":
            return rejected(10001, "symbol invalid")
        return ok({"symbol": symbol, "list": [kline_row(1_700_000_000_000, 10.0)]})

    bybit.get("/v5/market/kline").mock(side_effect=answer)

    batch = await client.klines_many("linear", ["BTCUSDT", "ETHUSDT", "SOLUSDT"], "15")

    assert list(batch.klines) == ["BTCUSDT", "SOLUSDT"]
    assert batch.klines["SOLUSDT"].symbol == "SOLUSDT"
    assert batch.klines["SOLUSDT"].close.tolist() == [10.0]
    assert list(batch.errors) == ["ETHUSDT"]
    error = batch.errors["ETHUSDT"]
    assert isinstance(error, ExchangeRejected)
    assert error.ret_code == 10001


async def test_klines_many_reports_each_symbol_as_its_answer_arrives(
    client: MarketDataClient, bybit: respx.MockRouter
) -> None:
    heard: list[tuple[str, bool]] = []
    answered: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        symbol = request.url.params["symbol"]
        # Each answer finds every earlier symbol already reported: progress is live, not at the end.
        assert [s for s, _ in heard] == answered
        answered.append(symbol)
        if symbol == "ETHUSDT":
            return rejected(10001, "symbol invalid")
        return ok({"symbol": symbol, "list": [kline_row(1_700_000_000_000, 10.0)]})

    bybit.get("/v5/market/kline").mock(side_effect=answer)

    await client.klines_many(
        "linear",
        ["BTCUSDT", "ETHUSDT", "SOLUSDT"],
        "15",
        concurrency=1,
        on_result=lambda s, ok: heard.append((s, ok)),
    )

    assert heard == [("BTCUSDT", True), ("ETHUSDT", False), ("SOLUSDT", True)]


async def test_klines_many_keeps_to_its_concurrency_bound(
    client: MarketDataClient, bybit: respx.MockRouter
) -> None:
    in_flight = 0
    most_in_flight = 0

    async def answer(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most_in_flight
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        in_flight -= 1
        return ok({"list": [kline_row(1_700_000_000_000, 1.0)]})

    route = bybit.get("/v5/market/kline").mock(side_effect=answer)
    symbols = [f"COIN{n}USDT" for n in range(6)]

    batch = await client.klines_many("linear", symbols, "5", concurrency=2)

    assert route.call_count == 6
    assert list(batch.klines) == symbols
    assert most_in_flight == 2


async def test_klines_many_refuses_a_bad_interval_before_any_request(
    client: MarketDataClient, bybit: respx.MockRouter
) -> None:
    route = bybit.get("/v5/market/kline").mock(return_value=ok({"list": []}))

    with pytest.raises(InvalidRequest):
        await client.klines_many("linear", ["BTCUSDT", "ETHUSDT"], "7")

    assert route.call_count == 0
