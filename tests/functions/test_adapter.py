"""The HTTP adapter's conventions, checked over real HTTP."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from lib.app.context import Context, Services
from lib.app.wiring import close_services, open_services
from lib.config import Settings
from lib.errors import Conflict
from lib.http.app import MAX_BODY_BYTES, FunctionsApp
from lib.http.server import serve_in_thread
from lib.http.spec import FunctionSpec, Request, Response
from lib.log import JsonFormatter
from lib.services.auth import tokens
from lib.services.auth.users import LocalUser
from tests.functions.conftest import bearer

PREFS = "/functions/v1/trading-preferences"


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer not.a.jwt",
    ],
)
async def test_a_missing_or_malformed_token_gets_supabases_401(
    http: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await http.post(PREFS, json={"action": "get"}, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"msg": "Invalid JWT"}


async def test_an_expired_token_gets_401(
    http: httpx.AsyncClient, settings: Settings, make_user: Callable[[], LocalUser]
) -> None:
    user = make_user()
    expired = tokens.mint_user_token(
        user.id, user.email, settings.jwt_secret.reveal(), now=time.time() - 7200, ttl_s=60
    )
    response = await http.post(PREFS, json={"action": "get"}, headers=bearer(expired))
    assert (response.status_code, response.json()) == (401, {"msg": "Invalid JWT"})


async def test_a_token_signed_with_another_secret_gets_401(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser]
) -> None:
    user = make_user()
    forged = tokens.mint_user_token(user.id, user.email, "another-secret-" * 4)
    response = await http.post(PREFS, json={"action": "get"}, headers=bearer(forged))
    assert response.status_code == 401


async def test_an_alg_none_token_gets_401(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser]
) -> None:
    user = make_user()
    claims = {"role": "authenticated", "sub": user.id, "exp": 4102444800}
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    response = await http.post(PREFS, json={"action": "get"}, headers=bearer(unsigned))
    assert response.status_code == 401


async def test_an_unknown_function_gets_404_listing_the_real_ones(
    http: httpx.AsyncClient, anon_key: str
) -> None:
    response = await http.post("/functions/v1/no-such-function", json={}, headers=bearer(anon_key))
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert "trading-preferences" in error["details"]["functions"]


async def test_an_oversized_body_gets_413(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser]
) -> None:
    user = make_user()
    big = json.dumps({"action": "update", "symbol_allowlist": ["A" * 20] * (MAX_BODY_BYTES // 20)})
    response = await http.post(
        PREFS, content=big, headers={**bearer(user.token), "content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize(("body", "code"), [(b"{not json", "malformed_json"), (b"[1, 2]", "malformed_json")])
async def test_malformed_json_gets_400(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser], body: bytes, code: str
) -> None:
    user = make_user()
    response = await http.post(
        PREFS, content=body, headers={**bearer(user.token), "content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


@pytest.mark.parametrize(
    "body", [{}, {"action": "explode"}, {"action": "update", "leverage": "x"}, {"action": 5}]
)
async def test_missing_fields_unknown_actions_and_wrong_types_get_422(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser], body: dict[str, object]
) -> None:
    user = make_user()
    response = await http.post(PREFS, json=body, headers=bearer(user.token))
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


async def test_validation_errors_never_echo_the_submitted_value(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser]
) -> None:
    user = make_user()
    response = await http.post(
        PREFS, json={"action": "update", "leverage": "sk-live-SECRETVALUE"}, headers=bearer(user.token)
    )
    assert response.status_code == 422
    assert "SECRETVALUE" not in response.text


async def test_preflight_is_answered_without_auth_and_every_answer_allows_cors(
    http: httpx.AsyncClient,
) -> None:
    preflight = await http.options(
        PREFS, headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    )
    denied = await http.post(PREFS, json={})
    for response in (preflight, denied):
        assert response.headers["access-control-allow-origin"] == "*"
        assert "authorization" in response.headers["access-control-allow-headers"]
    assert preflight.status_code == 204


async def test_every_response_carries_a_request_id_and_echoes_a_valid_incoming_one(
    http: httpx.AsyncClient,
) -> None:
    generated = await http.post(PREFS, json={})
    echoed = await http.post(PREFS, json={}, headers={"x-request-id": "trace-1234abcd"})
    assert len(generated.headers["x-request-id"]) == 32
    assert echoed.headers["x-request-id"] == "trace-1234abcd"


async def test_openapi_documents_every_function_from_its_models(http: httpx.AsyncClient) -> None:
    response = await http.get("/functions/v1/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    operation = doc["paths"]["/functions/v1/trading-preferences"]["post"]
    schema = json.dumps(operation["requestBody"]["content"]["application/json"]["schema"])
    assert "discriminator" in schema or "oneOf" in schema
    assert "UpdatePreferences" in doc["components"]["schemas"]
    assert (
        doc["components"]["schemas"]["UpdatePreferences"]["properties"]["leverage"]["anyOf"][0]["maximum"]
        == 100
    )


class _Boom(Request):
    action: str = "boom"


class _Never(Response):
    ok: bool


async def _explode(_request: _Boom, _ctx: Context) -> _Never:
    raise RuntimeError("secret=hunter2 at /internal/path")


async def _refuse(_request: _Boom, _ctx: Context) -> _Never:
    raise Conflict("that would break a rule", details={"api_secret": "hunter3"})


class LogLines(logging.Handler):
    """Every record of the adapter's logger, as the JSON line the process would write."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def of_request(self, request_id: str) -> list[dict[str, Any]]:
        parsed = [json.loads(line) for line in self.lines]
        return [line for line in parsed if line.get("request_id") == request_id]


@contextmanager
def adapter_log() -> Iterator[LogLines]:
    lines = LogLines()
    adapter = logging.getLogger("aitradex.http")
    level = adapter.level
    adapter.setLevel(logging.INFO)  # as configure_logging sets it for a server
    adapter.addHandler(lines)
    try:
        yield lines
    finally:
        adapter.removeHandler(lines)
        adapter.setLevel(level)


async def test_a_bug_answers_500_with_the_request_id_and_nothing_else(settings: Settings) -> None:
    spec = FunctionSpec(
        name="boom", summary="raises", request_type=_Boom, response_type=_Never, handler=_explode
    )

    async def services() -> Services:
        return await open_services(settings)

    app = FunctionsApp(
        {"boom": spec},
        services,
        close_services,
        jwt_secret=settings.jwt_secret.reveal(),
        verify_jwt={"boom": False},
    )
    with adapter_log() as log, serve_in_thread(app.build()) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            response = await client.post("/functions/v1/boom", json={})
    assert response.status_code == 500
    request_id = response.headers["x-request-id"]
    assert response.json() == {
        "error": {
            "code": "internal_error",
            "message": "internal error",
            "details": {"request_id": request_id},
        }
    }
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text

    # The log keeps what the caller does not see: the traceback, once, at ERROR, on the request's line.
    lines = log.of_request(request_id)
    (error,) = [line for line in lines if line["level"] == "error"]
    assert (error["event"], error["function"], error["error_type"]) == (
        "unhandled_error",
        "boom",
        "RuntimeError",
    )
    assert error["traceback"].startswith("Traceback (most recent call last):")
    assert "in _explode" in error["traceback"]
    assert error["traceback"].rstrip().endswith("RuntimeError: secret=[redacted] at /internal/path")
    assert [line for line in lines if "traceback" in line] == [error]
    assert {line["event"] for line in lines} == {"unhandled_error", "function_call"}
    assert all("\n" not in raw for raw in log.lines)
    assert not any("hunter2" in raw for raw in log.lines)


async def test_a_deliberate_error_is_an_answer_not_an_error_log_with_a_traceback(settings: Settings) -> None:
    spec = FunctionSpec(
        name="refuse", summary="refuses", request_type=_Boom, response_type=_Never, handler=_refuse
    )

    async def services() -> Services:
        return await open_services(settings)

    app = FunctionsApp(
        {"refuse": spec},
        services,
        close_services,
        jwt_secret=settings.jwt_secret.reveal(),
        verify_jwt={"refuse": False},
    )
    with adapter_log() as log, serve_in_thread(app.build()) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            refused = await client.post("/functions/v1/refuse", json={})
            unknown = await client.post("/functions/v1/no-such-function", json={})
            malformed = await client.post("/functions/v1/refuse", content=b"{nope")
    assert [r.status_code for r in (refused, unknown, malformed)] == [409, 404, 400]
    for response in (refused, unknown, malformed):
        lines = log.of_request(response.headers["x-request-id"])
        assert [line["event"] for line in lines] == ["function_call"]
        assert all(line["level"] == "info" and "traceback" not in line for line in lines)


class _Whoami(Request):
    pass


class _Role(Response):
    role: str


async def _whoami(_request: _Whoami, ctx: Context) -> _Role:
    return _Role(role=ctx.caller.role)


async def test_where_jwt_is_optional_no_token_means_anon_and_a_bad_token_is_still_refused(
    settings: Settings, service_key: str
) -> None:
    spec = FunctionSpec(
        name="whoami", summary="role", request_type=_Whoami, response_type=_Role, handler=_whoami
    )

    async def services() -> Services:
        return await open_services(settings)

    app = FunctionsApp(
        {"whoami": spec},
        services,
        close_services,
        jwt_secret=settings.jwt_secret.reveal(),
        verify_jwt={"whoami": False},
    )
    with serve_in_thread(app.build()) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            anonymous = await client.post("/functions/v1/whoami", json={})
            service = await client.post("/functions/v1/whoami", json={}, headers=bearer(service_key))
            forged = await client.post("/functions/v1/whoami", json={}, headers=bearer("x.y.z"))
    assert anonymous.json() == {"role": "anon"}
    assert service.json() == {"role": "service_role"}
    assert (forged.status_code, forged.json()) == (401, {"msg": "Invalid JWT"})


async def test_get_is_refused_where_a_body_could_carry_secrets_and_served_where_read_only(
    http: httpx.AsyncClient, anon_key: str
) -> None:
    refused = await http.get(
        "/functions/v1/trading-account",
        params={"action": "connect", "api_key": "K" * 20},
        headers=bearer(anon_key),
    )
    served = await http.get("/functions/v1/diagnostics")
    assert refused.status_code == 405
    assert refused.json()["error"]["code"] == "method_not_allowed"
    assert "K" * 20 not in refused.text
    assert served.status_code == 200
