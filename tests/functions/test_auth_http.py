"""/auth/v1 over plain HTTP: GoTrue's bodies, the apikey gate, CORS, and the sign-in that tells nobody
whether an email exists (same answer, same time)."""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from lib.config import Settings
from lib.http.server import create_functions_app, serve_in_thread
from tests.functions.auth_helpers import auth_settings

PASSWORD = "correct horse 1"


@pytest.fixture(scope="module")
def settings_for_second_worker(settings: Settings) -> Iterator[str]:
    """A second server with the limited one's limits, on the same database."""
    limits = {"rate_limit_ip": 5, "rate_limit_email": 3, "rate_window_s": 86_400}
    with serve_in_thread(create_functions_app(auth_settings(settings, **limits))) as url:
        yield url


@pytest.fixture
def auth(auth_url: str, anon_key: str, client_ip: str) -> httpx.Client:
    headers = {"apikey": anon_key, "X-Forwarded-For": client_ip}
    return httpx.Client(base_url=auth_url + "/auth/v1", headers=headers, timeout=30)


def _email() -> str:
    return f"http-{uuid.uuid4().hex[:12]}@test.local"


def test_a_wrong_email_and_a_wrong_password_answer_alike_in_the_same_time(auth: httpx.Client) -> None:
    email = _email()
    assert auth.post("/signup", json={"email": email, "password": PASSWORD}).status_code == 200

    def attempt(who: str) -> tuple[float, int, bytes]:
        started = time.perf_counter()
        response = auth.post("/token?grant_type=password", json={"email": who, "password": "wrong horse 1"})
        return time.perf_counter() - started, response.status_code, response.content

    attempt(email)  # warm the connection and the code paths
    wrong_password, wrong_email = [], []
    for _ in range(7):  # interleaved, so a busy moment on the machine hits both alike
        wrong_password.append(attempt(email))
        wrong_email.append(attempt(_email()))

    bodies = {(status, body) for _, status, body in wrong_password + wrong_email}
    expected = b'{"code":400,"error_code":"invalid_credentials","msg":"Invalid login credentials"}'
    assert bodies == {(400, expected)}
    slow = statistics.median(t for t, _, _ in wrong_password)
    fast = statistics.median(t for t, _, _ in wrong_email)
    # Without the dummy bcrypt check a missing email answers in a few ms against bcrypt's ~50+ ms.
    assert abs(slow - fast) < 0.5 * max(slow, fast), (slow, fast)


def test_every_route_but_health_and_jwks_needs_the_apikey(auth_url: str) -> None:
    bare = httpx.Client(base_url=auth_url + "/auth/v1", timeout=30)

    missing = bare.post("/token?grant_type=password", json={"email": _email(), "password": PASSWORD})
    wrong = bare.get("/settings", headers={"apikey": "not-a-key"})

    assert (missing.status_code, missing.json()["error_code"]) == (401, "no_api_key")
    assert (wrong.status_code, wrong.json()["error_code"]) == (401, "bad_api_key")
    assert bare.get("/health").json()["name"] == "GoTrue"
    assert bare.get("/.well-known/jwks.json").json()["keys"][0]["alg"] == "ES256"


def test_settings_say_email_sign_up_is_auto_confirmed(auth: httpx.Client) -> None:
    settings = auth.get("/settings").json()

    assert settings["mailer_autoconfirm"] is True
    assert settings["disable_signup"] is False
    assert settings["external"]["email"] is True


def test_a_cors_preflight_is_answered_with_put_allowed(auth_url: str) -> None:
    response = httpx.options(
        auth_url + "/auth/v1/user",
        headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "PUT"},
    )

    assert response.status_code == 204
    assert "PUT" in response.headers["access-control-allow-methods"]
    assert "apikey" in response.headers["access-control-allow-headers"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error_code"),
    [
        ("POST", "/token?grant_type=magic", {}, 400, "validation_failed"),
        ("POST", "/token?grant_type=refresh_token", {}, 400, "validation_failed"),
        ("POST", "/token?grant_type=refresh_token", {"refresh_token": "no"}, 400, "refresh_token_not_found"),
        ("POST", "/signup", {"email": "not-an-email", "password": PASSWORD}, 400, "email_address_invalid"),
        ("POST", "/signup", {"email": "x@test.local"}, 400, "validation_failed"),
        ("POST", "/signup", {"email": "x@test.local", "password": "p" * 80}, 400, "validation_failed"),
        ("GET", "/user", None, 401, "no_authorization"),
        ("GET", "/user", "bearer:not.a.jwt", 403, "bad_jwt"),
        ("POST", "/logout?scope=everyone", "bearer:not.a.jwt", 400, "validation_failed"),
    ],
)
def test_refusals_have_gotrues_body(
    auth: httpx.Client, method: str, path: str, body: object, status: int, error_code: str
) -> None:
    headers = {}
    if isinstance(body, str) and body.startswith("bearer:"):
        headers["Authorization"] = "Bearer " + body.removeprefix("bearer:")
        body = None
    response = auth.request(method, path, json=body, headers=headers)

    assert response.status_code == status
    answer = response.json()
    assert answer["code"] == status
    assert answer["error_code"] == error_code
    assert isinstance(answer["msg"], str)
    assert answer["msg"]


def test_a_body_that_is_not_json_is_refused_in_gotrues_shape(auth: httpx.Client) -> None:
    response = auth.post("/signup", content=b"{nope", headers={"content-type": "application/json"})

    assert response.status_code == 400
    assert set(response.json()) == {"code", "error_code", "msg"}
    assert response.json()["error_code"] == "bad_json"


def _fresh_subnet() -> str:
    """A /24 in 10.0.0.0/8 (as ``10.a.b``) that no other test, nor an earlier run inside the limit's
    window, used: the per-address counters live in the shared database, so a reused address would
    start the test half spent."""
    a, b = uuid.uuid4().bytes[:2]
    return f"10.{a}.{b}"


def test_a_sign_in_is_counted_under_the_peer_not_an_untrusted_forwarded_for(
    auth_limited_url: str, anon_key: str
) -> None:
    # The limited server trusts 127.0.0.1 as a proxy; a caller can still not spread over addresses
    # beyond what the proxy says: its own X-Forwarded-For entry is the one counted (the last hop's).
    client = httpx.Client(base_url=auth_limited_url + "/auth/v1", headers={"apikey": anon_key}, timeout=30)
    address = f"{_fresh_subnet()}.1"
    statuses = [
        client.post(
            "/token?grant_type=password",
            json={"email": _email(), "password": PASSWORD},
            headers={"X-Forwarded-For": f"10.{n}.0.1, {address}"},
        ).status_code
        for n in range(6)
    ]

    assert statuses == [400] * 5 + [429]


def test_two_workers_share_the_limits_through_postgres(
    auth_limited_url: str, settings_for_second_worker: str, anon_key: str
) -> None:
    # Two servers (as two workers would be), 12 attempts at once for one email: the per-email limit is 3,
    # and only the database's one-statement upsert can keep the count exact across both.
    email = _email()
    base = _fresh_subnet()

    def attempt(n: int) -> int:
        url = (auth_limited_url, settings_for_second_worker)[n % 2]
        response = httpx.post(
            url + "/auth/v1/token?grant_type=password",
            json={"email": email, "password": "wrong horse 1"},
            headers={"apikey": anon_key, "X-Forwarded-For": f"{base}.{n + 1}"},
            timeout=30,
        )
        return response.status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = sorted(pool.map(attempt, range(12)))

    assert statuses == [400] * 3 + [429] * 9
