"""The adapter's cache of verified tokens (lib/http/token_cache.py): it saves work, changes no answer."""

from __future__ import annotations

from typing import Any

import pytest

from lib.errors import Unauthorized
from lib.http.token_cache import VerifiedTokens
from lib.services.auth.tokens import LEEWAY_S

NOW = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


class Verifier:
    """Verifies tokens named ``good-<exp>``; counts its calls; honours exp with the real leeway."""

    def __init__(self, clock: Clock) -> None:
        self.calls = 0
        self.clock = clock

    async def __call__(self, token: str) -> dict[str, Any]:
        self.calls += 1
        kind, _, exp = token.partition("-")
        if kind != "good" or self.clock() >= float(exp) + LEEWAY_S:
            raise Unauthorized("Invalid JWT")
        return {"role": "authenticated", "exp": int(exp)}


async def test_a_token_seen_again_is_not_verified_again_within_the_max_age() -> None:
    clock = Clock()
    verify = Verifier(clock)
    cache = VerifiedTokens(verify, max_age_s=30, clock=clock)
    token = f"good-{int(NOW) + 3600}"
    first = await cache.claims(token)
    clock.now += 29
    assert await cache.claims(token) == first
    assert verify.calls == 1
    clock.now += 1  # 30 s: verified again
    await cache.claims(token)
    assert verify.calls == 2


async def test_an_expired_token_is_refused_at_the_same_moment_as_without_the_cache() -> None:
    clock = Clock()
    cache = VerifiedTokens(Verifier(clock), max_age_s=3600, clock=clock)
    token = f"good-{int(NOW) + 10}"
    await cache.claims(token)
    clock.now += 10 + LEEWAY_S - 0.5
    await cache.claims(token)  # still inside exp + leeway
    clock.now += 0.5
    with pytest.raises(Unauthorized):
        await cache.claims(token)


async def test_a_refused_token_is_never_remembered() -> None:
    clock = Clock()
    verify = Verifier(clock)
    cache = VerifiedTokens(verify, clock=clock)
    for _ in range(3):
        with pytest.raises(Unauthorized):
            await cache.claims("forged")
    assert verify.calls == 3


async def test_the_cache_is_bounded_and_forgets_the_oldest_first() -> None:
    clock = Clock()
    verify = Verifier(clock)
    cache = VerifiedTokens(verify, max_entries=2, clock=clock)
    a, b, c = (f"good-{int(NOW) + 3600 + n}" for n in range(3))
    for token in (a, b, c):
        await cache.claims(token)
    assert verify.calls == 3
    await cache.claims(c)
    await cache.claims(b)
    assert verify.calls == 3  # the two newest are remembered
    await cache.claims(a)
    assert verify.calls == 4  # the oldest was forgotten
