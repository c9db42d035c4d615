"""Bearer tokens verified recently: a token seen again within seconds is not verified again.

A browser sends the same access token with every call, and verifying it (base64, JSON, an ES256
signature) was the largest single cost of a signals-api page after the query itself. So the adapter
keeps each token's claims after a successful verification, for at most ``max_age_s`` seconds and
never past the token's own expiry (``exp`` plus the verifier's leeway), whichever is sooner.

Why this changes no answer:

- a token is cached only after it verified; a refused token is verified again every time;
- an expired token is refused at the same moment as without the cache: an entry ends at its ``exp``
  (plus the same leeway :func:`lib.services.auth.tokens.verify` allows);
- signing out never made an access token invalid here (verification is stateless, as Supabase's:
  it passes until it expires), so there is no revocation to miss;
- a key removed from the project's JWK Set stays trusted for at most ``max_age_s`` more, and the
  JWK Set cache itself keeps a removed key for up to its TTL (10 minutes), so the bound is no looser.

One cache per worker process; bounded in entries (the oldest go first).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from lib.services.auth.tokens import LEEWAY_S

#: How long a verified token's claims are reused at most.
MAX_AGE_S = 30.0
#: Tokens remembered at most (a few MB at worst: tokens are limited to 8 KiB, most are under 1 KiB).
MAX_ENTRIES = 10_000


class VerifiedTokens:
    """The claims of tokens verified in the last ``max_age_s`` seconds (and not yet expired)."""

    def __init__(
        self,
        verify: Callable[[str], Awaitable[dict[str, Any]]],
        *,
        max_age_s: float = MAX_AGE_S,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._verify = verify
        self._max_age_s = max_age_s
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[float, dict[str, Any]]] = {}

    async def claims(self, token: str) -> dict[str, Any]:
        """The token's claims (do not modify them). Raises what the verifier raises for a bad token."""
        entry = self._entries.get(token)
        now = self._clock()
        if entry is not None:
            if now < entry[0]:
                return entry[1]
            del self._entries[token]
        claims = await self._verify(token)
        # Wall-clock time, as exp is: the entry ends when the verifier would start refusing it.
        until = min(now + self._max_age_s, float(claims["exp"]) + LEEWAY_S)
        if len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[token] = (until, claims)
        return claims
