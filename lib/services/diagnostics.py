"""System health: each check answers ``healthy``, ``degraded`` or ``down``, with its latency and why.

The overall status is the worst of the checks. A check that has nothing to judge yet (no scan has
ever run, the instruments cache was never filled) says ``degraded`` with ``cold=True``: that is true
right after a rebuild from nothing, and the rebuild accepts it, while an operator still sees it.

Checks:

- ``database``: connectivity (as service_role) and every shipped migration applied;
- ``exchange``: ``/v5/market/time`` answers, and the clock skew against it;
- ``functions``: every registered function imports and answers its ``status`` action;
- ``scans``: the newest finished scan per scheduled timeframe, against that timeframe's period;
- ``instruments_cache``: the age of the cached instrument filters;
- ``queue``: signals waiting for execution, and how long the oldest has waited;
- ``key_versions``: every stored API key's master key version is configured (``lib.services.key_health``);
- ``trading``: whether the operator kill switch is on, why, by whom and since when. A halted system is
  ``healthy``: halting is a decision, not a fault, and every part still works (exits, tracking, scans).
  Turning it ``degraded`` would make a rebuild fail and page someone for what they chose; instead the
  report carries ``trading_halted``, which diagnostics shows to anyone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from lib.core.timeframes import nominal_interval_ms
from lib.crypto import KeyVault
from lib.db import migrate
from lib.db.session import Database
from lib.errors import AitradexError
from lib.exchange.access import MarketAccess
from lib.exchange.market import RetryPolicy
from lib.services.scanning.settings import load_scan_settings
from lib.stores import instruments_cache, scan_runs, schema_migrations, signals
from lib.stores import settings as settings_store

Status = Literal["healthy", "degraded", "down"]
_RANK: dict[str, int] = {"healthy": 0, "degraded": 1, "down": 2}
MAX_CLOCK_SKEW_MS = 5_000
QUEUE_MAX_WAIT_S = 5 * 60
QUEUE_MAX_DEPTH = 5_000
CHECK_TIMEOUT_S = 10.0
#: The share of its TTL after which an anonymous report is refreshed in the background.
REFRESH_AHEAD = 0.8


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's verdict."""

    name: str
    status: Status
    latency_ms: float
    message: str
    cold: bool = False
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HealthReport:
    """Every check, and the worst status among them."""

    status: Status
    checked_at: datetime
    checks: tuple[CheckResult, ...]
    trading_halted: bool = False

    @property
    def healthy_but_cold(self) -> bool:
        """True when every non-healthy check only lacks history (what a fresh rebuild looks like)."""
        return all(c.status == "healthy" or (c.status == "degraded" and c.cold) for c in self.checks)


def worst(statuses: Sequence[str]) -> Status:
    """The most severe of ``statuses`` (``healthy`` for none)."""
    ordered: tuple[Status, ...] = ("healthy", "degraded", "down")
    return ordered[max((_RANK[s] for s in statuses), default=0)]


async def _timed(name: str, check: Awaitable[CheckResult]) -> CheckResult:
    started = time.perf_counter()
    try:
        result = await asyncio.wait_for(check, CHECK_TIMEOUT_S)
    except TimeoutError:
        result = CheckResult(name, "down", 0, f"no answer within {CHECK_TIMEOUT_S:.0f} s")
    except AitradexError as exc:
        result = CheckResult(name, "down", 0, exc.message, details={"code": exc.code})
    except Exception as exc:  # a check must report, never crash the report
        result = CheckResult(name, "down", 0, f"check failed: {type(exc).__name__}")
    latency = round((time.perf_counter() - started) * 1000, 2)
    return CheckResult(result.name, result.status, latency, result.message, result.cold, result.details)


async def check_database(db: Database) -> CheckResult:
    """Connectivity as service_role, and whether every shipped migration is applied."""
    applied = await schema_migrations.applied_checksums(db)
    shipped = migrate.discover()
    pending = [m.path.name for m in shipped if m.version not in applied]
    edited = [m.path.name for m in shipped if m.version in applied and applied[m.version] != m.checksum]
    if edited:
        return CheckResult(
            "database",
            "down",
            0,
            "applied migrations differ from the shipped files",
            details={"edited": edited},
        )
    if pending:
        return CheckResult(
            "database", "degraded", 0, f"{len(pending)} migration(s) pending", details={"pending": pending}
        )
    return CheckResult("database", "healthy", 0, f"connected; {len(applied)} migrations applied")


async def check_exchange(market: MarketAccess, environment: str, now_ms: Callable[[], int]) -> CheckResult:
    """The exchange's clock answers, and ours agrees with it."""
    async with market.client(environment, retry=RetryPolicy(max_attempts=1), timeout_s=5.0) as client:
        before = now_ms()
        server = await client.server_time()
        after = now_ms()
    skew = server.epoch_ms - (before + after) // 2
    details = {"environment": environment, "clock_skew_ms": skew}
    if environment != "paper" and abs(skew) > MAX_CLOCK_SKEW_MS:
        return CheckResult(
            "exchange", "degraded", 0, f"clock skew {skew} ms exceeds {MAX_CLOCK_SKEW_MS} ms", details=details
        )
    # The paper exchange replays history, so its clock is the replay time: skew is informative only.
    return CheckResult("exchange", "healthy", 0, f"{environment} answers", details=details)


async def check_functions(status_calls: Mapping[str, Callable[[], Awaitable[Any]]]) -> CheckResult:
    """Every registered function answers its ``status`` action."""
    failing: dict[str, str] = {}
    for name, call in status_calls.items():
        try:
            await call()
        except Exception as exc:
            failing[name] = type(exc).__name__
    if failing:
        return CheckResult(
            "functions",
            "degraded",
            0,
            f"{len(failing)} function(s) fail their status",
            details={"failing": failing},
        )
    return CheckResult(
        "functions",
        "healthy",
        0,
        f"{len(status_calls)} functions answer",
        details={"functions": sorted(status_calls)},
    )


async def check_scans(db: Database, now: datetime, market_now: datetime | None = None) -> CheckResult:
    """The newest scanned bar per scheduled timeframe closed less than two of its candles ago.

    Judged in market time: on the paper exchange, a replay that stands still is not a stale scanner.
    Runs recorded before ``scan_runs.bar_time`` existed say nothing about it (no bar: not yet scanned).
    """
    market_now = market_now or now
    timeframes = (await load_scan_settings(db)).timeframes
    by_tf = await scan_runs.newest_bar_by_timeframe(db)
    ages = {
        tf: round((market_now - by_tf[tf] - timedelta(milliseconds=nominal_interval_ms(tf))).total_seconds())
        for tf in timeframes
        if tf in by_tf
    }
    never = [tf for tf in timeframes if tf not in ages]
    stale = [tf for tf, age in ages.items() if age > 2 * nominal_interval_ms(tf) / 1000 + 120]
    details = {"age_s": ages, "never_scanned": never, "stale": stale}
    if stale:
        return CheckResult(
            "scans", "degraded", 0, f"stale scans for timeframe(s) {', '.join(stale)}", details=details
        )
    if never:
        return CheckResult(
            "scans",
            "degraded",
            0,
            f"no scan yet for timeframe(s) {', '.join(never)}",
            cold=True,
            details=details,
        )
    return CheckResult("scans", "healthy", 0, "every scheduled timeframe scanned on time", details=details)


async def check_instruments_cache(db: Database, now: datetime) -> CheckResult:
    """The age of the cached instrument filters.

    The cache is refreshed on demand by whoever finds it expired, so an expired entry on a quiet
    system is normal: it is reported, not held against the system's health.
    """
    rows = await instruments_cache.row_ages(db)
    if not rows:
        return CheckResult("instruments_cache", "degraded", 0, "never filled yet", cold=True)
    ages = {r.category: round((now - r.fetched_at).total_seconds()) for r in rows}
    expired = sorted(r.category for r in rows if r.expires_at <= now)
    message = "fresh" if not expired else f"expired for {', '.join(expired)}; refreshed on next use"
    return CheckResult(
        "instruments_cache", "healthy", 0, message, details={"age_s": ages, "expired": expired}
    )


async def check_queue(db: Database, now: datetime, market_now: datetime | None = None) -> CheckResult:
    """Signals waiting for execution (unexpired in market time): how many, and the oldest's wall wait."""
    depth, oldest = await signals.queue_depth(db, market_now or now)
    wait = round((now - oldest).total_seconds()) if oldest else 0
    details = {"depth": depth, "oldest_wait_s": wait}
    if depth > QUEUE_MAX_DEPTH or wait > QUEUE_MAX_WAIT_S:
        return CheckResult(
            "queue", "degraded", 0, f"{depth} pending, oldest waiting {wait} s", details=details
        )
    return CheckResult("queue", "healthy", 0, f"{depth} pending", details=details)


async def check_trading(db: Database) -> CheckResult:
    """The kill switch: healthy either way (see the module docstring), with the halt's facts."""
    state = await settings_store.trading_halted(db)
    details = {
        "trading_halted": state.halted,
        "reason": state.reason,
        "by": state.by,
        "since": state.at.isoformat() if state.at is not None else None,
    }
    if not state.halted:
        return CheckResult("trading", "healthy", 0, "trading enabled", details=details)
    why = f": {state.reason}" if state.reason else ""
    return CheckResult("trading", "healthy", 0, f"trading halted by the operator{why}", details=details)


async def run_checks(
    *,
    db: Database,
    market: MarketAccess,
    environment: str | None,
    now: datetime,
    status_calls: Mapping[str, Callable[[], Awaitable[Any]]],
    market_now: Callable[[], Awaitable[datetime]] | None = None,
    vault: KeyVault | None = None,
) -> HealthReport:
    """Run every check concurrently and combine them (scans and queue in market time).

    ``vault``: the process's key vault, for ``key_versions`` (without it, the keys are read from their
    source; see :mod:`lib.services.key_health`).
    """
    # Imported here: key_health builds its verdict on this module's CheckResult.
    from lib.services.key_health import check_key_versions

    try:
        env = environment or await settings_store.environment(db)
    except AitradexError:
        env = "paper"  # the database check below reports why; the exchange is still worth probing
    try:
        market_time = await market_now() if market_now is not None else now
    except AitradexError:
        market_time = now  # the exchange check below reports the clock's trouble
    checks = await asyncio.gather(
        _timed("database", check_database(db)),
        _timed("exchange", check_exchange(market, env, lambda: int(time.time() * 1000))),
        _timed("functions", check_functions(status_calls)),
        _timed("scans", check_scans(db, now, market_time)),
        _timed("instruments_cache", check_instruments_cache(db, now)),
        _timed("queue", check_queue(db, now, market_time)),
        _timed("key_versions", check_key_versions(db, vault)),
        _timed("trading", check_trading(db)),
    )
    halted = any(c.name == "trading" and c.details.get("trading_halted") is True for c in checks)
    return HealthReport(
        status=worst([c.status for c in checks]), checked_at=now, checks=tuple(checks), trading_halted=halted
    )


class HealthCache:
    """Health runs shared among concurrent callers: one run at a time, whoever asks.

    - :meth:`get` (anonymous callers): a report whose run *started* less than ``ttl_s`` ago is reused.
      Anonymous health checks are public, so without this every anonymous request would run every
      check: an easy way to overload the system. Once a report is 80 % of its TTL old, the next caller
      starts a new run in the background and still gets the cached report, so a steady stream of
      callers never waits for a run (unless a run takes longer than the remaining fifth).
    - :meth:`fresh` (the service role): never an old report, but callers that arrive while a run is
      under way share that run (single flight) instead of starting their own. Measured before: 200
      concurrent service-role calls took 8.4 s each, every one running every check.

    A caller that gives up (its request is cancelled) does not cancel the run the others wait for.

    One cache per process, on purpose: with several worker processes (``lib.http.workers``) each keeps
    its own, and no shared copy is needed, because the bound holds per answer. A report is served only
    while its run started less than ``ttl_s`` ago, and a run reads the state after it starts; so a
    change made at time T is in every answer given after T + ``ttl_s``, whichever worker gives it, and
    two workers' answers can disagree only about changes younger than ``ttl_s``
    (``tests/functions/test_workers.py``).
    """

    def __init__(self, ttl_s: float = 5.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._report: HealthReport | None = None
        self._at = 0.0
        self._running: asyncio.Future[HealthReport] | None = None

    async def get(self, run: Callable[[], Awaitable[HealthReport]]) -> HealthReport:
        """The cached report if fresh (refreshed ahead in the background), else a run shared by all."""
        if self._report is not None:
            age = self._clock() - self._at
            if age < self.ttl_s:
                if age >= self.ttl_s * REFRESH_AHEAD and self._running is None:
                    self._running = asyncio.ensure_future(self._run(run))
                    # Nobody awaits it: its failure is seen by the next caller that needs a run.
                    self._running.add_done_callback(lambda f: f.cancelled() or f.exception())
                return self._report
        return await self.fresh(run)

    async def fresh(self, run: Callable[[], Awaitable[HealthReport]]) -> HealthReport:
        """The report of the run under way, or of a new run if none is: never one finished before the call."""
        if self._running is None:
            self._running = asyncio.ensure_future(self._run(run))
        return await asyncio.shield(self._running)

    async def _run(self, run: Callable[[], Awaitable[HealthReport]]) -> HealthReport:
        started = self._clock()
        try:
            report = await run()
            # Its age counts from the start: everything it read, it read after this moment.
            if started >= self._at:
                self._report, self._at = report, started
            return report
        finally:
            self._running = None
