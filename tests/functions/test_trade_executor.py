"""aitradex1-trade-executor's ``execute_trade`` through HTTP: a user's manual market order (issue 9, item 13).

The user connects a paper account through ``trading-account`` and trades with the default preferences.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx

from lib.paper_exchange.server import create_paper_account
from lib.services.auth.users import LocalUser
from tests.functions.conftest import bearer

URL = "/functions/v1/aitradex1-trade-executor"


async def connected_user(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser], paper_url: str
) -> LocalUser:
    user = make_user()
    account = create_paper_account(paper_url, "5000")
    body = {
        "action": "connect",
        "environment": "paper",
        "api_key": account.api_key,
        "api_secret": account.api_secret,
    }
    response = await http.post("/functions/v1/trading-account", json=body, headers=bearer(user.token))
    assert response.status_code == 200, response.text
    return user


def trade(symbol: str) -> dict[str, Any]:
    return {
        "action": "execute_trade",
        "symbol": symbol,
        "side": "Buy",
        "amount_usd": "50",
        "client_order_id": uuid.uuid4().hex[:20],
    }


async def test_a_manual_market_order_is_placed_and_answers_its_outcome(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser], paper_exchange_url: str
) -> None:
    user = await connected_user(http, make_user, paper_exchange_url)

    response = await http.post(URL, json=trade("ETHUSDT"), headers=bearer(user.token))

    assert response.status_code == 200, response.text
    assert response.json()["outcome"] in ("placed", "filled")


async def test_an_unlisted_symbol_is_a_404_with_suggestions_like_symbol_validator_gives(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser], paper_exchange_url: str, anon_key: str
) -> None:
    user = await connected_user(http, make_user, paper_exchange_url)

    response = await http.post(URL, json=trade("ETHUSDC"), headers=bearer(user.token))
    validator = await http.post(
        "/functions/v1/symbol-validator",
        json={"action": "validate", "symbol": "ETHUSDC"},
        headers=bearer(anon_key),
    )

    assert response.status_code == 404, response.text
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert "ETHUSDT" in error["details"]["suggestions"]
    assert validator.status_code == 404, validator.text
    assert error["details"]["suggestions"] == validator.json()["error"]["details"]["suggestions"]
