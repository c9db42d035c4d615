"""The scheduled pipeline: scans at each candle close, then execution, then order tracking.

The scheduler calls the services directly (no HTTP, no handler), as the service role, with the same
``Services`` the HTTP adapter uses: ``scan_many`` (every configured algorithm scored from one fetch of
the market data), ``execute_pending`` and ``track_orders``. Its jobs depend on where time comes from:

- paper (replay time): one ``pipeline`` job at every 5-minute close. It scans each configured
  timeframe whose candle closed since the last run, with each configured algorithm, then runs the
  executor, then the order tracker, in that order. A signal found at a close is therefore executed
  at that same close, and replayed hours behave like real ones;
- live environments (wall time): a scan job per timeframe at its candle close, and the executor and
  the order tracker every minute, as independent jobs.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from lib.app.context import Services
from lib.app.scheduler import CandleClose, Every, Job, Scheduler
from lib.app.wiring import executor_deps, tracker_deps
from lib.core.timeframes import candle_open_ms
from lib.exchange.market_clock import MarketClock, market_clock_for
from lib.log import log_event
from lib.services.execution.fanout import execute_pending
from lib.services.scanning.models import ScanRequest
from lib.services.scanning.scanner import scan_many
from lib.services.tracking import track_orders

logger = logging.getLogger("aitradex.pipeline")


@dataclass
class Pipeline:
    """Runs the services in pipeline order for the scheduler (and for ``/scheduler/tick``)."""

    services: Services
    timeframes: Sequence[str]
    algorithms: Sequence[str]
    market_clock: MarketClock
    last_market_ms: int | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)

    async def scan(self, timeframe: str) -> None:
        """Scan ``timeframe`` with every configured algorithm, fetching its market data once."""
        await scan_many(
            [ScanRequest(timeframe=timeframe, algorithm=algorithm) for algorithm in self.algorithms],
            db=self.services.db,
            market_access=self.services.market,
        )

    async def execute(self) -> None:
        """Fan every claimable signal out to its eligible users (``execute_pending``)."""
        deps = executor_deps(self.services, worker=f"pipeline:{uuid.uuid4().hex[:12]}")
        await execute_pending(deps, now=self.services.clock.now())

    async def track(self) -> None:
        """Follow every order that is not final (``track_orders``)."""
        await track_orders(tracker_deps(self.services), now=self.services.clock.now())

    def closed_timeframes(self, previous_ms: int | None, now_ms: int) -> list[str]:
        """Timeframes whose candle closed in (previous, now]; all of them on the first run."""
        if previous_ms is None:
            return list(self.timeframes)
        return [tf for tf in self.timeframes if candle_open_ms(tf, now_ms) > candle_open_ms(tf, previous_ms)]

    async def after_candle(self) -> None:
        """The paper pipeline: scans of every timeframe that closed, then execution, then tracking."""
        now_ms = await self.market_clock.now_ms()
        closed = self.closed_timeframes(self.last_market_ms, now_ms)
        self.last_market_ms = now_ms
        for timeframe in closed:
            await self.scan(timeframe)
        await self.execute()
        await self.track()
        self.runs.append({"market_ms": now_ms, "scanned": closed})
        log_event(logger, "pipeline_run", market_ms=now_ms, scanned=closed)


def build_scheduler(
    services: Services,
    *,
    environment: str,
    paper_url: str | None,
    timeframes: Sequence[str],
    algorithms: Sequence[str],
) -> tuple[Scheduler, Pipeline]:
    """The scheduler for this stack, with the jobs the module docstring describes."""
    clock = market_clock_for(environment, paper_url=paper_url)
    pipeline = Pipeline(services, timeframes, algorithms, clock)
    if environment == "paper":
        jobs = [Job("pipeline", CandleClose("5"), pipeline.after_candle)]
    else:
        jobs = [Job(f"scan:{tf}", CandleClose(tf), partial(pipeline.scan, tf)) for tf in timeframes]
        jobs += [
            Job("execute", Every.minutes(1), pipeline.execute),
            Job("track", Every.minutes(1), pipeline.track),
        ]
    return Scheduler(jobs, market_clock=clock), pipeline
