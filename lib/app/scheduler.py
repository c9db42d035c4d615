"""The built-in scheduler: generic async jobs at candle closes or every N seconds.

Two kinds of schedule:

- :class:`CandleClose` ``(timeframe)``: run once each time a candle of ``timeframe`` closes, in
  **market time**. On the paper exchange that is its replay clock (``GET /_paper/clock``), which moves
  only when the replay does; elsewhere it is wall time (Bybit's candles close on UTC boundaries).
- :class:`Every` ``(seconds)``: run every ``seconds`` of wall time (monotonic), e.g. the executor and the
  order tracker every minute.

:meth:`Scheduler.tick` is the whole engine and is deterministic: it reads the market clock once, and
starts every job whose boundary was crossed since the previous tick. Several crossed candles between two
ticks start the job once (a scan of the latest bar makes the older ones moot), and the first tick only
takes the baseline for candle jobs (a restart does not rescan the bar that closed before it), while
``Every`` jobs are due at once. :meth:`Scheduler.run_forever` calls ``tick`` every ``poll_s`` seconds.

Jobs never overlap themselves: a job still running when it is due again is skipped (and logged). A
failing job is logged as JSON (``lib.log.log_event``) at ERROR, with its traceback when the error is a
bug (not an ``AitradexError``), and changes nothing for the other jobs.

**One leader per tick across hosts.** A job marked ``once_per_tick`` (the order tracker, backups: work
that must happen once per tick deployment-wide) runs only on the scheduler that wins that tick's claim
in the :class:`TickElection`; the others report it as ``led_elsewhere``. The tick is named the same on
every host: a candle job's tick is the candle's open time, an ``Every`` job's tick is wall time divided
by its period (``every:<period>:<n>``). :class:`DatabaseElection` claims a ``scheduler_ticks`` row per
(job, tick) with ``insert ... on conflict do nothing`` (:mod:`lib.stores.leader_ticks`). Chosen over an
advisory lock because the row outlives the job: a lock only keeps two schedulers from running the job at
the *same time*, and one that reaches the tick after the first has finished would run it again; a row
also works through a transaction-mode pooler, where session advisory locks do not. So any number of
schedulers on one database (several functions workers, several hosts) stay correct: every scheduler
runs the jobs that are meant to run everywhere (the scanner's share, the executor), and each
``once_per_tick`` job runs once per tick, on whichever scheduler claimed it first. Without an election
(one scheduler alone) every job runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from lib.core.timeframes import TIMEFRAMES, candle_open_ms
from lib.db.session import Database
from lib.errors import AitradexError, ConfigError
from lib.exchange.market_clock import MarketClock
from lib.log import log_event
from lib.stores import leader_ticks

logger = logging.getLogger("aitradex.scheduler")

JobOutcome = Literal["ok", "failed"]
Monotonic = Callable[[], float]
WallTime = Callable[[], float]


# -- schedules and jobs ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CandleClose:
    """Due when a candle of ``timeframe`` (a Bybit interval) closes in market time."""

    timeframe: str

    def __post_init__(self) -> None:
        if self.timeframe not in TIMEFRAMES:
            raise ConfigError(f"unknown timeframe {self.timeframe!r} for a candle-close schedule")


@dataclass(frozen=True, slots=True)
class Every:
    """Due every ``seconds`` of wall time, and at the first tick."""

    seconds: float

    def __post_init__(self) -> None:
        if not self.seconds > 0:
            raise ConfigError(f"an Every schedule needs a positive period, got {self.seconds}")

    @classmethod
    def minutes(cls, minutes: float) -> Every:
        """Every ``minutes`` minutes."""
        return cls(minutes * 60.0)


Schedule = CandleClose | Every


@dataclass(frozen=True, slots=True)
class Job:
    """A named async callable and when to run it. ``run`` takes no arguments; bind them with a closure."""

    name: str
    schedule: Schedule
    run: Callable[[], Awaitable[object]]
    #: Run on one scheduler per tick across every host (the tick's leader), not on each.
    once_per_tick: bool = False


class TickElection(Protocol):
    """Decides which scheduler leads one tick of one job."""

    async def claim(self, job: str, tick: str) -> bool:
        """True for exactly one caller per (job, tick), whatever process or host it runs in."""
        ...


@dataclass(frozen=True, slots=True)
class DatabaseElection:
    """A ``scheduler_ticks`` row per (job, tick): the first insert leads (see the module docstring)."""

    db: Database
    host_id: str

    async def claim(self, job: str, tick: str) -> bool:
        """Whether this host leads ``tick`` of ``job``."""
        return await leader_ticks.claim(self.db, job, tick, self.host_id)


@dataclass(slots=True)
class _State:
    last_candle_ms: int | None = None  # open time of the candle containing market time at the last tick
    next_due: float | None = None  # monotonic time an Every job is next due
    task: asyncio.Task[JobOutcome] | None = None
    runs: int = 0
    failures: int = 0
    skips: int = 0


@dataclass(frozen=True, slots=True)
class TickReport:
    """What one tick did: jobs started, jobs skipped because still running, and (when waited) outcomes."""

    market_ms: int | None
    started: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    outcomes: dict[str, JobOutcome] = field(default_factory=dict)
    #: ``once_per_tick`` jobs that were due but whose tick another scheduler leads.
    led_elsewhere: tuple[str, ...] = ()


class Scheduler:
    """Runs :class:`Job` s on their schedules; see the module docstring.

    ``monotonic`` is the clock of ``Every`` schedules and ``wall`` names their ticks across hosts (both
    injectable: tests pass fakes). The market clock is only read when at least one candle job exists.
    ``election`` decides the leader of each tick of the ``once_per_tick`` jobs (None: this scheduler
    is alone and leads every tick).
    """

    def __init__(
        self,
        jobs: Sequence[Job] = (),
        *,
        market_clock: MarketClock,
        monotonic: Monotonic = time.monotonic,
        wall: WallTime = time.time,
        election: TickElection | None = None,
    ) -> None:
        self._market_clock = market_clock
        self._monotonic = monotonic
        self._wall = wall
        self._election = election
        self._jobs: dict[str, Job] = {}
        self._state: dict[str, _State] = {}
        for job in jobs:
            self.add(job)

    @property
    def jobs(self) -> tuple[Job, ...]:
        """The registered jobs, in the order they were added."""
        return tuple(self._jobs.values())

    def add(self, job: Job) -> None:
        """Register a job (names are unique)."""
        if job.name in self._jobs:
            raise ConfigError(f"a job named {job.name!r} is already scheduled")
        self._jobs[job.name] = job
        self._state[job.name] = _State()

    def running(self) -> tuple[str, ...]:
        """Names of jobs whose last run has not finished yet."""
        return tuple(n for n, s in self._state.items() if s.task is not None and not s.task.done())

    def stats(self, name: str) -> tuple[int, int, int]:
        """``(runs started, failures, skips)`` of one job so far."""
        state = self._state[name]
        return state.runs, state.failures, state.skips

    async def tick(self, *, wait: bool = True) -> TickReport:
        """Start every job whose boundary was crossed since the last tick.

        With ``wait`` (the default, what a demo or a test wants) the tick returns when the jobs it
        started have finished, with their outcomes; ``run_forever`` does not wait, so a long scan never
        delays the executor.
        """
        market_ms = await self._read_market_clock()
        mono = self._monotonic()
        due: list[str] = []
        for name, job in self._jobs.items():
            if self._is_due(job, self._state[name], market_ms, mono):
                due.append(name)
        started: list[str] = []
        skipped: list[str] = []
        elsewhere: list[str] = []
        for name in due:
            state = self._state[name]
            if state.task is not None and not state.task.done():
                state.skips += 1
                skipped.append(name)
                log_event(logger, "job_skipped", level=logging.WARNING, job=name, reason="still running")
                continue
            if not await self._leads(self._jobs[name], market_ms):
                elsewhere.append(name)
                continue
            state.runs += 1
            state.task = asyncio.create_task(self._run(self._jobs[name], state), name=f"job:{name}")
            started.append(name)
        outcomes: dict[str, JobOutcome] = {}
        if wait and started:
            tasks = [task for n in started if (task := self._state[n].task) is not None]
            results = await asyncio.gather(*tasks)
            outcomes = dict(zip(started, results, strict=True))
        return TickReport(market_ms, tuple(started), tuple(skipped), outcomes, tuple(elsewhere))

    def tick_name(self, job: Job, market_ms: int | None) -> str:
        """The name every host gives the tick of ``job`` now: the candle's open, or the wall period."""
        schedule = job.schedule
        if isinstance(schedule, CandleClose):
            assert market_ms is not None  # a candle job is due only with a market time
            return f"candle:{schedule.timeframe}:{candle_open_ms(schedule.timeframe, market_ms)}"
        return f"every:{schedule.seconds:g}:{int(self._wall() // schedule.seconds)}"

    async def _leads(self, job: Job, market_ms: int | None) -> bool:
        if not job.once_per_tick or self._election is None:
            return True
        tick = self.tick_name(job, market_ms)
        try:
            won = await self._election.claim(job.name, tick)
        except Exception as exc:
            # No verdict, no run: running it anyway could run it twice; the next tick asks again.
            log_event(
                logger, "election_failed", level=logging.ERROR, job=job.name, error_type=type(exc).__name__
            )
            return False
        if not won:
            log_event(logger, "job_led_elsewhere", job=job.name, tick=tick)
        return won

    async def _read_market_clock(self) -> int | None:
        if not any(isinstance(job.schedule, CandleClose) for job in self._jobs.values()):
            return None
        try:
            return await self._market_clock.now_ms()
        except AitradexError as exc:
            # No market time, no candle boundary: candle jobs wait for the next tick; Every jobs still run.
            log_event(
                logger, "market_clock_unavailable", level=logging.WARNING, code=exc.code, error=exc.message
            )
            return None

    def _is_due(self, job: Job, state: _State, market_ms: int | None, mono: float) -> bool:
        schedule = job.schedule
        if isinstance(schedule, Every):
            if state.next_due is None or mono >= state.next_due:
                # Anchored on the previous due time, so a slow poll does not drift the schedule; after a
                # long stall (more than a period behind) it re-anchors instead of firing a burst.
                base = (
                    mono
                    if state.next_due is None or mono - state.next_due >= schedule.seconds
                    else state.next_due
                )
                state.next_due = base + schedule.seconds
                return True
            return False
        if market_ms is None:
            return False
        candle = candle_open_ms(schedule.timeframe, market_ms)
        previous, state.last_candle_ms = state.last_candle_ms, candle
        if previous is None or candle <= previous:
            return False
        missed = 0
        probe = candle_open_ms(schedule.timeframe, candle - 1)
        while probe > previous and missed < 1000:
            missed += 1
            probe = candle_open_ms(schedule.timeframe, probe - 1)
        if missed:
            log_event(logger, "candles_coalesced", job=job.name, timeframe=schedule.timeframe, missed=missed)
        return True

    async def _run(self, job: Job, state: _State) -> JobOutcome:
        started = time.perf_counter()
        log_event(logger, "job_started", job=job.name)
        try:
            await job.run()
        except Exception as exc:
            # Any failure, bug or not, stays inside this job: the scheduler and the other jobs go on.
            state.failures += 1
            fields: dict[str, object] = {"job": job.name, "error_type": type(exc).__name__}
            # A deliberate error says what went wrong in its code and message; anything else is a bug,
            # and its traceback is what tells where.
            if isinstance(exc, AitradexError):
                fields |= {"code": exc.code, "error": exc.message}
            log_event(
                logger,
                "job_failed",
                level=logging.ERROR,
                exc_info=None if isinstance(exc, AitradexError) else exc,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
                **fields,
            )
            return "failed"
        log_event(
            logger, "job_finished", job=job.name, duration_ms=round((time.perf_counter() - started) * 1000, 1)
        )
        return "ok"

    async def run_forever(self, stop: asyncio.Event, poll_s: float = 1.0, grace_s: float = 30.0) -> None:
        """Tick every ``poll_s`` seconds until ``stop`` is set.

        Then give running jobs ``grace_s`` seconds to finish and cancel the rest, so a hung job cannot
        hold up a shutdown.
        """
        log_event(logger, "scheduler_started", jobs=[job.name for job in self._jobs.values()], poll_s=poll_s)
        while not stop.is_set():
            await self.tick(wait=False)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=poll_s)
        tasks = [s.task for s in self._state.values() if s.task is not None and not s.task.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
                log_event(
                    logger, "jobs_cancelled", level=logging.WARNING, jobs=[t.get_name() for t in pending]
                )
        log_event(logger, "scheduler_stopped")
