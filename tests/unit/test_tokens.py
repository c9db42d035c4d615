"""JWT verification and minting, the Supabase way."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from lib.errors import Unauthorized
from lib.services.auth import tokens

SECRET = "s" * 40


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_a_valid_user_token_verifies_to_its_claims() -> None:
    token = tokens.mint_user_token("1f0e5c1e-0000-4000-8000-000000000001", "a@b.co", SECRET)
    claims = tokens.verify(token, SECRET)
    assert claims["sub"] == "1f0e5c1e-0000-4000-8000-000000000001"
    assert claims["role"] == "authenticated"
    assert claims["aud"] == "authenticated"


def test_api_keys_carry_their_role_like_the_supabase_cli() -> None:
    for role in ("anon", "service_role"):
        claims = tokens.verify(tokens.mint_api_key(role, SECRET), SECRET)
        assert claims["role"] == role
        assert claims["iss"] == "supabase-demo"
    with pytest.raises(ValueError, match="authenticated"):
        tokens.mint_api_key("authenticated", SECRET)


def test_an_expired_token_is_refused_but_a_just_expired_one_is_within_the_leeway() -> None:
    now = time.time()
    just = tokens.mint({"role": "anon", "exp": int(now) - 5}, SECRET)
    long_ago = tokens.mint({"role": "anon", "exp": int(now) - tokens.LEEWAY_S - 5}, SECRET)
    assert tokens.verify(just, SECRET)["role"] == "anon"
    with pytest.raises(Unauthorized) as info:
        tokens.verify(long_ago, SECRET)
    assert info.value.details["reason"] == "expired"


def test_alg_none_is_refused() -> None:
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64({'role': 'service_role', 'exp': 4102444800})}."
    with pytest.raises(Unauthorized):
        tokens.verify(unsigned, SECRET)


def test_other_algorithms_are_refused_even_with_the_right_secret() -> None:
    hs512 = jwt.encode({"role": "service_role", "exp": 4102444800}, SECRET * 2, algorithm="HS512")
    with pytest.raises(Unauthorized):
        tokens.verify(hs512, SECRET * 2)


def test_a_token_signed_with_another_secret_is_refused() -> None:
    forged = tokens.mint({"role": "service_role", "exp": 4102444800}, "x" * 40)
    with pytest.raises(Unauthorized):
        tokens.verify(forged, SECRET)


@pytest.mark.parametrize("claims", [{"exp": 4102444800}, {"role": "anon"}])
def test_a_token_without_role_or_exp_is_refused(claims: dict[str, object]) -> None:
    with pytest.raises(Unauthorized):
        tokens.verify(tokens.mint(claims, SECRET), SECRET)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "Bearer x"])
def test_garbage_is_refused(garbage: str) -> None:
    with pytest.raises(Unauthorized):
        tokens.verify(garbage, SECRET)


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"role": ["service_role"]}, "role is not a short string"),
        ({"role": {"r": "anon"}}, "role is not a short string"),
        ({"role": ""}, "role is not a short string"),
        ({"role": "r" * 65}, "role is not a short string"),
        ({"role": "authenticated", "sub": "not-a-uuid"}, "sub is not a UUID"),
        # PyJWT itself refuses a sub that is not a string.
        ({"role": "authenticated", "sub": 12}, "bad signature or claims"),
        (
            {"role": "authenticated", "sub": ["1f0e5c1e-0000-4000-8000-000000000001"]},
            "bad signature or claims",
        ),
        ({"role": "anon", "exp": "4102444800"}, "exp is not a number of seconds"),
        ({"role": "anon", "exp": 10**400}, "exp is not a number of seconds"),
        ({"role": "anon", "exp": 4102444800, "iat": "1700000000"}, "iat is not a number of seconds"),
        ({"role": "anon", "exp": 4102444800, "nbf": True}, "nbf is not a number of seconds"),
    ],
)
def test_odd_claims_under_the_right_signature_are_refused(claims: dict[str, object], reason: str) -> None:
    with pytest.raises(Unauthorized) as info:
        tokens.verify(tokens.mint({"exp": 4102444800, **claims}, SECRET), SECRET)
    assert info.value.details["reason"] == reason


def test_a_token_longer_than_any_real_one_is_refused_before_decoding() -> None:
    with pytest.raises(Unauthorized) as info:
        tokens.verify("eyJ" + "a" * tokens.MAX_TOKEN_CHARS, SECRET)
    assert info.value.details["reason"] == "too long"


def test_a_float_expiry_and_an_uppercase_uuid_are_not_odd() -> None:
    # JSON numbers may be fractional; only the canonical (lowercase) spelling of a UUID is accepted.
    token = tokens.mint({"role": "anon", "exp": 4102444800.5}, SECRET)
    assert tokens.verify(token, SECRET)["role"] == "anon"
    upper = tokens.mint(
        {"role": "authenticated", "sub": "1F0E5C1E-0000-4000-8000-000000000001", "exp": 4102444800}, SECRET
    )
    with pytest.raises(Unauthorized):
        tokens.verify(upper, SECRET)
