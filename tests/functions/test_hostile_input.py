"""Issue 9, items 1-5 and 9: whatever a caller sends, the answer is a 4xx in the envelope, never a 5xx.

Each test names the item it shows. They go over real HTTP to the session's functions server.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from lib.config import Settings
from lib.services.auth import tokens
from lib.services.auth.users import LocalUser
from tests.functions.conftest import bearer
from tests.functions.test_adapter import adapter_log

PREFS = "/functions/v1/trading-preferences"
SIGNALS = "/functions/v1/signals-api"
JSON = {"content-type": "application/json"}
# Far more than any error message needs: a response that echoes a 200 KB value cannot fit.
MAX_ERROR_BYTES = 8 * 1024


def assert_envelope(response: httpx.Response, status: int | tuple[int, ...], code: str | None = None) -> None:
    """A JSON ``{"error": {"code", "message", "details"}}`` answer with one of ``status``."""
    expected = (status,) if isinstance(status, int) else status
    assert response.status_code in expected, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json"), response.headers
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["message"], str)
    assert error["message"]
    if code is not None:
        assert error["code"] == code, error
    assert len(response.content) < MAX_ERROR_BYTES
    assert response.headers.get("x-request-id")


# Item 1: deep nesting.


@pytest.mark.parametrize(
    "body",
    [
        '{"a":' * 5000,
        "[" * 100_000 + "]" * 100_000,
        '{"action": "update", "symbol_allowlist": ' + "[" * 65 + "]" * 65 + "}",
        '{"action": "update", "x": ' + '{"a": ' * 70 + "1" + "}" * 70 + "}",
    ],
    ids=["open-objects", "arrays-200k", "arrays-65", "objects-70"],
)
async def test_deeply_nested_json_is_a_400_in_the_envelope(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser], body: str
) -> None:
    user = make_user()
    response = await http.post(PREFS, content=body, headers={**bearer(user.token), **JSON})
    assert_envelope(response, 400, "malformed_json")
    assert "nest" in response.json()["error"]["message"]


async def test_brackets_inside_strings_are_not_nesting(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser]
) -> None:
    user = make_user()
    body = json.dumps({"action": "update", "symbol_allowlist": ["[" * 5000 + "{" * 5000]})
    response = await http.post(PREFS, content=body, headers={**bearer(user.token), **JSON})
    # The body parses (the brackets are text); the symbol is refused by its schema.
    assert_envelope(response, 422, "invalid_request")


async def test_nesting_up_to_the_limit_still_parses(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser]
) -> None:
    user = make_user()
    body = '{"action": "update", "symbol_allowlist": ' + "[" * 40 + "]" * 40 + "}"
    response = await http.post(PREFS, content=body, headers={**bearer(user.token), **JSON})
    assert_envelope(response, 422, "invalid_request")


# Item 2: huge integers.


@pytest.mark.parametrize(
    "number", ["9" * 5000, "-" + "9" * 5000, "1" * 5000 + ".5", "1e999999", "-1E+999999"]
)
@pytest.mark.parametrize("url", [PREFS, SIGNALS])
async def test_a_huge_number_literal_is_a_4xx_not_a_500(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser], number: str, url: str
) -> None:
    user = make_user()
    field = "leverage" if url == PREFS else "limit"
    action = "update" if url == PREFS else "list"
    body = f'{{"action": "{action}", "{field}": {number}}}'
    response = await http.post(url, content=body, headers={**bearer(user.token), **JSON})
    assert_envelope(response, (400, 422))
    assert "99999" not in response.text
    assert "11111" not in response.text


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
async def test_nan_and_infinity_are_not_json(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser], constant: str
) -> None:
    user = make_user()
    body = f'{{"action": "update", "min_score": {constant}}}'
    response = await http.post(PREFS, content=body, headers={**bearer(user.token), **JSON})
    assert_envelope(response, (400, 422))


@pytest.mark.parametrize(
    "text",
    ["BTC\\u0000USDT", "\\ud800", "\\udfffBTC", "BTC\\ud83d"],
    ids=["nul", "lone-high", "lone-low", "trailing-high"],
)
async def test_nul_characters_and_lone_surrogates_are_refused(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser], text: str
) -> None:
    user = make_user()
    for body in (
        f'{{"action": "list", "symbol": "{text}"}}',
        f'{{"action": "{text}"}}',
        f'{{"action": "list", "{text}": 1}}',
    ):
        response = await http.post(SIGNALS, content=body, headers={**bearer(user.token), **JSON})
        assert_envelope(response, (400, 422))


async def test_a_paired_surrogate_is_a_normal_character(http: httpx.AsyncClient) -> None:
    # An emoji written as an escaped pair is valid JSON: refused by the symbol's schema, not by the parser.
    response = await http.post(
        SIGNALS, content='{"action": "list", "symbol": "\\ud83d\\ude00"}', headers=JSON
    )
    assert_envelope(response, 422, "invalid_request")


async def test_invalid_utf8_is_a_400(http: httpx.AsyncClient) -> None:
    response = await http.post(SIGNALS, content=b'{"action": "\xff\xfe"}', headers=JSON)
    assert_envelope(response, 400, "malformed_json")


# Item 3: submitted values are never echoed, and log lines stay small.

BIG_ACTION = "Q" * 200_000


@pytest.mark.parametrize(
    ("url", "headers"),
    [(SIGNALS, {}), ("/functions/v1/symbol-validator", {}), ("/functions/v1/trading-account", None)],
    ids=["no-token-422", "no-token-validator", "anon-403"],
)
async def test_a_huge_action_is_not_echoed_nor_logged(
    http: httpx.AsyncClient, anon_key: str, url: str, headers: dict[str, str] | None
) -> None:
    with adapter_log() as log:
        response = await http.post(
            url, json={"action": BIG_ACTION}, headers=headers if headers is not None else bearer(anon_key)
        )
    assert_envelope(response, (403, 422))
    assert "QQQQ" not in response.text
    lines = log.of_request(response.headers["x-request-id"])
    (call,) = [line for line in lines if line["event"] == "function_call"]
    assert call["action"] == "unknown"
    assert all(len(raw) < 4096 for raw in log.lines)


async def test_an_unknown_short_action_is_not_echoed_either(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser], anon_key: str
) -> None:
    user = make_user()
    with adapter_log() as log:
        refused = await http.post(PREFS, json={"action": "zzsecretzz"}, headers=bearer(user.token))
        forbidden = await http.post(
            "/functions/v1/aitradex1-trade-executor", json={"action": "zzsecretzz"}, headers=bearer(anon_key)
        )
    assert_envelope(refused, 422, "invalid_request")
    assert_envelope(forbidden, 403, "forbidden")
    for response in (refused, forbidden):
        assert "zzsecretzz" not in response.text
        (call,) = [
            line
            for line in log.of_request(response.headers["x-request-id"])
            if line["event"] == "function_call"
        ]
        assert call["action"] == "unknown"


async def test_a_known_action_is_logged_by_name(http: httpx.AsyncClient) -> None:
    with adapter_log() as log:
        response = await http.post(SIGNALS, json={"action": "status"})
    assert response.status_code == 200
    (call,) = [
        line for line in log.of_request(response.headers["x-request-id"]) if line["event"] == "function_call"
    ]
    assert call["action"] == "status"


async def test_a_huge_unknown_function_name_is_not_echoed_nor_logged(http: httpx.AsyncClient) -> None:
    name = "f" * 20_000
    with adapter_log() as log:
        response = await http.post(f"/functions/v1/{name}", json={"action": "status"})
    assert_envelope(response, 404, "not_found")
    assert "ffff" not in response.text
    assert all(len(raw) < 4096 and "ffff" not in raw for raw in log.lines)


async def test_many_unknown_fields_give_a_bounded_answer(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser]
) -> None:
    user = make_user()
    body = {"action": "update", **{f"field_{i}": i for i in range(5000)}}
    response = await http.post(PREFS, json=body, headers=bearer(user.token))
    assert_envelope(response, 422, "invalid_request")
    assert "field_4999" not in response.text


# Item 4: odd claims, signed with the right secret.


def _signed(settings: Settings, **claims: Any) -> str:
    base: dict[str, Any] = {"exp": int(time.time()) + 600}
    return tokens.mint({**base, **claims}, settings.jwt_secret.reveal())


@pytest.mark.parametrize(
    "claims",
    [
        {"role": ["service_role"]},
        {"role": {"name": "service_role"}},
        {"role": 1},
        {"role": "authenticated", "sub": "not-a-uuid"},
        {"role": "authenticated", "sub": ["x"]},
        {"role": "authenticated", "sub": 5},
        {"role": "service_role", "exp": str(int(time.time()) + 600)},
        {"role": "anon", "exp": "soon"},
        {"role": "anon", "exp": 10**400},
        {"role": "anon", "iat": "now"},
        {"role": "superuser"},
        {"role": "Q" * 5000},
        {"role": "anon\u0000"},
    ],
    ids=[
        "role-list",
        "role-object",
        "role-number",
        "sub-not-uuid",
        "sub-list",
        "sub-number",
        "exp-numeric-string",
        "exp-string",
        "exp-huge",
        "iat-string",
        "role-unknown",
        "role-huge",
        "role-nul",
    ],
)
@pytest.mark.parametrize("url", [PREFS, SIGNALS, "/functions/v1/diagnostics"])
async def test_odd_claims_with_the_right_secret_are_refused_without_a_500(
    http: httpx.AsyncClient, settings: Settings, claims: dict[str, Any], url: str
) -> None:
    token = _signed(settings, **claims)
    response = await http.post(url, json={"action": "status"}, headers=bearer(token))
    assert response.status_code in (401, 403), response.text[:300]
    if response.status_code == 401:
        assert response.json() == {"msg": "Invalid JWT"}
    else:
        assert_envelope(response, 403, "forbidden")
    assert "QQQQ" not in response.text


async def test_a_user_token_whose_sub_is_a_uuid_still_works(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser]
) -> None:
    user = make_user()
    assert uuid.UUID(user.id)
    response = await http.post(PREFS, json={"action": "get"}, headers=bearer(user.token))
    assert response.status_code == 200


async def test_a_huge_token_is_a_401(http: httpx.AsyncClient) -> None:
    response = await http.post(PREFS, json={"action": "get"}, headers=bearer("eyJ" + "A" * 60_000))
    assert (response.status_code, response.json()) == (401, {"msg": "Invalid JWT"})


# Item 5: every error answers the envelope, whatever the method or path.


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "TRACE"])
@pytest.mark.parametrize("path", [SIGNALS, "/functions/v1/openapi.json", "/health"])
async def test_other_methods_answer_405_in_the_envelope(
    http: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await http.request(method, path)
    assert_envelope(response, 405, "method_not_allowed")
    assert "POST" in response.headers.get("allow", "") or path != SIGNALS


@pytest.mark.parametrize(
    "path",
    [
        SIGNALS + "/",
        SIGNALS + "/extra",
        "/functions/v1/",
        "/functions/v1",
        "/nothing/here",
        "/functions/v1/signals-api//x",
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_unknown_paths_answer_404_in_the_envelope_without_redirects(
    http: httpx.AsyncClient, path: str, method: str
) -> None:
    response = await http.request(method, path, json={"action": "status"} if method == "POST" else None)
    assert_envelope(response, 404, "not_found")


async def test_a_method_the_server_does_not_know_still_gets_json(http: httpx.AsyncClient) -> None:
    response = await http.request("PROPFIND", SIGNALS)
    assert response.status_code in (400, 405)
    assert response.headers["content-type"].startswith("application/json")


async def test_a_valid_incoming_request_id_is_echoed_on_error_paths_too(http: httpx.AsyncClient) -> None:
    for response in (
        await http.put(SIGNALS, headers={"x-request-id": "trace-1234abcd"}),
        await http.get(SIGNALS + "/extra", headers={"x-request-id": "trace-1234abcd"}),
    ):
        assert response.headers["x-request-id"] == "trace-1234abcd"


# Item 9: errors a person understands.


@pytest.mark.parametrize(
    "body",
    [{}, {"action": "explode"}, {"action": 5}, {"action": None}, {"action": ["get"]}, {"leverage": 3}],
)
async def test_a_missing_or_unknown_action_is_explained_in_one_sentence(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser], body: dict[str, Any]
) -> None:
    user = make_user()
    response = await http.post(PREFS, json=body, headers=bearer(user.token))
    assert_envelope(response, 422, "invalid_request")
    error = response.json()["error"]
    assert error["message"] == (
        "body must be a JSON object with an 'action' field, one of: get, update, status"
    )
    assert "discriminator" not in response.text
    assert "tag" not in response.text


@pytest.mark.parametrize("body", [b"[1, 2]", b'"get"', b"3", b"null"])
async def test_a_body_that_is_not_an_object_is_explained(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser], body: bytes
) -> None:
    user = make_user()
    response = await http.post(PREFS, content=body, headers={**bearer(user.token), **JSON})
    assert_envelope(response, 400, "malformed_json")
    assert response.json()["error"]["message"] == (
        "body must be a JSON object with an 'action' field, one of: get, update, status"
    )


@pytest.mark.parametrize(
    ("body", "field", "says", "value"),
    [
        ({"action": "update", "leverage": 101}, "leverage", "at most 100", "101"),
        ({"action": "update", "leverage": 0}, "leverage", "at least 1", None),
        ({"action": "update", "leverage": "five"}, "leverage", "integer", "five"),
        ({"action": "update", "leverage": 2.5}, "leverage", "whole number", "2.5"),
        ({"action": "update", "risk_per_trade_pct": 0}, "risk_per_trade_pct", "greater than 0", None),
        ({"action": "update", "algorithms": ["moon_ai"]}, "algorithms", "one of", "moon_ai"),
        ({"action": "update", "algorithms": []}, "algorithms", "at least 1 item", None),
        ({"action": "update", "symbol_allowlist": "BTCUSDT"}, "symbol_allowlist", "list", "BTCUSDT"),
        ({"action": "update", "auto_trade_enabled": "maybe"}, "auto_trade_enabled", "true or false", "maybe"),
    ],
)
async def test_a_field_error_names_the_field_and_what_is_allowed_without_the_value(
    http: httpx.AsyncClient,
    make_user: Callable[[], LocalUser],
    body: dict[str, Any],
    field: str,
    says: str,
    value: str | None,
) -> None:
    user = make_user()
    response = await http.post(PREFS, json=body, headers=bearer(user.token))
    assert_envelope(response, 422, "invalid_request")
    error = response.json()["error"]
    assert field in error["message"], error
    assert says in error["message"], error
    (detail,) = error["details"]["errors"]
    assert detail["field"] == field
    assert field in detail["loc"]
    assert says in detail["msg"]
    if value is not None:
        assert value not in response.text


async def test_an_unknown_field_is_named_if_plain_and_answered_with_the_fields_that_exist(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser]
) -> None:
    user = make_user()
    typo = await http.post(PREFS, json={"action": "update", "levrage": 5}, headers=bearer(user.token))
    assert_envelope(typo, 422, "invalid_request")
    error = typo.json()["error"]
    assert error["message"].startswith(
        "'levrage' is not a field: 'update' takes only action, auto_trade_enabled, algorithms,"
    )
    assert "leverage" in error["message"]
    assert error["details"]["errors"] == [
        {"field": "levrage", "loc": ["levrage"], "msg": error["message"], "type": "extra_forbidden"}
    ]
    # A key that is not a plain name (long, or odd characters) is not repeated.
    for key in ("x" * 65, "sk-live-SECRET", "a b", "caf\u00e9"):
        odd = await http.post(PREFS, json={"action": "update", key: 5}, headers=bearer(user.token))
        assert_envelope(odd, 422, "invalid_request")
        assert key not in odd.text
        assert odd.json()["error"]["message"].startswith("unknown field: 'update' takes only action,")
        assert odd.json()["error"]["details"]["errors"][0]["loc"] == ["?"]


async def test_pydantic_jargon_never_reaches_a_caller(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser]
) -> None:
    user = make_user()
    for url, body in [
        (PREFS, {"action": "nope"}),
        (SIGNALS, {"action": "list", "since": "yesterday"}),
        ("/functions/v1/unireli-core-scanner", {"action": "scan"}),
        ("/functions/v1/aitradex1-trade-executor", {"action": "execute_trade"}),
    ]:
        response = await http.post(url, json=body, headers=bearer(user.token))
        assert response.status_code in (403, 422), (url, response.text)
        for jargon in ("discriminator", "Input should", "Unable to extract", "pydantic", "Field required"):
            assert jargon not in response.text, (url, response.text)
