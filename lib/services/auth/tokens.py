"""HS256 JWTs with Supabase's conventions. Pure: no database, no HTTP.

- Verification accepts only HS256 (``alg: none`` and every other algorithm are rejected), enforces
  ``exp`` with a small leeway, and requires a ``role`` claim.
- The claims' shapes are checked too, even under the right signature, so nothing downstream meets a
  surprise: ``role`` is a short string, ``sub`` (when present) a UUID in its canonical lowercase
  form, and ``exp``, ``iat`` and ``nbf`` are JSON numbers of a sensible size (PyJWT alone would
  accept ``"4102444800"`` as a string, and an integer of any size).
- The local ``anon`` and ``service_role`` keys are minted like the Supabase CLI's (``iss`` =
  ``supabase-demo``, long-lived), but signed with this stack's own generated secret.
- Local users get short-lived ``authenticated`` tokens whose ``sub`` is their ``auth.users.id``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

import jwt

from lib.errors import Unauthorized

ALGORITHM = "HS256"
LEEWAY_S = 30
API_KEY_TTL_S = 10 * 365 * 24 * 3600
USER_TOKEN_TTL_S = 24 * 3600
# Supabase's tokens are a few hundred bytes; anything near a header's size is not one of ours.
MAX_TOKEN_CHARS = 8 * 1024
MAX_ROLE_CHARS = 64
# Year 5138 in seconds: far beyond any real expiry, well inside what every date library handles.
MAX_NUMERIC_DATE = 10**11


def verify(token: str, secret: str) -> dict[str, Any]:
    """The claims of a valid token. Raises Unauthorized for anything else, without saying why to callers."""
    if len(token) > MAX_TOKEN_CHARS:
        raise Unauthorized("Invalid JWT", details={"reason": "too long"})
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise Unauthorized("Invalid JWT", details={"reason": "malformed"}) from None
    if header.get("alg") != ALGORITHM:
        raise Unauthorized("Invalid JWT", details={"reason": "algorithm not allowed"})
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            leeway=LEEWAY_S,
            options={"require": ["exp", "role"], "verify_aud": False},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("Invalid JWT", details={"reason": "expired"}) from None
    except jwt.PyJWTError:
        raise Unauthorized("Invalid JWT", details={"reason": "bad signature or claims"}) from None
    check_claims(claims)
    return claims


def _numeric_date(value: Any) -> bool:
    # bool is an int in Python, and JSON true is not a date.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return 0 <= value <= MAX_NUMERIC_DATE  # False for NaN, and for infinity (no float conversion)


def check_claims(claims: Mapping[str, Any]) -> None:
    """Raise Unauthorized unless the claims have the shapes the application relies on."""
    role = claims.get("role")
    if not isinstance(role, str) or not 0 < len(role) <= MAX_ROLE_CHARS:
        raise Unauthorized("Invalid JWT", details={"reason": "role is not a short string"})
    for name in ("exp", "iat", "nbf"):
        if name in claims and not _numeric_date(claims[name]):
            raise Unauthorized("Invalid JWT", details={"reason": f"{name} is not a number of seconds"})
    if "sub" in claims:
        sub = claims["sub"]
        try:
            valid = isinstance(sub, str) and str(uuid.UUID(sub)) == sub
        except ValueError:
            valid = False
        if not valid:
            raise Unauthorized("Invalid JWT", details={"reason": "sub is not a UUID"})


def mint(claims: Mapping[str, Any], secret: str) -> str:
    """Sign ``claims`` with HS256."""
    return jwt.encode(dict(claims), secret, algorithm=ALGORITHM)


def mint_api_key(role: str, secret: str, *, now: float | None = None) -> str:
    """A long-lived API key (``anon`` or ``service_role``), as ``supabase start`` prints them."""
    if role not in ("anon", "service_role"):
        raise ValueError(f"API keys are minted for anon or service_role, not {role!r}")
    issued = int(now if now is not None else time.time())
    return mint({"iss": "supabase-demo", "role": role, "iat": issued, "exp": issued + API_KEY_TTL_S}, secret)


def mint_user_token(
    user_id: str, email: str | None, secret: str, *, ttl_s: int = USER_TOKEN_TTL_S, now: float | None = None
) -> str:
    """An ``authenticated`` access token for a user, shaped like GoTrue's."""
    issued = int(now if now is not None else time.time())
    return mint(
        {
            "iss": "aitradex-local",
            "sub": user_id,
            "aud": "authenticated",
            "role": "authenticated",
            "email": email,
            "iat": issued,
            "exp": issued + ttl_s,
            "is_anonymous": False,
        },
        secret,
    )
