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

Several schedulers on one database (functions workers, hosts) share the work: each is a scanner host
with a lease (``lib.services.scanning.sharded``), so a scan job scans this host's share of the bar and
then sweeps until every bucket of the bar is scanned by someone; the executor runs on every host (the
signal queue's claims keep it exactly once); the order tracker runs only on the tick's leader
(``once_per_tick``, :class:`~lib.app.scheduler.DatabaseElection`), in paper mode too.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from lib.app.context import Services
from lib.app.scheduler import CandleClose, DatabaseElection, Every, Job, Scheduler, TickElection
from lib.app.wiring import executor_deps, tracker_deps
from lib.core.timeframes import candle_open_ms
from lib.exchange.market_clock import MarketClock, market_clock_for
from lib.log import log_event
from lib.services.execution.fanout import execute_pending
from lib.services.scanning.settings import load_scan_settings
from lib.services.scanning.sharded import ShardHost, keep_lease, market_scope, scan_bar
from lib.services.tracking import track_orders
from lib.stores import scan_shards

logger = logging.getLogger("aitradex.pipeline")


@dataclass
class Pipeline:
    """Runs the services in pipeline order for the scheduler (and for ``/scheduler/tick``)."""

    services: Services
    timeframes: Sequence[str]
    algorithms: Sequence[str]
    market_clock: MarketClock
    host: ShardHost
    #: Who leads the once-per-tick steps (None: this pipeline is alone).
    election: TickElection | None = None
    last_market_ms: int | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)

    async def scan(self, timeframe: str) -> None:
        """This host's share of ``timeframe``'s newest closed bar, every configured algorithm from one
        fetch; returns once every bucket of the bar is scanned (by this host or another)."""
        db = self.services.db
        settings = await load_scan_settings(db)
        clock = market_clock_for(settings.environment, paper_url=self.services.market.paper_url)
        async with self.services.market.client(settings.environment) as market:
            await scan_bar(
                self.host, timeframe, self.algorithms, db=db, market=market, clock=clock, settings=settings
            )

    async def renew_lease(self) -> None:
        """Keep this host's scanner lease between scans, so the others count it in their shares."""
        host = self.host
        await scan_shards.renew_lease(
            self.services.db, host.host_id, host.scope, host.source_address, host.lease_s
        )

    async def drop_lease(self) -> None:
        """End this host's scanner lease (a clean stop): the other hosts take its share at once."""
        await scan_shards.drop_lease(self.services.db, self.host.host_id)

    async def leads(self, job: str, tick: str) -> bool:
        """Whether this pipeline leads ``tick`` of the once-per-tick step ``job``."""
        return self.election is None or await self.election.claim(job, tick)

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
        if closed:
            # One lease across the scans of this close, so a long one cannot let it lapse mid-way.
            async with keep_lease(self.services.db, self.host):
                for timeframe in closed:
                    await self.scan(timeframe)
        await self.execute()
        # The tick is named by the market too: several paper exchanges may replay the same candle.
        tracked = await self.leads("track", f"{self.host.scope}|candle:5:{candle_open_ms('5', now_ms)}")
        if tracked:
            await self.track()
        self.runs.append({"market_ms": now_ms, "scanned": closed, "tracked": tracked})
        log_event(logger, "pipeline_run", market_ms=now_ms, scanned=closed, tracked=tracked)


def build_scheduler(
    services: Services,
    *,
    environment: str,
    paper_url: str | None,
    timeframes: Sequence[str],
    algorithms: Sequence[str],
    host: ShardHost | None = None,
    election: TickElection | None = None,
) -> tuple[Scheduler, Pipeline]:
    """The scheduler for this stack, with the jobs the module docstring describes.

    ``host`` is this process's scanner host (default: a new id, the configured source address);
    ``election`` defaults to :class:`DatabaseElection` on the services' database, so any number of these
    schedulers on one database run each once-per-tick job once per tick.
    """
    clock = market_clock_for(environment, paper_url=paper_url)
    source_address = services.settings.exchange.source_address
    host = host or ShardHost(market_scope(environment, paper_url), source_address=source_address)
    election = election or DatabaseElection(services.db, host.host_id)
    pipeline = Pipeline(services, timeframes, algorithms, clock, host=host, election=election)
    if environment == "paper":
        jobs = [Job("pipeline", CandleClose("5"), pipeline.after_candle)]
    else:
        jobs = [Job(f"scan:{tf}", CandleClose(tf), partial(pipeline.scan, tf)) for tf in timeframes]
        jobs += [
            Job("lease", Every(host.lease_s / 3), pipeline.renew_lease),
            Job("execute", Every.minutes(1), pipeline.execute),
            Job("track", Every.minutes(1), pipeline.track, once_per_tick=True),
        ]
    return Scheduler(jobs, market_clock=clock, election=election), pipeline
