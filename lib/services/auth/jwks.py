"""A small JWK Set cache: keys by ``kid``, refreshed when stale or when an unknown ``kid`` arrives.

The fetch is injected (the hosted project's ``/auth/v1/.well-known/jwks.json`` over HTTP, or the local
key set), so the cache itself does no I/O of its own and is tested with a plain function.

- A token whose ``kid`` is unknown triggers one refetch, but at most once per ``min_refresh_s``: a
  flood of made-up kids costs one request per interval, not one per token. If the kid is still
  unknown after the refetch, the token is refused.
- Concurrent lookups share one fetch (a lock), and a failed fetch keeps the keys it had.
- Only public keys of the asymmetric types are kept (``kty`` EC or RSA); a symmetric ``oct`` key in a
  JWK Set is ignored, so no HMAC secret can ever come from there.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

logger = logging.getLogger("aitradex.auth")

Fetch = Callable[[], Awaitable[Mapping[str, Any]]]
#: Hosted Supabase caches its JWKS at the edge for about 10 minutes; so does supabase-js.
DEFAULT_TTL_S = 600.0
ASYMMETRIC_KTY = frozenset({"EC", "RSA"})


class JwksCache:
    """Public signing keys by ``kid`` from a JWK Set that ``fetch`` returns."""

    def __init__(
        self,
        fetch: Fetch,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        min_refresh_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._ttl_s = ttl_s
        self._min_refresh_s = min_refresh_s
        self._clock = clock
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        #: How many times the JWK Set was fetched (for tests and diagnostics).
        self.fetches = 0

    async def key(self, kid: str) -> dict[str, Any] | None:
        """The JWK for ``kid``, or None when the set has none (even after a permitted refresh)."""
        if self._stale() or kid not in self._keys:
            await self._refresh(force=kid not in self._keys)
        return self._keys.get(kid)

    def _stale(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at >= self._ttl_s

    async def _refresh(self, *, force: bool) -> None:
        async with self._lock:
            now = self._clock()
            if self._fetched_at is not None:
                since = now - self._fetched_at
                if since < self._min_refresh_s or (not force and since < self._ttl_s):
                    return  # another caller just fetched, or the rate limit says wait
            self._fetched_at = now
            self.fetches += 1
            try:
                document = await self._fetch()
            except Exception as exc:  # a JWKS outage must not take verification of known keys down
                logger.warning("jwks fetch failed: %s", type(exc).__name__)
                return
            self._keys = parse_jwks(document)


def parse_jwks(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The asymmetric public keys of a JWK Set, by ``kid`` (entries without one are skipped)."""
    keys: dict[str, dict[str, Any]] = {}
    entries = document.get("keys")
    if not isinstance(entries, list):
        return keys
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        kid = entry.get("kid")
        if isinstance(kid, str) and kid and entry.get("kty") in ASYMMETRIC_KTY and "d" not in entry:
            keys[kid] = dict(entry)
    return keys


def http_jwks_fetch(url: str, *, timeout_s: float = 5.0) -> Fetch:
    """A fetch of the JWK Set at ``url`` (a hosted project's ``/auth/v1/.well-known/jwks.json``)."""

    async def fetch() -> Mapping[str, Any]:
        async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client:
            response = await client.get(url, headers={"accept": "application/json"})
            response.raise_for_status()
            document = response.json()
        if not isinstance(document, dict):
            raise ValueError("the JWK Set is not a JSON object")
        return document

    return fetch
