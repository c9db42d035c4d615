"""trading-preferences through HTTP: a user reads and changes only their own preferences."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from lib.services.auth.users import LocalUser
from tests.functions.conftest import bearer

URL = "/functions/v1/trading-preferences"


async def test_a_new_user_reads_the_safe_defaults_without_anything_being_saved(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser]
) -> None:
    user = make_user()
    response = await http.post(URL, json={"action": "get"}, headers=bearer(user.token))

    assert response.status_code == 200
    body = response.json()
    assert body["user_id"] == user.id
    assert body["saved"] is False
    assert body["auto_trade_enabled"] is False
    assert body["min_score"] == 80


async def test_an_update_changes_only_the_fields_sent_and_is_read_back(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser]
) -> None:
    user = make_user()
    update = {"action": "update", "leverage": 5, "timeframes": ["5", "60"], "symbol_blocklist": ["XRPUSDT"]}

    response = await http.post(URL, json=update, headers=bearer(user.token))
    again = await http.post(URL, json={"action": "get"}, headers=bearer(user.token))

    assert response.status_code == 200
    assert again.json() == response.json()
    body = again.json()
    assert (body["saved"], body["leverage"], body["timeframes"]) == (True, 5, ["5", "60"])
    assert body["symbol_blocklist"] == ["XRPUSDT"]
    assert body["risk_per_trade_pct"] == 1  # untouched default


async def test_users_never_see_or_change_each_others_preferences(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser]
) -> None:
    a, b = make_user(), make_user()
    await http.post(URL, json={"action": "update", "leverage": 7}, headers=bearer(a.token))

    b_view = await http.post(URL, json={"action": "get"}, headers=bearer(b.token))
    b_tries = await http.post(
        URL, json={"action": "update", "user_id": a.id, "leverage": 1}, headers=bearer(b.token)
    )
    a_view = await http.post(URL, json={"action": "get"}, headers=bearer(a.token))

    assert b_view.json()["user_id"] == b.id
    assert b_view.json()["leverage"] == 1
    assert b_tries.status_code == 422  # there is no way to name another user
    assert a_view.json()["leverage"] == 7


async def test_out_of_range_values_are_refused_with_the_field_named(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser]
) -> None:
    user = make_user()
    for field, value in [
        ("leverage", 101),
        ("leverage", 0),
        ("risk_per_trade_pct", 0),
        ("risk_per_trade_pct", 10.5),
        ("min_score", 101),
        ("algorithms", ["moon_ai"]),
        ("timeframes", ["7"]),
        ("leverage", "five"),
    ]:
        response = await http.post(URL, json={"action": "update", field: value}, headers=bearer(user.token))
        assert response.status_code == 422, (field, value)
        error = response.json()["error"]
        assert error["code"] == "invalid_request"
        assert any(field in e["loc"] for e in error["details"]["errors"]), error


async def test_a_symbol_both_allowed_and_blocked_is_refused(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser]
) -> None:
    user = make_user()
    response = await http.post(
        URL,
        json={"action": "update", "symbol_allowlist": ["ETHUSDT"], "symbol_blocklist": ["ETHUSDT"]},
        headers=bearer(user.token),
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"] == {"symbols": ["ETHUSDT"]}


async def test_anon_and_service_keys_get_403_because_preferences_belong_to_a_user(
    http: httpx.AsyncClient, anon_key: str, service_key: str
) -> None:
    for key in (anon_key, service_key):
        response = await http.post(URL, json={"action": "get"}, headers=bearer(key))
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"
