"""The built-in scheduler, driven by fake clocks: candle closes in market time, periods in wall time."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from lib.app.scheduler import CandleClose, Every, Job, Scheduler
from lib.errors import ConfigError, ExchangeUnavailable
from lib.exchange.market_clock import PaperClock, WallClock, market_clock_for
from lib.log import JsonFormatter

MINUTE = 60_000
# 2018-01-11 12:00 UTC: a 5, 15 and 60-minute boundary at once.
START = int(datetime(2018, 1, 11, 12, 0, tzinfo=UTC).timestamp() * 1000)


class FakeMarket:
    """A market clock that says what it is told (the paper exchange's replay time, say)."""

    def __init__(self, now_ms: int = START) -> None:
        self.now = now_ms
        self.broken = False

    async def now_ms(self) -> int:
        if self.broken:
            raise ExchangeUnavailable("the paper exchange's replay clock could not be read")
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += int(minutes * MINUTE)


class FakeWall:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """Job bodies that record their runs."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def job(self, name: str) -> Callable[[], asyncio.Future[None]]:
        async def run() -> None:
            self.calls.append(name)

        return run  # type: ignore[return-value]


@pytest.fixture
def market() -> FakeMarket:
    return FakeMarket(START + 2 * MINUTE)


@pytest.fixture
def wall() -> FakeWall:
    return FakeWall()


def candle_scheduler(market: FakeMarket, wall: FakeWall, rec: Recorder, *timeframes: str) -> Scheduler:
    jobs = [Job(f"scan:{tf}", CandleClose(tf), rec.job(f"scan:{tf}")) for tf in timeframes]
    return Scheduler(jobs, market_clock=market, monotonic=wall)


async def test_the_first_tick_only_takes_the_baseline_for_candle_jobs(
    market: FakeMarket, wall: FakeWall
) -> None:
    rec = Recorder()
    scheduler = candle_scheduler(market, wall, rec, "5")

    report = await scheduler.tick()

    assert report.started == ()
    assert report.market_ms == market.now
    assert rec.calls == []


async def test_a_candle_job_runs_once_when_its_candle_closes_and_not_before(
    market: FakeMarket, wall: FakeWall
) -> None:
    rec = Recorder()
    scheduler = candle_scheduler(market, wall, rec, "5")
    await scheduler.tick()  # 12:02

    market.advance(2)  # 12:04: same candle
    assert (await scheduler.tick()).started == ()
    market.advance(1)  # 12:05: the 12:00 candle closed
    report = await scheduler.tick()
    market.advance(1)  # 12:06: nothing new
    again = await scheduler.tick()

    assert report.started == ("scan:5",)
    assert report.outcomes == {"scan:5": "ok"}
    assert again.started == ()
    assert rec.calls == ["scan:5"]


async def test_each_timeframe_fires_only_on_its_own_boundaries(market: FakeMarket, wall: FakeWall) -> None:
    rec = Recorder()
    scheduler = candle_scheduler(market, wall, rec, "5", "15", "60")
    await scheduler.tick()  # 12:02

    started = []
    for _ in range(12):  # 12:07, 12:12, ..., 13:02
        market.advance(5)
        started.append((await scheduler.tick()).started)

    assert [s.count("scan:5") for s in started] == [1] * 12
    assert sum(s.count("scan:15") for s in started) == 4  # 12:15, 12:30, 12:45, 13:00
    assert started[2] == ("scan:5", "scan:15")  # the tick at 12:17 saw 12:15 pass
    assert sum(s.count("scan:60") for s in started) == 1
    assert started[11] == ("scan:5", "scan:15", "scan:60")


async def test_several_candles_closing_between_two_ticks_run_the_job_once(
    market: FakeMarket, wall: FakeWall, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder()
    scheduler = candle_scheduler(market, wall, rec, "5")
    await scheduler.tick()

    market.advance(5 * 4)  # four 5-minute closes
    with caplog.at_level(logging.INFO, logger="aitradex.scheduler"):
        report = await scheduler.tick()

    assert report.started == ("scan:5",)
    assert rec.calls == ["scan:5"]
    coalesced = [r for r in caplog.records if getattr(r, "event", "") == "candles_coalesced"]
    assert coalesced[0].fields["missed"] == 3  # type: ignore[attr-defined]


async def test_every_jobs_run_at_the_first_tick_then_once_per_period_of_wall_time(
    market: FakeMarket, wall: FakeWall
) -> None:
    rec = Recorder()
    scheduler = Scheduler(
        [Job("executor", Every.minutes(1), rec.job("executor"))], market_clock=market, monotonic=wall
    )

    runs = []
    for step in (0.0, 30.0, 29.9, 0.1, 59.0, 1.0):
        wall.now += step
        runs.append((await scheduler.tick()).started)

    assert runs == [("executor",), (), (), ("executor",), (), ("executor",)]


async def test_an_every_job_does_not_burst_after_a_long_stall(market: FakeMarket, wall: FakeWall) -> None:
    rec = Recorder()
    scheduler = Scheduler(
        [Job("tracker", Every(60), rec.job("tracker"))], market_clock=market, monotonic=wall
    )
    await scheduler.tick()

    wall.now += 600  # ten periods without a tick
    first = await scheduler.tick()
    wall.now += 1
    second = await scheduler.tick()
    wall.now += 59
    third = await scheduler.tick()

    assert (first.started, second.started, third.started) == (("tracker",), (), ("tracker",))


async def test_a_failing_job_is_logged_as_json_and_the_others_still_run(
    market: FakeMarket, wall: FakeWall, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder()

    async def broken() -> None:
        raise ExchangeUnavailable("Bybit did not answer /v5/market/kline in time")

    scheduler = Scheduler(
        [
            Job("broken", CandleClose("5"), broken),
            Job("scan:5", CandleClose("5"), rec.job("scan:5")),
            Job("executor", Every(60), rec.job("executor")),
        ],
        market_clock=market,
        monotonic=wall,
    )
    await scheduler.tick()
    market.advance(5)
    wall.now += 60
    with caplog.at_level(logging.INFO, logger="aitradex.scheduler"):
        report = await scheduler.tick()

    assert report.outcomes == {"broken": "failed", "scan:5": "ok", "executor": "ok"}
    assert rec.calls == ["executor", "scan:5", "executor"]
    (failure,) = [r for r in caplog.records if getattr(r, "event", "") == "job_failed"]
    line = json.loads(JsonFormatter().format(failure))
    assert line["level"] == "error"
    assert line["job"] == "broken"
    assert line["code"] == "exchange_unavailable"
    assert line["error_type"] == "ExchangeUnavailable"
    assert scheduler.stats("broken") == (1, 1, 0)

    market.advance(5)
    assert (await scheduler.tick()).outcomes["broken"] == "failed"  # it is tried again at the next close


async def test_a_bug_in_a_job_is_contained_like_any_failure(market: FakeMarket, wall: FakeWall) -> None:
    async def buggy() -> None:
        raise ZeroDivisionError

    scheduler = Scheduler([Job("buggy", Every(1), buggy)], market_clock=market, monotonic=wall)
    assert (await scheduler.tick()).outcomes == {"buggy": "failed"}


async def test_a_bug_in_a_job_is_logged_once_at_error_with_its_traceback(
    market: FakeMarket, wall: FakeWall, caplog: pytest.LogCaptureFixture
) -> None:
    async def buggy() -> None:
        settings = {"api_secret": "hunter2"}
        raise KeyError(f"no rate in {settings}")

    scheduler = Scheduler([Job("buggy", Every(1), buggy)], market_clock=market, monotonic=wall)
    with caplog.at_level(logging.INFO, logger="aitradex.scheduler"):
        assert (await scheduler.tick()).outcomes == {"buggy": "failed"}

    lines = [JsonFormatter().format(r) for r in caplog.records]
    assert all("\n" not in line for line in lines)
    with_traceback = [json.loads(line) for line in lines if '"traceback"' in line]
    (failure,) = with_traceback
    assert (failure["event"], failure["level"], failure["job"]) == ("job_failed", "error", "buggy")
    assert failure["error_type"] == "KeyError"
    assert failure["traceback"].startswith("Traceback (most recent call last):")
    assert "in buggy" in failure["traceback"]
    assert "KeyError" in failure["traceback"].splitlines()[-1]
    assert "hunter2" not in "".join(lines)


async def test_a_deliberate_error_in_a_job_is_logged_without_a_traceback(
    market: FakeMarket, wall: FakeWall, caplog: pytest.LogCaptureFixture
) -> None:
    async def refused() -> None:
        raise ExchangeUnavailable("Bybit did not answer /v5/market/kline in time")

    scheduler = Scheduler([Job("refused", Every(1), refused)], market_clock=market, monotonic=wall)
    with caplog.at_level(logging.INFO, logger="aitradex.scheduler"):
        await scheduler.tick()
    (failure,) = [r for r in caplog.records if getattr(r, "event", "") == "job_failed"]
    line = json.loads(JsonFormatter().format(failure))
    assert (line["code"], line["error"]) == (
        "exchange_unavailable",
        "Bybit did not answer /v5/market/kline in time",
    )
    assert "traceback" not in line


async def test_a_job_still_running_is_skipped_not_started_twice(market: FakeMarket, wall: FakeWall) -> None:
    release = asyncio.Event()
    entered = 0

    async def slow_scan() -> None:
        nonlocal entered
        entered += 1
        await release.wait()

    scheduler = Scheduler([Job("scan:5", CandleClose("5"), slow_scan)], market_clock=market, monotonic=wall)
    await scheduler.tick()
    market.advance(5)
    first = await scheduler.tick(wait=False)
    await asyncio.sleep(0)  # let it start
    market.advance(5)
    second = await scheduler.tick(wait=False)

    assert first.started == ("scan:5",)
    assert second.skipped == ("scan:5",)
    assert second.started == ()
    assert scheduler.running() == ("scan:5",)
    release.set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert scheduler.running() == ()
    assert entered == 1
    assert scheduler.stats("scan:5") == (1, 0, 1)

    market.advance(5)
    assert (await scheduler.tick()).started == ("scan:5",)  # free again: the next close runs it


async def test_without_market_time_candle_jobs_wait_and_every_jobs_still_run(
    market: FakeMarket, wall: FakeWall, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder()
    scheduler = Scheduler(
        [Job("scan:5", CandleClose("5"), rec.job("scan:5")), Job("executor", Every(60), rec.job("executor"))],
        market_clock=market,
        monotonic=wall,
    )
    await scheduler.tick()
    market.advance(5)
    market.broken = True
    wall.now += 60
    with caplog.at_level(logging.INFO, logger="aitradex.scheduler"):
        report = await scheduler.tick()

    assert report.started == ("executor",)
    assert report.market_ms is None
    assert any(getattr(r, "event", "") == "market_clock_unavailable" for r in caplog.records)

    market.broken = False
    assert (await scheduler.tick()).started == ("scan:5",)  # the close is caught up once the clock answers


async def test_run_forever_ticks_until_stopped_then_returns(market: FakeMarket, wall: FakeWall) -> None:
    stop = asyncio.Event()
    runs = 0

    async def executor() -> None:
        nonlocal runs
        runs += 1
        stop.set()

    scheduler = Scheduler([Job("executor", Every(60), executor)], market_clock=market, monotonic=wall)
    await asyncio.wait_for(scheduler.run_forever(stop, poll_s=30.0), timeout=5.0)

    assert runs == 1
    assert scheduler.running() == ()


async def test_run_forever_cancels_a_hung_job_after_the_grace_period(
    market: FakeMarket, wall: FakeWall
) -> None:
    stop = asyncio.Event()
    cancelled = False

    async def hung() -> None:
        nonlocal cancelled
        stop.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled = True
            raise

    scheduler = Scheduler([Job("hung", Every(60), hung)], market_clock=market, monotonic=wall)
    await asyncio.wait_for(scheduler.run_forever(stop, poll_s=30.0, grace_s=0.0), timeout=5.0)

    assert cancelled
    assert scheduler.running() == ()


def test_schedules_and_names_are_validated() -> None:
    with pytest.raises(ConfigError):
        CandleClose("7")
    with pytest.raises(ConfigError):
        Every(0)
    scheduler = Scheduler([Job("a", Every(1), Recorder().job("a"))], market_clock=FakeMarket())
    with pytest.raises(ConfigError):
        scheduler.add(Job("a", Every(2), Recorder().job("a")))


async def test_the_market_clock_is_replay_time_on_paper_and_wall_time_elsewhere() -> None:
    assert market_clock_for("paper", paper_url="http://127.0.0.1:1") == PaperClock("http://127.0.0.1:1")
    wall_clock = market_clock_for("mainnet", paper_url=None)
    assert isinstance(wall_clock, WallClock)
    assert await WallClock(time_s=lambda: 1_515_600_000.5).now_ms() == 1_515_600_000_500
    with pytest.raises(ConfigError):
        market_clock_for("paper", paper_url=None)


async def test_an_unreachable_paper_clock_is_an_exchange_error_not_a_crash() -> None:
    with pytest.raises(ExchangeUnavailable):
        await PaperClock("http://127.0.0.1:9", timeout_s=1.0).now_ms()  # discard port: nothing listens
