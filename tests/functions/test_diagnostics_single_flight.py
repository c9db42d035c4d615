"""Issue 9, item 10: concurrent fresh diagnostics for the service role run the checks once.

First with a counting runner handed to the cache (the unit of the rule), then through HTTP: many
concurrent service-role calls answer with one run's report.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest

from lib.services.diagnostics import HealthCache, HealthReport
from tests.functions.conftest import bearer

URL = "/functions/v1/diagnostics"
CALLERS = 20


class CountingRunner:
    """A health run that counts its calls and finishes only when released."""

    def __init__(self) -> None:
        self.runs = 0
        self.release = asyncio.Event()

    async def __call__(self) -> HealthReport:
        self.runs += 1
        await self.release.wait()
        return HealthReport(status="healthy", checked_at=datetime.now(UTC), checks=())


async def _all_waiting(tasks: list[asyncio.Task[HealthReport]]) -> None:
    """Let every task run up to its first wait (asyncio runs ready tasks in order: bounded, no timing)."""
    for _ in range(len(tasks) + 5):
        await asyncio.sleep(0)


async def test_concurrent_fresh_runs_collapse_into_one() -> None:
    cache, runner = HealthCache(), CountingRunner()
    tasks = [asyncio.create_task(cache.fresh(runner)) for _ in range(CALLERS)]
    await _all_waiting(tasks)
    runner.release.set()
    reports = await asyncio.gather(*tasks)
    assert runner.runs == 1
    assert len({id(report) for report in reports}) == 1


async def test_a_fresh_call_after_a_run_finished_runs_again() -> None:
    cache, runner = HealthCache(ttl_s=3600), CountingRunner()
    runner.release.set()
    first = await cache.fresh(runner)
    second = await cache.fresh(runner)
    assert runner.runs == 2
    assert first is not second


async def test_anonymous_callers_during_a_fresh_run_share_it_too() -> None:
    cache, runner = HealthCache(), CountingRunner()
    tasks = [
        asyncio.create_task(cache.fresh(runner)),
        *(asyncio.create_task(cache.get(runner)) for _ in range(5)),
    ]
    await _all_waiting(tasks)
    runner.release.set()
    await asyncio.gather(*tasks)
    assert runner.runs == 1
    # ...and the report that run produced is the anonymous callers' cache for ttl_s.
    await cache.get(runner)
    assert runner.runs == 1


async def test_a_caller_that_gives_up_does_not_cancel_the_run_the_others_wait_for() -> None:
    cache, runner = HealthCache(), CountingRunner()
    quitter = asyncio.create_task(cache.fresh(runner))
    stayer = asyncio.create_task(cache.fresh(runner))
    await _all_waiting([quitter, stayer])
    quitter.cancel()
    await _all_waiting([quitter, stayer])
    runner.release.set()
    report = await stayer
    assert report.status == "healthy"
    with pytest.raises(asyncio.CancelledError):
        await quitter
    assert runner.runs == 1


async def test_a_failing_run_fails_its_callers_and_the_next_call_runs_again() -> None:
    cache = HealthCache()
    calls = 0

    async def broken() -> HealthReport:
        nonlocal calls
        calls += 1
        raise RuntimeError("the checks crashed")

    with pytest.raises(RuntimeError):
        await cache.fresh(broken)
    with pytest.raises(RuntimeError):
        await cache.fresh(broken)
    assert calls == 2


class FakeClock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_an_anonymous_report_is_never_served_ttl_after_its_run_started() -> None:
    # Issue 12: the age counts from the run's start (what it read, it read after that), so a run
    # that took long is not served for a whole TTL after it ended.
    clock, runner = FakeClock(), CountingRunner()
    cache = HealthCache(ttl_s=5.0, clock=clock)
    first = asyncio.create_task(cache.get(runner))
    await _all_waiting([first])
    clock.now += 4.0  # the run takes 4 s
    runner.release.set()
    report = await first
    clock.now += 1.0  # 5 s after it started, 1 s after it ended: too old
    runner.release = asyncio.Event()
    runner.release.set()
    assert await cache.get(runner) is not report
    assert runner.runs == 2


async def test_late_in_its_ttl_a_report_is_refreshed_ahead_without_making_anyone_wait() -> None:
    clock, runner = FakeClock(), CountingRunner()
    cache = HealthCache(ttl_s=5.0, clock=clock)
    runner.release.set()
    first = await cache.get(runner)
    clock.now += 3.9
    assert await cache.get(runner) is first
    assert runner.runs == 1  # under 80 % of the TTL: no run
    clock.now += 0.2  # 4.1 s old: served, and one run starts behind it
    runner.release = asyncio.Event()
    served = await asyncio.gather(*(cache.get(runner) for _ in range(5)))
    assert all(report is first for report in served)
    await _all_waiting([])
    assert runner.runs == 2  # one background run for the five callers
    runner.release.set()
    await _all_waiting([])
    newer = await cache.get(runner)
    assert newer is not first
    assert runner.runs == 2


async def test_concurrent_service_role_calls_over_http_share_one_run(
    http: httpx.AsyncClient, service_key: str
) -> None:
    # Every run stamps its report with its own start time; one run shared is one checked_at.
    responses = await asyncio.gather(*(http.post(URL, headers=bearer(service_key)) for _ in range(8)))
    assert all(r.status_code == 200 for r in responses)
    assert all(r.json()["checks"] for r in responses)
    stamps = {r.json()["checked_at"] for r in responses}
    assert len(stamps) < len(responses)
