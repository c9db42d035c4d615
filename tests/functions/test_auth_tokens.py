"""User tokens at the functions: ES256 from the local auth server through its JWKS, legacy HS256, and
RS256 through a hosted project's JWKS (a tiny JWKS server on 127.0.0.1 standing in for Supabase)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from lib.config import Settings
from lib.http.server import create_functions_app, serve_in_thread
from lib.services.auth.signing import SigningKey
from lib.services.auth.users import LocalUser
from supabase import ClientOptions, create_client

PREFERENCES = "/functions/v1/trading-preferences"
PASSWORD = "correct horse 1"


def _b64(value: int, size: int) -> str:
    return base64.urlsafe_b64encode(value.to_bytes(size, "big")).rstrip(b"=").decode()


def _claims(user_id: str, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "sub": user_id,
        "role": "authenticated",
        "aud": "authenticated",
        "iat": now,
        "exp": now + 600,
        **extra,
    }


def _sign_in(auth_url: str, anon_key: str, ip: str) -> tuple[str, str]:
    """A new user's (id, access token) from the local auth server, through supabase-py."""
    options = ClientOptions(headers={"X-Forwarded-For": ip}, auto_refresh_token=False, persist_session=False)
    client = create_client(auth_url, anon_key, options)
    session = client.auth.sign_up({"email": f"tok-{uuid.uuid4().hex[:12]}@test.local", "password": PASSWORD})
    assert session.session is not None
    assert session.user is not None
    return session.user.id, session.session.access_token


def _preferences(url: str, token: str) -> httpx.Response:
    return httpx.post(url + PREFERENCES, json={"action": "get"}, headers={"Authorization": f"Bearer {token}"})


def test_an_es256_token_from_sign_in_verifies_through_the_jwks_at_a_function(
    auth_url: str, anon_key: str, client_ip: str
) -> None:
    user_id, token = _sign_in(auth_url, anon_key, client_ip)
    header = jwt.get_unverified_header(token)
    published = httpx.get(auth_url + "/auth/v1/.well-known/jwks.json").json()
    assert header["alg"] == "ES256"
    assert header["kid"] in [key["kid"] for key in published["keys"]]
    assert all("d" not in key for key in published["keys"])  # public halves only

    response = _preferences(auth_url, token)

    assert response.status_code == 200
    assert response.json()["user_id"] == user_id


def test_the_access_token_carries_supabases_claims(auth_url: str, anon_key: str, client_ip: str) -> None:
    user_id, token = _sign_in(auth_url, anon_key, client_ip)
    published = httpx.get(auth_url + "/auth/v1/.well-known/jwks.json").json()["keys"][0]

    claims = jwt.decode(
        token, jwt.PyJWK(published, algorithm="ES256"), algorithms=["ES256"], audience="authenticated"
    )

    assert claims["sub"] == user_id
    assert claims["role"] == "authenticated"
    assert claims["iss"] == auth_url + "/auth/v1"
    assert claims["aal"] == "aal1"
    assert claims["amr"][0]["method"] == "password"
    assert claims["is_anonymous"] is False
    assert claims["exp"] - claims["iat"] == 3600
    assert str(uuid.UUID(claims["session_id"])) == claims["session_id"]
    assert claims["email"].endswith("@test.local")
    assert {"phone", "app_metadata", "user_metadata"} <= claims.keys()
    assert claims["app_metadata"]["provider"] == "email"


def test_a_token_signed_by_an_unknown_kid_is_refused(
    auth_url: str, make_user: Callable[[], LocalUser]
) -> None:
    user = make_user()
    stranger = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(_claims(user.id), stranger, algorithm="ES256", headers={"kid": "not-a-kid-of-ours"})

    response = _preferences(auth_url, token)

    assert (response.status_code, response.json()) == (401, {"msg": "Invalid JWT"})


def test_a_token_signed_by_another_key_under_our_kid_is_refused(
    auth_url: str, settings: Settings, make_user: Callable[[], LocalUser]
) -> None:
    assert settings.auth.signing_key is not None
    ours = SigningKey.from_pem(settings.auth.signing_key.reveal())
    user = make_user()
    forged = jwt.encode(
        _claims(user.id),
        ec.generate_private_key(ec.SECP256R1()),
        algorithm="ES256",
        headers={"kid": ours.kid},
    )

    assert _preferences(auth_url, forged).status_code == 401
    assert _preferences(auth_url, ours.sign(_claims(user.id))).status_code == 200  # the real key passes


def test_legacy_hs256_user_tokens_are_still_accepted(
    auth_url: str, make_user: Callable[[], LocalUser]
) -> None:
    user = make_user()
    assert jwt.get_unverified_header(user.token)["alg"] == "HS256"

    response = _preferences(auth_url, user.token)

    assert response.status_code == 200
    assert response.json()["user_id"] == user.id


def test_algorithm_confusion_is_refused(
    auth_url: str, settings: Settings, make_user: Callable[[], LocalUser]
) -> None:
    assert settings.auth.signing_key is not None
    ours = SigningKey.from_pem(settings.auth.signing_key.reveal())
    user = make_user()
    public_pem = ours.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # HS256 "signed" with the published public key as the HMAC secret, naming our kid.
    body = json.dumps(_claims(user.id)).encode()
    header = {"alg": "HS256", "typ": "JWT", "kid": ours.kid}

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(body)}"
    confused = (
        signing_input + "." + b64(hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest())
    )
    unsigned = f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{b64(body)}."
    # ES256 named, but with the RS256 of a key that is not in the set, under our kid.
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    swapped = jwt.encode(_claims(user.id), rsa_key, algorithm="RS256", headers={"kid": ours.kid})

    for token in (confused, unsigned, swapped):
        response = _preferences(auth_url, token)
        assert (response.status_code, response.json()) == (401, {"msg": "Invalid JWT"})


# --- hosted mode: SUPABASE_URL names a project whose JWKS a tiny local server publishes ---------------


@dataclasses.dataclass
class FakeProject:
    url: str
    kid: str
    key: rsa.RSAPrivateKey
    hits: list[str]


@pytest.fixture(scope="module")
def hosted_project() -> Iterator[FakeProject]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = key.public_key().public_numbers()
    kid = "hosted-" + uuid.uuid4().hex[:8]
    document = json.dumps(
        {
            "keys": [
                {
                    "kty": "RSA",
                    "kid": kid,
                    "alg": "RS256",
                    "use": "sig",
                    "n": _b64(numbers.n, 256),
                    "e": _b64(numbers.e, 3),
                },
                # A symmetric key in the set must never be used (no HMAC secret comes from a JWKS).
                {"kty": "oct", "kid": "hmac", "k": base64.urlsafe_b64encode(b"x" * 32).decode()},
            ]
        }
    ).encode()
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            if self.path != "/auth/v1/.well-known/jwks.json":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield FakeProject(f"http://127.0.0.1:{server.server_address[1]}", kid, key, hits)
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def hosted_url(settings: Settings, hosted_project: FakeProject) -> Iterator[str]:
    """A functions server in hosted mode: SUPABASE_URL set, an unknown kid refetches at most hourly."""
    auth = dataclasses.replace(
        settings.auth, supabase_url=hosted_project.url, signing_key=None, jwks_min_refresh_s=3600
    )
    with serve_in_thread(create_functions_app(dataclasses.replace(settings, auth=auth))) as url:
        yield url


def test_hosted_an_rs256_token_verifies_through_the_projects_jwks(
    hosted_url: str, hosted_project: FakeProject, make_user: Callable[[], LocalUser]
) -> None:
    user = make_user()
    token = jwt.encode(
        _claims(user.id), hosted_project.key, algorithm="RS256", headers={"kid": hosted_project.kid}
    )

    response = _preferences(hosted_url, token)

    assert response.status_code == 200
    assert response.json()["user_id"] == user.id
    assert "/auth/v1/.well-known/jwks.json" in hosted_project.hits
    assert _preferences(hosted_url, user.token).status_code == 200  # legacy HS256 too


def test_hosted_a_flood_of_unknown_kids_fetches_the_jwks_at_most_once(
    hosted_url: str, hosted_project: FakeProject, make_user: Callable[[], LocalUser]
) -> None:
    user = make_user()
    _preferences(
        hosted_url,
        jwt.encode(
            _claims(user.id), hosted_project.key, algorithm="RS256", headers={"kid": hosted_project.kid}
        ),
    )
    before = len(hosted_project.hits)

    for n in range(20):
        token = jwt.encode(
            _claims(user.id), hosted_project.key, algorithm="RS256", headers={"kid": f"made-up-{n}"}
        )
        assert _preferences(hosted_url, token).status_code == 401

    assert len(hosted_project.hits) - before <= 1


def test_hosted_the_local_auth_server_is_not_served(hosted_url: str, anon_key: str) -> None:
    for path in ("/auth/v1/signup", "/auth/v1/token?grant_type=password"):
        response = httpx.post(
            hosted_url + path, json={"email": "a@b.cd", "password": PASSWORD}, headers={"apikey": anon_key}
        )
        assert response.status_code == 404
    assert httpx.get(hosted_url + "/auth/v1/.well-known/jwks.json").status_code == 404
