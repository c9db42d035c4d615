"""The Bybit IP rate limiter, driven by a fake clock: nothing here really sleeps."""

from __future__ import annotations

import asyncio

import pytest

from lib.errors import ConfigError
from lib.exchange.rate_limit import PauseTooLong, RateLimiter


class FakeTime:
    """A clock that only moves when someone sleeps on it."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)  # let other coroutines run, as a real sleep would


def most_in_any_window(grant_times: list[float], window_s: float) -> int:
    """The largest number of grants in any half-open window (t - window_s, t]."""
    most = 0
    for end in grant_times:
        most = max(most, sum(1 for t in grant_times if end - window_s < t <= end))
    return most


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


async def test_the_default_share_is_half_of_bybits_600_requests_per_5_seconds(fake_time: FakeTime) -> None:
    limiter = RateLimiter(clock=fake_time.clock, sleep=fake_time.sleep)

    assert limiter.capacity == 300
    assert limiter.window_s == 5.0


async def test_requests_within_the_share_are_granted_without_waiting(fake_time: FakeTime) -> None:
    limiter = RateLimiter(0.5, clock=fake_time.clock, sleep=fake_time.sleep)

    for _ in range(300):
        await limiter.acquire()

    assert fake_time.sleeps == []


async def test_sequential_requests_never_exceed_the_share_in_any_5_second_window(fake_time: FakeTime) -> None:
    limiter = RateLimiter(0.5, clock=fake_time.clock, sleep=fake_time.sleep)
    start = fake_time.now
    grants: list[float] = []

    for _ in range(1_000):
        await limiter.acquire()
        grants.append(fake_time.now)

    assert most_in_any_window(grants, 5.0) <= 300
    # ...and the limiter is not needlessly slow: request 301 goes out as soon as the first one ages out.
    assert grants[300] == pytest.approx(start + 5.0, abs=0.01)
    assert grants[-1] == pytest.approx(start + 15.0, abs=0.01)


async def test_concurrent_requests_never_exceed_a_smaller_share(fake_time: FakeTime) -> None:
    limiter = RateLimiter(0.1, clock=fake_time.clock, sleep=fake_time.sleep)
    grants: list[float] = []

    async def one_request() -> None:
        await limiter.acquire()
        grants.append(fake_time.now)

    await asyncio.gather(*(one_request() for _ in range(200)))

    assert limiter.capacity == 60
    assert len(grants) == 200
    assert most_in_any_window(sorted(grants), 5.0) <= 60


async def test_a_disabled_limiter_never_waits(fake_time: FakeTime) -> None:
    limiter = RateLimiter(None, clock=fake_time.clock, sleep=fake_time.sleep)

    for _ in range(5_000):
        await limiter.acquire()

    assert not limiter.enabled
    assert fake_time.sleeps == []


async def test_a_pause_blocks_requests_until_its_time(fake_time: FakeTime) -> None:
    limiter = RateLimiter(0.5, clock=fake_time.clock, sleep=fake_time.sleep)
    deadline = fake_time.now + 30.0

    limiter.pause_until(deadline, "rate_limited")
    await limiter.acquire()

    assert fake_time.now >= deadline
    assert limiter.pause_remaining() == 0.0


async def test_a_pause_for_a_duration_blocks_for_that_long(fake_time: FakeTime) -> None:
    limiter = RateLimiter(0.5, clock=fake_time.clock, sleep=fake_time.sleep)
    start = fake_time.now

    limiter.pause_for(2.5, "rate_limited")
    await limiter.acquire()

    assert fake_time.now == pytest.approx(start + 2.5)


async def test_a_later_shorter_pause_does_not_shorten_the_current_one(fake_time: FakeTime) -> None:
    limiter = RateLimiter(0.5, clock=fake_time.clock, sleep=fake_time.sleep)

    limiter.pause_for(600.0, "ip_ban")
    limiter.pause_for(2.0, "rate_limited")

    assert limiter.pause_remaining() == pytest.approx(600.0)
    assert limiter.pause_reason == "ip_ban"


async def test_a_pause_longer_than_the_caller_accepts_fails_fast_without_waiting(fake_time: FakeTime) -> None:
    limiter = RateLimiter(0.5, clock=fake_time.clock, sleep=fake_time.sleep)
    limiter.pause_for(600.0, "ip_ban")

    with pytest.raises(PauseTooLong) as raised:
        await limiter.acquire(max_pause_s=30.0)

    assert raised.value.reason == "ip_ban"
    assert raised.value.remaining_s == pytest.approx(600.0)
    assert fake_time.sleeps == []


async def test_a_disabled_limiter_still_honours_a_pause(fake_time: FakeTime) -> None:
    limiter = RateLimiter(None, clock=fake_time.clock, sleep=fake_time.sleep)
    deadline = fake_time.now + 10.0

    limiter.pause_until(deadline, "rate_limited")
    await limiter.acquire()

    assert fake_time.now >= deadline


@pytest.mark.parametrize("share", [0.0, -0.5, 1.5])
def test_a_share_outside_zero_to_one_is_a_configuration_error(share: float) -> None:
    with pytest.raises(ConfigError):
        RateLimiter(share)


async def test_headroom_is_the_grants_free_in_the_window_none_when_off_and_zero_while_paused(
    fake_time: FakeTime,
) -> None:
    limiter = RateLimiter(0.5, clock=fake_time.clock, sleep=fake_time.sleep)
    assert limiter.headroom() == 300
    for _ in range(120):
        await limiter.acquire()
    assert limiter.headroom() == 180
    fake_time.now += 5.0  # the window slides past every grant
    assert limiter.headroom() == 300
    limiter.pause_for(1.0, "banned")
    assert limiter.headroom() == 0
    fake_time.now += 1.0
    assert limiter.headroom() == 300
    assert RateLimiter(None, clock=fake_time.clock, sleep=fake_time.sleep).headroom() is None


async def test_seconds_until_n_more_grants_is_when_the_oldest_ones_leave_the_window(
    fake_time: FakeTime,
) -> None:
    limiter = RateLimiter(0.5, clock=fake_time.clock, sleep=fake_time.sleep)
    assert limiter.seconds_until(300) == 0.0
    for _ in range(200):
        await limiter.acquire()
    fake_time.now += 1.0
    for _ in range(100):
        await limiter.acquire()
    assert limiter.seconds_until(0) == 0.0
    # 10 more need the 10 oldest grants gone: 5 s after they were made, 4 s from now.
    assert limiter.seconds_until(10) == pytest.approx(4.0)
    # 250 more need 50 of the grants made a second later gone too: 5 s from now.
    assert limiter.seconds_until(250) == pytest.approx(5.0)
    assert limiter.seconds_until(301) == float("inf")
    limiter.pause_for(6.0, "banned")
    assert limiter.seconds_until(0) == pytest.approx(6.0)
    assert RateLimiter(None, clock=fake_time.clock, sleep=fake_time.sleep).seconds_until(10) is None
