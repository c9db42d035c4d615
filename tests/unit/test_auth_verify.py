"""The pure parts of Supabase Auth: the JWKS cache, token verification, signing, passwords, settings."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from lib.config import load_settings
from lib.errors import ConfigError, Unauthorized
from lib.local_state import ensure_local_secrets, read_local_secret
from lib.services.auth import passwords
from lib.services.auth.errors import weak_password
from lib.services.auth.jwks import JwksCache, parse_jwks
from lib.services.auth.signing import SigningKey, access_token_claims
from lib.services.auth.tokens import mint
from lib.services.auth.verify import TokenVerifier, _key_fits

SECRET = "s" * 40


def _pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "sub": "7c3c2a43-3d1b-4f5e-9a52-2f9a7c9e1f00",
        "role": "authenticated",
        "iat": now,
        "exp": now + 60,
        **extra,
    }


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Fetcher:
    """A JWK Set source that counts its calls (and can fail)."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        self.calls = 0
        self.fail = False

    async def __call__(self) -> Mapping[str, Any]:
        self.calls += 1
        if self.fail:
            raise OSError("down")
        return self.document


KEY = SigningKey.from_pem(_pem())


async def test_the_cache_fetches_once_and_refetches_an_unknown_kid_at_most_once_per_interval() -> None:
    fetch, clock = Fetcher(KEY.jwks()), Clock()
    cache = JwksCache(fetch, min_refresh_s=30, ttl_s=600, clock=clock)

    assert (await cache.key(KEY.kid)) is not None
    assert (await cache.key(KEY.kid)) is not None
    for n in range(50):
        assert await cache.key(f"unknown-{n}") is None
    assert fetch.calls == 1  # the flood came within the interval

    clock.now += 31
    assert await cache.key("unknown-again") is None
    assert fetch.calls == 2
    clock.now += 1
    assert await cache.key(KEY.kid) is not None
    assert fetch.calls == 2  # a known kid within the TTL costs nothing


async def test_a_new_kid_is_picked_up_after_the_interval_and_a_failed_fetch_keeps_the_old_keys() -> None:
    fetch, clock = Fetcher(KEY.jwks()), Clock()
    cache = JwksCache(fetch, min_refresh_s=30, ttl_s=600, clock=clock)
    assert await cache.key(KEY.kid) is not None
    rotated = SigningKey.from_pem(_pem())
    fetch.document = {"keys": [*KEY.jwks()["keys"], *rotated.jwks()["keys"]]}

    clock.now += 30
    assert await cache.key(rotated.kid) is not None

    fetch.fail = True
    clock.now += 700  # stale: a refetch is due, and it fails
    assert await cache.key(KEY.kid) is not None
    assert fetch.calls == 3


def test_a_jwks_gives_no_symmetric_or_private_key() -> None:
    private = {**KEY.public_jwk, "kid": "with-d", "d": "secret"}
    document = {
        "keys": [KEY.public_jwk, {"kty": "oct", "kid": "h", "k": "c2VjcmV0"}, private, "junk", {"kty": "EC"}]
    }

    assert list(parse_jwks(document)) == [KEY.kid]
    assert parse_jwks({"keys": "nope"}) == {}


def test_a_key_fits_only_its_own_algorithm() -> None:
    ec_jwk = dict(KEY.public_jwk)
    rsa_jwk = {"kty": "RSA", "kid": "r", "n": "x", "e": "AQAB"}

    assert _key_fits(ec_jwk, "ES256")
    assert not _key_fits(ec_jwk, "RS256")
    assert _key_fits(rsa_jwk, "RS256")
    assert not _key_fits(rsa_jwk, "ES256")
    assert not _key_fits({**rsa_jwk, "alg": "RS512"}, "RS256")
    assert not _key_fits({**ec_jwk, "crv": "P-384", "alg": "ES256"}, "ES256")
    assert not _key_fits({**ec_jwk, "use": "enc"}, "ES256")


def _verifier() -> TokenVerifier:
    async def fetch() -> Mapping[str, Any]:
        return KEY.jwks()

    return TokenVerifier(SECRET, JwksCache(fetch))


async def test_es256_from_the_key_set_and_hs256_with_the_secret_verify() -> None:
    verifier = _verifier()

    assert (await verifier.verify(KEY.sign(_claims())))["role"] == "authenticated"
    assert (await verifier.verify(mint(_claims(), SECRET)))["role"] == "authenticated"


@pytest.mark.parametrize(
    "forge",
    [
        # alg none
        lambda: jwt.encode(_claims(), None, algorithm="none"),
        # HS256 keyed with the public key's PEM, naming the kid (the classic confusion)
        lambda: _hs256_with_public_key(),
        # ES256 without a kid, with an unknown kid, and signed by another key under our kid
        lambda: jwt.encode(_claims(), KEY.private, algorithm="ES256"),
        lambda: jwt.encode(_claims(), KEY.private, algorithm="ES256", headers={"kid": "other"}),
        lambda: jwt.encode(
            _claims(), ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": KEY.kid}
        ),
        # RS256 under the EC key's kid, ES384, and an expired ES256 token
        lambda: jwt.encode(
            _claims(),
            rsa.generate_private_key(public_exponent=65537, key_size=2048),
            algorithm="RS256",
            headers={"kid": KEY.kid},
        ),
        lambda: jwt.encode(
            _claims(), ec.generate_private_key(ec.SECP384R1()), algorithm="ES384", headers={"kid": KEY.kid}
        ),
        lambda: KEY.sign(_claims(exp=int(time.time()) - 3600)),
        # right signature, wrong shapes: no role, sub not a UUID
        lambda: KEY.sign({k: v for k, v in _claims().items() if k != "role"}),
        lambda: KEY.sign(_claims(sub="admin")),
    ],
)
async def test_every_forgery_is_refused(forge: Any) -> None:
    with pytest.raises(Unauthorized):
        await _verifier().verify(forge())


def _hs256_with_public_key() -> str:
    # PyJWT refuses to HMAC with a PEM public key itself, which is the point; build it by hand.
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    pem = KEY.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": KEY.kid}).encode())
    signing_input = f"{head}.{b64(json.dumps(_claims()).encode())}"
    return signing_input + "." + b64(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())


async def test_without_a_key_set_only_hs256_is_accepted() -> None:
    verifier = TokenVerifier(SECRET, None)

    with pytest.raises(Unauthorized):
        await verifier.verify(KEY.sign(_claims()))
    with pytest.raises(Unauthorized):
        verifier.verify_hs256(KEY.sign(_claims()))


def test_the_kid_is_the_keys_thumbprint_and_the_set_holds_no_private_part() -> None:
    pem = _pem()

    assert SigningKey.from_pem(pem).kid == SigningKey.from_pem(pem).kid
    assert SigningKey.from_pem(pem).kid != KEY.kid
    assert "d" not in KEY.jwks()["keys"][0]
    with pytest.raises(ValueError, match="P-256"):
        SigningKey.from_pem(
            ec.generate_private_key(ec.SECP384R1())
            .private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            .decode()
        )


def test_access_token_claims_are_supabases() -> None:
    user = {
        "id": "u1",
        "email": "a@b.cd",
        "phone": "",
        "app_metadata": {"provider": "email"},
        "user_metadata": {},
    }

    claims = access_token_claims(issuer="http://x/auth/v1", user=user, session_id="s1", ttl_s=3600, now=100)

    assert claims["exp"] == 3700
    assert {k: claims[k] for k in ("iss", "sub", "aud", "role", "aal", "session_id", "is_anonymous")} == {
        "iss": "http://x/auth/v1",
        "sub": "u1",
        "aud": "authenticated",
        "role": "authenticated",
        "aal": "aal1",
        "session_id": "s1",
        "is_anonymous": False,
    }
    assert claims["amr"] == [{"method": "password", "timestamp": 100}]


def test_passwords_are_bcrypt_and_a_missing_hash_still_costs_a_check() -> None:
    hashed = passwords.hash_password("correct horse 1")

    assert hashed.startswith("$2b$10$")
    assert passwords.check_password("correct horse 1", hashed)
    assert not passwords.check_password("wrong horse 1", hashed)
    assert not passwords.check_password("anything", None)
    assert not passwords.check_password("anything", "not-a-bcrypt-hash")


def test_a_weak_password_error_carries_gotrues_reasons() -> None:
    assert weak_password(8).body() == {
        "code": 422,
        "error_code": "weak_password",
        "msg": "Password should be at least 8 characters.",
        "weak_password": {"reasons": ["length"]},
    }


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    key = base64.b64encode(b"k" * 32).decode()
    return {
        "AITRADEX_STATE_DIR": str(tmp_path),
        "JWT_SECRET": "j" * 40,
        "AITRADEX_MASTER_KEYS": f"1:{key}",
        "AITRADEX_AUTHENTICATOR_PASSWORD": "pw",
        "POSTGRES_SUPERUSER_PASSWORD": "su",
        **extra,
    }


def test_auth_settings_have_gotrue_like_defaults_and_take_overrides(tmp_path: Path) -> None:
    defaults = load_settings(_env(tmp_path)).auth
    tuned = load_settings(
        _env(tmp_path, AITRADEX_AUTH_RATE_LIMIT_IP="3", AITRADEX_AUTH_MIN_PASSWORD_LENGTH="12")
    ).auth

    assert (defaults.rate_limit_ip, defaults.rate_limit_email, defaults.rate_window_s) == (30, 10, 300)
    assert (defaults.min_password_length, defaults.access_token_ttl_s) == (8, 3600)
    assert defaults.refresh_token_reuse_interval_s == 10
    assert not defaults.hosted
    assert (tuned.rate_limit_ip, tuned.min_password_length) == (3, 12)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AITRADEX_AUTH_RATE_LIMIT_IP", "0"),
        ("AITRADEX_AUTH_RATE_LIMIT_EMAIL", "-1"),
        ("AITRADEX_AUTH_MIN_PASSWORD_LENGTH", "4"),
        ("AITRADEX_AUTH_MIN_PASSWORD_LENGTH", "100"),
        ("AITRADEX_AUTH_RATE_WINDOW_S", "ten"),
        ("SUPABASE_URL", "ftp://example.com"),
    ],
)
def test_malformed_auth_settings_are_refused(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings(_env(tmp_path, **{name: value}))


def test_the_local_signing_key_is_generated_once_and_hosted_mode_ignores_it(tmp_path: Path) -> None:
    assert "AUTH_JWT_SIGNING_KEY" in ensure_local_secrets(tmp_path)
    pem = read_local_secret(tmp_path, "AUTH_JWT_SIGNING_KEY")
    assert pem is not None
    assert ensure_local_secrets(tmp_path) == []
    assert read_local_secret(tmp_path, "AUTH_JWT_SIGNING_KEY") == pem  # never regenerated
    assert SigningKey.from_pem(pem).kid
    local = load_settings({"AITRADEX_STATE_DIR": str(tmp_path)}).auth
    hosted = load_settings(
        {"AITRADEX_STATE_DIR": str(tmp_path), "SUPABASE_URL": "https://ref.supabase.co/"}
    ).auth

    assert local.signing_key is not None
    assert local.signing_key.reveal() == pem
    assert "PRIVATE" not in repr(local)
    assert hosted.hosted
    assert hosted.supabase_url == "https://ref.supabase.co"
    assert hosted.signing_key is None
