"""signals-api ``candles``: a symbol's recent candles for the chart, from the deployment's exchange.

The session's functions server reads market data from the test paper exchange, which replays the
bundled candles; the answer must be exactly what that exchange's public klines say, oldest first.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import httpx

from lib.core.timeframes import nominal_interval_ms

URL = "/functions/v1/signals-api"


def exchange_klines(
    paper_exchange_url: str, symbol: str, interval: str, limit: int, **extra: int
) -> list[list[str]]:
    params = {"category": "linear", "symbol": symbol, "interval": interval, "limit": limit, **extra}
    body = httpx.get(f"{paper_exchange_url}/v5/market/kline", params=params, timeout=10).json()
    assert body["retCode"] == 0, body
    rows: list[list[str]] = body["result"]["list"]
    return rows


async def test_candles_are_the_exchanges_klines_oldest_first(
    http: httpx.AsyncClient, paper_exchange_url: str
) -> None:
    response = await http.post(
        URL, json={"action": "candles", "symbol": "BTCUSDT", "timeframe": "5", "limit": 60}
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["symbol"], body["timeframe"], body["environment"]) == ("BTCUSDT", "5", "paper")
    candles = body["candles"]
    assert len(candles) == 60
    times = [c["t"] for c in candles]
    assert all(b - a == nominal_interval_ms("5") for a, b in itertools.pairwise(times))
    newest_first = exchange_klines(paper_exchange_url, "BTCUSDT", "5", 60, end=times[-1])
    assert [[str(c["t"]), c["o"], c["h"], c["l"], c["c"], c["v"]] for c in reversed(candles)] == [
        [row[0], *map(float, row[1:6])] for row in newest_first
    ]


async def test_candles_end_at_the_time_asked_for(http: httpx.AsyncClient, paper_exchange_url: str) -> None:
    latest = exchange_klines(paper_exchange_url, "ETHUSDT", "15", 40)
    end_ms = int(latest[20][0])

    response = await http.post(
        URL,
        json={
            "action": "candles",
            "symbol": "ETHUSDT",
            "timeframe": "15",
            "limit": 10,
            "end": datetime.fromtimestamp(end_ms / 1000, UTC).isoformat(),
        },
    )

    assert response.status_code == 200, response.text
    candles = response.json()["candles"]
    assert len(candles) == 10
    assert candles[-1]["t"] == end_ms


async def test_an_unlisted_symbol_is_a_404_with_suggestions_before_any_kline_request(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post(URL, json={"action": "candles", "symbol": "BTCUSDX", "timeframe": "5"})

    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert "BTCUSDT" in error["details"]["suggestions"]


async def test_bad_candle_requests_are_422_in_sentences(http: httpx.AsyncClient) -> None:
    cases = [
        ({"symbol": "BTCUSDT", "timeframe": "7"}, "timeframe"),
        ({"symbol": "btc<script>", "timeframe": "5"}, "symbol"),
        ({"symbol": "BTCUSDT", "timeframe": "5", "limit": 501}, "limit"),
        ({"symbol": "BTCUSDT", "timeframe": "5", "limit": 0}, "limit"),
        ({"symbol": "BTCUSDT", "timeframe": "5", "end": "2024-01-15T00:00:00"}, "end"),
        ({"timeframe": "5"}, "symbol"),
    ]
    for extra, field in cases:
        response = await http.post(URL, json={"action": "candles", **extra})
        assert response.status_code == 422, (extra, response.text)
        errors = response.json()["error"]["details"]["errors"]
        assert [e["field"] for e in errors] == [field], extra
        assert "<script>" not in response.text
