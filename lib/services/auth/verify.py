"""Verifying a bearer token: legacy HS256 with the JWT secret, or ES256/RS256 through a JWK Set.

Pure apart from the injected :class:`~lib.services.auth.jwks.JwksCache` fetch. Algorithm confusion is
ruled out by construction:

- the token's ``alg`` chooses the path, and each path accepts exactly one algorithm;
- HS256 is only ever checked with the JWT secret (never with a key from the JWK Set, whose symmetric
  entries are dropped anyway), and ES256/RS256 only with a JWK of the matching type (EC P-256 for
  ES256, RSA for RS256) whose own ``alg``, when stated, agrees;
- ``alg: none`` and every other algorithm are refused, as is an asymmetric token without a ``kid`` or
  with one the key set does not hold (after the cache's rate-limited refresh).

The claims are then checked as :func:`lib.services.auth.tokens.check_claims` does for every token.
"""

from __future__ import annotations

from typing import Any

import jwt

from lib.errors import Unauthorized
from lib.services.auth import tokens
from lib.services.auth.jwks import JwksCache

ASYMMETRIC = {"ES256": "EC", "RS256": "RSA"}


def _header(token: str) -> dict[str, Any]:
    if len(token) > tokens.MAX_TOKEN_CHARS:
        raise Unauthorized("Invalid JWT", details={"reason": "too long"})
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise Unauthorized("Invalid JWT", details={"reason": "malformed"}) from None


def _key_fits(jwk: dict[str, Any], alg: str) -> bool:
    if jwk.get("kty") != ASYMMETRIC[alg] or jwk.get("alg", alg) != alg:
        return False
    if jwk.get("use", "sig") != "sig":
        return False
    return alg != "ES256" or jwk.get("crv") == "P-256"


class TokenVerifier:
    """Verifies the tokens the functions accept; one per server."""

    def __init__(self, jwt_secret: str, jwks: JwksCache | None) -> None:
        self._secret = jwt_secret
        self._jwks = jwks

    def verify_hs256(self, token: str) -> dict[str, Any]:
        """Only HS256 with the JWT secret: the API keys (anon, service_role) and legacy user tokens."""
        return tokens.verify(token, self._secret)

    async def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid token of any accepted kind. Raises Unauthorized for anything else."""
        header = _header(token)
        alg = header.get("alg")
        if alg == tokens.ALGORITHM:
            return tokens.verify(token, self._secret)
        if alg not in ASYMMETRIC or self._jwks is None:
            raise Unauthorized("Invalid JWT", details={"reason": "algorithm not allowed"})
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > 200:
            raise Unauthorized("Invalid JWT", details={"reason": "no kid"})
        jwk = await self._jwks.key(kid)
        if jwk is None:
            raise Unauthorized("Invalid JWT", details={"reason": "unknown kid"})
        if not _key_fits(jwk, alg):
            raise Unauthorized("Invalid JWT", details={"reason": "key does not fit the algorithm"})
        try:
            key = jwt.PyJWK(jwk, algorithm=alg)
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                leeway=tokens.LEEWAY_S,
                options={"require": ["exp", "role"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("Invalid JWT", details={"reason": "expired"}) from None
        except jwt.PyJWTError:
            raise Unauthorized("Invalid JWT", details={"reason": "bad signature or claims"}) from None
        tokens.check_claims(claims)
        return claims
