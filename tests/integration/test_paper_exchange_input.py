"""Hostile input to the paper exchange, over real HTTP: every refusal is Bybit's envelope, never a 500.

Bybit answers a bad parameter with HTTP 200 and retCode 10001 in its envelope; the paper exchange must
do the same for numbers out of any sane range, numbers Bybit would not parse (``"4_00"``, ``" 400 "``),
an ``orderLinkId`` with a trailing newline, and bodies nested deeper than any real request.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from lib.exchange.signing import signed_headers
from lib.paper_exchange import PaperAccount, PaperControls, PaperExchangeConfig, running_paper_exchange

SYMBOL = "XRPUSDT"  # qty step 10, about 0.63 USDT at the replay start
MARKET_BUY = {"category": "linear", "symbol": SYMBOL, "side": "Buy", "orderType": "Market"}


@pytest.fixture(scope="module")
def paper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    config = PaperExchangeConfig(state_path=tmp_path_factory.mktemp("paper") / "state.json", port=0)
    with running_paper_exchange(config) as url:
        yield url


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def _account(url: str) -> PaperAccount:
    # A fresh account per request keeps each case far below the per-account rate limit.
    return PaperControls(url).create_account("10000")


def _post(http: httpx.Client, url: str, path: str, raw: str, account: PaperAccount) -> httpx.Response:
    headers = signed_headers(
        api_key=account.api_key,
        api_secret=account.api_secret,
        timestamp_ms=int(time.time() * 1000),
        payload=raw,
    )
    return http.post(f"{url}{path}", content=raw, headers={**headers, "Content-Type": "application/json"})


def _get(http: httpx.Client, url: str, path: str, query: str, account: PaperAccount) -> httpx.Response:
    headers = signed_headers(
        api_key=account.api_key,
        api_secret=account.api_secret,
        timestamp_ms=int(time.time() * 1000),
        payload=query,
    )
    return http.get(f"{url}{path}?{query}", headers=headers)


def _envelope(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text[:300]
    body: dict[str, Any] = response.json()
    assert set(body) == {"retCode", "retMsg", "result", "retExtInfo", "time"}
    return body


def _orders_of(http: httpx.Client, url: str, account: PaperAccount) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = []
    for open_only in ("0", "1"):
        query = f"category=linear&symbol={SYMBOL}&openOnly={open_only}"
        listed += _envelope(_get(http, url, "/v5/order/realtime", query, account))["result"]["list"]
    return listed


@pytest.mark.parametrize(
    "fields",
    [
        {"qty": "1e28"},
        {"qty": "1e100"},
        {"qty": "1E+999999"},
        {"qty": "1e308"},
        {"qty": 1e308},
        {"qty": "4_00"},
        {"qty": " 400 "},
        {"qty": "400\n"},
        {"qty": "NaN"},
        {"qty": "Infinity"},
        {"qty": "\uff14\uff10\uff10"},  # fullwidth digits: int() and Decimal() take them, Bybit does not
        {"qty": "9" * 5000},
        {"orderType": "Limit", "qty": "1000", "price": "1e30"},
        {"qty": "1000", "takeProfit": "1e30"},
    ],
    ids=lambda fields: json.dumps(fields)[:40],
)
def test_a_number_bybit_would_refuse_is_10001_in_the_envelope_and_places_nothing(
    paper: str, http: httpx.Client, fields: dict[str, Any]
) -> None:
    account = _account(paper)

    body = _envelope(_post(http, paper, "/v5/order/create", json.dumps({**MARKET_BUY, **fields}), account))

    assert body["retCode"] == 10001, body
    assert body["result"] == {}
    assert len(body["retMsg"]) < 200  # the submitted value is not echoed back
    assert _orders_of(http, paper, account) == []


def test_a_plain_decimal_quantity_is_still_accepted(paper: str, http: httpx.Client) -> None:
    account = _account(paper)
    raw = json.dumps({**MARKET_BUY, "qty": "400"})
    body = _envelope(_post(http, paper, "/v5/order/create", raw, account))
    assert body["retCode"] == 0, body
    assert [order["qty"] for order in _orders_of(http, paper, account)] == ["400"]


@pytest.mark.parametrize("leverage", ["1e100", "1E+999999", "2_5", " 5"])
def test_a_leverage_bybit_would_refuse_is_10001(paper: str, http: httpx.Client, leverage: str) -> None:
    raw = json.dumps({"category": "linear", "symbol": SYMBOL, "buyLeverage": leverage, "sellLeverage": "5"})
    body = _envelope(_post(http, paper, "/v5/position/set-leverage", raw, _account(paper)))
    assert body["retCode"] == 10001, body


@pytest.mark.parametrize("limit", ["5_0", " 50", "\uff15"])
def test_an_integer_query_parameter_must_be_plain_digits(paper: str, http: httpx.Client, limit: str) -> None:
    response = http.get(f"{paper}/v5/market/instruments-info", params={"category": "linear", "limit": limit})
    assert _envelope(response)["retCode"] == 10001


@pytest.mark.parametrize("link_id", ["abc\n", "abc\r\n", "\nabc", "a" * 37, "abc def"])
def test_an_order_link_id_must_match_whole(paper: str, http: httpx.Client, link_id: str) -> None:
    account = _account(paper)
    raw = json.dumps({**MARKET_BUY, "qty": "400", "orderLinkId": link_id})

    body = _envelope(_post(http, paper, "/v5/order/create", raw, account))

    assert body["retCode"] == 10001, body
    assert _orders_of(http, paper, account) == []


@pytest.mark.parametrize(
    "raw",
    ['{"a":' * 5000 + "1" + "}" * 5000, "[" * 100_000 + "]" * 100_000, '{"qty":' + "[" * 50 + "]" * 50 + "}"],
    ids=["deep-objects", "deep-arrays", "51-levels"],
)
def test_a_deeply_nested_body_is_10001_in_the_envelope(paper: str, http: httpx.Client, raw: str) -> None:
    body = _envelope(_post(http, paper, "/v5/order/create", raw, _account(paper)))
    assert body["retCode"] == 10001
    assert "nested" in body["retMsg"]


def test_brackets_inside_strings_do_not_count_as_nesting(paper: str, http: httpx.Client) -> None:
    raw = json.dumps({**MARKET_BUY, "qty": "400", "note": "[" * 1000})
    assert _envelope(_post(http, paper, "/v5/order/create", raw, _account(paper)))["retCode"] == 0


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ('{"balance":' * 5000 + "1" + "}" * 5000, 400),
        ('{"balance": ' + "9" * 5000 + "}", 400),
        ('{"balance": "1e999999"}', 422),
        ('{"balance": 1e999999}', 422),
        ('{"balance": "1000000000000.5"}', 422),
        ('{"balance": "NaN"}', 422),
        ('{"balance": "0"}', 422),
    ],
    ids=["deep", "huge-integer", "huge-exponent", "json-infinity", "above-the-cap", "nan", "zero"],
)
def test_the_account_control_refuses_hostile_balances_with_its_error_envelope(
    paper: str, http: httpx.Client, raw: str, status: int
) -> None:
    headers = {"Content-Type": "application/json"}
    response = http.post(f"{paper}/_paper/accounts", content=raw, headers=headers)
    assert response.status_code == status, response.text[:300]
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert len(response.content) < 1000


def test_the_largest_balance_allowed_still_trades(paper: str, http: httpx.Client) -> None:
    account = PaperControls(paper).create_account("1000000000000")
    raw = json.dumps({**MARKET_BUY, "qty": "1000000"})
    assert _envelope(_post(http, paper, "/v5/order/create", raw, account))["retCode"] == 0
    query = "accountType=UNIFIED&coin=USDT"
    wallet = _envelope(_get(http, paper, "/v5/account/wallet-balance", query, account))
    assert wallet["retCode"] == 0
