"""symbol-validator through HTTP: anyone checks a symbol, normalizes an order, and gets suggestions.

The server is wired to the test paper exchange, whose filters are derived from the bundled candles
(ETHUSDT: tick 0.01, step 0.01, min qty 0.01, min notional 5 USDT). Expected filters are read from that
exchange itself, so these tests check the function against the source, not against copied numbers.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from lib.core.instruments import fmt
from lib.exchange.access import MarketAccess
from lib.exchange.models import Instrument
from tests.functions.conftest import bearer

URL = "/functions/v1/symbol-validator"


@pytest.fixture(scope="module")
async def listed(paper_exchange_url: str) -> dict[tuple[str, str], Instrument]:
    """What the paper exchange lists, by (category, symbol)."""
    async with MarketAccess(paper_url=paper_exchange_url).client("paper") as market:
        return {
            (category, i.symbol): i
            for category in ("linear", "spot")
            for i in await market.instruments(category)
        }


async def validate(http: httpx.AsyncClient, token: str | None = None, **body: Any) -> httpx.Response:
    headers = bearer(token) if token else {}
    return await http.post(URL, json={"action": "validate", **body}, headers=headers)


async def test_a_known_symbol_answers_its_status_and_the_exchanges_filters(
    http: httpx.AsyncClient, listed: dict[tuple[str, str], Instrument]
) -> None:
    response = await validate(http, symbol="ETHUSDT")

    assert response.status_code == 200, response.text
    body = response.json()
    eth = listed[("linear", "ETHUSDT")]
    assert body["symbol"] == "ETHUSDT"
    assert body["category"] == "linear"
    assert body["environment"] == "paper"
    assert body["status"] == "Trading"
    assert body["trading"] is True
    assert body["filters"] == {
        "tick_size": fmt(eth.tick_size),
        "qty_step": fmt(eth.qty_step),
        "min_qty": fmt(eth.min_qty),
        "max_qty": fmt(eth.max_qty),
        "min_notional": fmt(eth.min_notional),
    }
    assert body["normalized_qty"] is None
    assert body["violations"] == []
    assert body["ok"] is True


async def test_qty_rounds_down_to_the_step_and_price_to_the_nearest_tick(http: httpx.AsyncClient) -> None:
    response = await validate(http, symbol="ETHUSDT", qty="2.009", price="2345.6751")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["normalized_qty"] == "2.00"
    assert body["normalized_price"] == "2345.68"
    assert body["notional"] == "4691.3600"
    assert body["violations"] == []
    assert body["ok"] is True


@pytest.mark.parametrize(("rounding", "expected"), [("down", "2345.67"), ("up", "2345.68")])
async def test_a_stop_price_rounds_in_the_direction_asked(
    http: httpx.AsyncClient, rounding: str, expected: str
) -> None:
    response = await validate(http, symbol="ETHUSDT", qty="3", price="2345.6712", price_rounding=rounding)

    assert response.status_code == 200, response.text
    assert response.json()["normalized_price"] == expected


async def test_an_order_too_small_for_the_filters_lists_each_violation_and_is_not_ok(
    http: httpx.AsyncClient,
) -> None:
    # A spot pair: its quantity precision (0.01) is finer than its minimum (one contract step, 10).
    response = await validate(http, symbol="DOGEUSDT", category="spot", qty="5.555", price="0.09")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["normalized_qty"] == "5.55"
    assert [(v["code"], v["limit"], v["actual"]) for v in body["violations"]] == [
        ("below_min_qty", "10", "5.55"),
        ("below_min_notional", "5", "0.4995000"),  # 5.55 x 0.09000 (the price on its tick)
    ]
    assert body["ok"] is False


async def test_a_quantity_above_the_maximum_is_a_violation(
    http: httpx.AsyncClient, listed: dict[tuple[str, str], Instrument]
) -> None:
    too_many = listed[("linear", "ETHUSDT")].max_qty + 1

    response = await validate(http, symbol="ETHUSDT", qty=str(too_many))

    assert response.status_code == 200, response.text
    assert [v["code"] for v in response.json()["violations"]] == ["above_max_qty"]


async def test_spot_symbols_are_validated_against_the_spot_listing(
    http: httpx.AsyncClient, listed: dict[tuple[str, str], Instrument]
) -> None:
    response = await validate(http, symbol="ARBUSDT", category="spot", qty="1234.5678")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["category"] == "spot"
    assert body["filters"]["qty_step"] == fmt(listed[("spot", "ARBUSDT")].qty_step)
    assert body["filters"]["qty_step"] == "0.001"  # spot trades in finer units than the contract (1)
    assert body["normalized_qty"] == "1234.567"


async def test_an_unknown_symbol_is_not_found_with_the_closest_symbols_suggested(
    http: httpx.AsyncClient,
) -> None:
    response = await validate(http, symbol="ETHBTX")

    assert response.status_code == 404, response.text
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert error["details"]["suggestions"][0] == "ETHUSDT"
    assert error["details"]["category"] == "linear"


async def test_a_symbol_like_nothing_listed_gets_no_suggestions(http: httpx.AsyncClient) -> None:
    response = await validate(http, symbol="QQQQQQQQ")

    assert response.status_code == 404, response.text
    assert response.json()["error"]["details"]["suggestions"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"symbol": "ETHUSDT", "qty": "-1"},
        {"symbol": "ETHUSDT", "qty": "0"},
        {"symbol": "ETHUSDT", "qty": "NaN"},
        {"symbol": "ETHUSDT", "price": "Infinity"},
        {"symbol": "ETHUSDT", "qty": "1e400"},
        {"symbol": "ETHUSDT", "qty": "0.0000000000000000001"},
        {"symbol": "ethbtc"},
        {"symbol": "ETHUSDT", "category": "inverse"},
        {"symbol": "ETHUSDT", "price_rounding": "sideways"},
        {"symbol": "ETHUSDT", "side": "Buy"},
        {},
    ],
    ids=[
        "negative-qty",
        "zero-qty",
        "nan-qty",
        "infinite-price",
        "huge-qty",
        "too-precise-qty",
        "lowercase-symbol",
        "untraded-category",
        "unknown-rounding",
        "unknown-field",
        "no-symbol",
    ],
)
async def test_bad_input_is_refused_with_422(http: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await validate(http, **body)

    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_request"


async def test_another_environment_than_the_deployments_is_refused_and_names_the_served_one(
    http: httpx.AsyncClient,
) -> None:
    response = await validate(http, symbol="ETHUSDT", environment="mainnet")

    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"] == {"environment": "mainnet", "served": "paper"}


async def test_naming_the_deployments_environment_explicitly_is_accepted(http: httpx.AsyncClient) -> None:
    response = await validate(http, symbol="ETHUSDT", environment="paper")

    assert response.status_code == 200, response.text
    assert response.json()["environment"] == "paper"


async def test_anonymous_callers_with_or_without_the_anon_key_are_served(
    http: httpx.AsyncClient, anon_key: str
) -> None:
    without_token = await validate(http, symbol="ETHUSDT")
    with_anon_key = await validate(http, anon_key, symbol="ETHUSDT")

    assert without_token.status_code == 200, without_token.text
    assert with_anon_key.status_code == 200, with_anon_key.text
    assert with_anon_key.json()["filters"] == without_token.json()["filters"]


async def test_get_with_query_parameters_validates_like_post(http: httpx.AsyncClient) -> None:
    response = await http.get(
        URL, params={"action": "validate", "symbol": "ETHUSDT", "qty": "2.009", "price": "2345.6751"}
    )

    assert response.status_code == 200, response.text
    assert (response.json()["normalized_qty"], response.json()["normalized_price"]) == ("2.00", "2345.68")


async def test_status_answers_ok_for_anyone(http: httpx.AsyncClient) -> None:
    response = await http.post(URL, json={"action": "status"})

    assert response.status_code == 200, response.text
    assert response.json() == {"function": "symbol-validator", "status": "ok", "version": "1"}
