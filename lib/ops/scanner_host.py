"""A scanner host as its own process: ``aitradex scanner --loop --source-address 127.0.0.N``.

The process holds a lease in ``scanner_hosts`` for as long as it runs, sends every exchange request from
its source address through its own IP rate limiter (``exchange.rate_limit_share`` of Bybit's 600 per
5 s), and polls the market clock every ``poll_s`` seconds. Each newest closed bar of each configured
timeframe stays pending until every bucket of it is scanned (by this host or another). A new bar gets a
pass at once (:func:`lib.services.scanning.sharded.scan_pass`: it claims and scans this host's share),
and then, while other hosts' buckets are unfinished, a pass every ``sweep_s`` seconds, which takes over
what a host whose lease has expired left unfinished. (Sweeping faster gains nothing before a lease can
have expired, and every pass is a few queries.) At most
``PENDING_PER_TIMEFRAME`` bars per timeframe are followed: a bar left incomplete that long is logged and
dropped.

SIGTERM or SIGINT (or ``max_seconds``) stops it after the pass under way; its lease is then dropped, so
the other hosts take its share on their next pass instead of after the lease expires. Without
``loop`` it scans the current bars until they are complete, and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace

from lib.config import Settings
from lib.db.session import Database
from lib.db.target import database_target
from lib.errors import AitradexError, ConfigError
from lib.exchange.access import MarketAccess
from lib.exchange.market import MarketDataClient
from lib.exchange.market_clock import market_clock_for
from lib.exchange.rate_limit import RateLimiter
from lib.local_state import recorded_paper_url
from lib.log import log_event
from lib.services.scanning.settings import ScanSettings, load_scan_settings
from lib.services.scanning.sharded import (
    PassResult,
    ShardHost,
    closed_bar_ms,
    keep_lease,
    market_scope,
    scan_pass,
)

logger = logging.getLogger("aitradex.scanner_host")

PENDING_PER_TIMEFRAME = 3


@dataclass
class HostReport:
    """What a host process did: its passes that scanned something, and its bars completed."""

    host_id: str
    passes: list[PassResult] = field(default_factory=list)
    completed: int = 0

    @property
    def symbols(self) -> int:
        """Symbols this host scanned, over every bar."""
        return sum(p.symbols for p in self.passes)


async def run_host(
    settings: Settings,
    host: ShardHost,
    *,
    stop: asyncio.Event,
    paper_url: str | None = None,
    timeframes: Sequence[str] | None = None,
    algorithms: Sequence[str] | None = None,
    loop: bool = True,
    poll_s: float = 0.5,
    sweep_s: float = 1.0,
    max_seconds: float | None = None,
) -> HostReport:
    """Run one scanner host until ``stop`` (or ``max_seconds``; without ``loop``, until the current bars
    of every timeframe are complete). ``timeframes`` and ``algorithms`` default to the settings'."""
    report = HostReport(host.host_id)
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    async with database_target(settings).database(max_size=4) as db:
        scan_settings = await load_scan_settings(db)
        env = scan_settings.environment
        paper_url = paper_url or recorded_paper_url(settings.state_dir, settings.database.db_name)
        if env == "paper" and not paper_url:
            raise ConfigError(
                "no paper exchange is running for this database: give --paper-url or start the stack"
            )
        access = MarketAccess(
            paper_url=paper_url,
            limiter=RateLimiter(scan_settings.rate_limit_share),
            source_address=host.source_address,
        )
        clock = market_clock_for(env, paper_url=paper_url)
        if not host.scope:
            host = replace(host, scope=market_scope(env, paper_url))
        # (timeframe, bar open ms) -> the market time the bar was first seen at (its passes judge by it).
        pending: dict[tuple[str, int], int] = {}
        next_pass: dict[tuple[str, int], float] = {}  # monotonic time of a pending bar's next pass
        done: set[tuple[str, int]] = set()
        async with keep_lease(db, host, drop=True), access.client(env) as market:
            log_event(logger, "scanner_host_started", host=host.host_id, source_address=host.source_address)
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                now_ms = await clock.now_ms()
                fresh = False
                for tf in timeframes or scan_settings.timeframes:
                    key = (tf, closed_bar_ms(tf, now_ms))
                    if key not in done and key not in pending:
                        pending[key], fresh = now_ms, True
                if fresh:
                    scan_settings = await load_scan_settings(db)
                    _trim(pending, done)
                for key, at_ms in sorted(pending.items()):
                    if time.monotonic() < next_pass.get(key, 0.0):
                        continue
                    finished = await _pass(db, market, host, key, at_ms, scan_settings, algorithms, report)
                    next_pass[key] = time.monotonic() + sweep_s
                    if finished:
                        del pending[key]
                        done.add(key)
                        report.completed += 1
                next_pass = {k: t for k, t in next_pass.items() if k in pending}
                if not loop and not pending:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=poll_s)
    log_event(logger, "scanner_host_stopped", host=host.host_id, symbols=report.symbols)
    return report


async def _pass(
    db: Database,
    market: MarketDataClient,
    host: ShardHost,
    key: tuple[str, int],
    at_ms: int,
    settings: ScanSettings,
    algorithms: Sequence[str] | None,
    report: HostReport,
) -> bool:
    try:
        result = await scan_pass(
            host,
            key[0],
            algorithms or settings.algorithms,
            db=db,
            market=market,
            now_ms=at_ms,
            settings=settings,
        )
    except Exception as exc:
        # This pass failed (its claims were released); the next poll tries the bar again. A host must
        # outlive a database or exchange hiccup; a bug is logged with its traceback.
        known = isinstance(exc, AitradexError)
        log_event(
            logger,
            "scan_pass_failed",
            level=logging.WARNING if known else logging.ERROR,
            exc_info=None if known else exc,
            timeframe=key[0],
            error_type=type(exc).__name__,
            code=exc.code if isinstance(exc, AitradexError) else None,
        )
        return False
    if result.scanned_buckets:
        report.passes.append(result)
    return result.complete


def _trim(pending: dict[tuple[str, int], int], done: set[tuple[str, int]]) -> None:
    for tf in {k[0] for k in pending}:
        bars = sorted(k for k in pending if k[0] == tf)
        for key in bars[:-PENDING_PER_TIMEFRAME]:
            log_event(logger, "scan_bar_abandoned", level=logging.WARNING, timeframe=tf, bar_ms=key[1])
            del pending[key]
    for tf in {k[0] for k in done}:
        for key in sorted(k for k in done if k[0] == tf)[:-PENDING_PER_TIMEFRAME]:
            done.discard(key)


def run_host_process(run: Callable[[asyncio.Event], Awaitable[HostReport]]) -> HostReport:
    """``run(stop)`` (a :func:`run_host` call) in this process until SIGTERM or SIGINT sets ``stop``
    (the ``aitradex scanner`` command)."""

    async def main() -> HostReport:
        stop = asyncio.Event()
        running = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            running.add_signal_handler(signum, stop.set)
        return await run(stop)

    return asyncio.run(main())
