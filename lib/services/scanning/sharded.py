"""Scans sharded across scanner hosts: every bar of every timeframe scanned exactly once, by claims.

A scanner host is a process (group) with its own source address and IP budget. It holds a lease in
``scanner_hosts`` (:func:`keep_lease`) and, for the newest closed bar of a timeframe, runs passes
(:func:`scan_pass`):

1. the bar's universe: the one recorded in ``scan_universes`` for (scope, timeframe, bar); if none
   is, the host that owns the universe (rendezvous owner of bucket -1 among the live hosts) reads the
   tickers and records it, first insert wins. Every host then splits the same list;
2. its share: the non-empty buckets it owns among the live hosts (:mod:`.sharding`);
3. claims: an ``insert ... on conflict do nothing`` per bucket, plus a takeover of any unfinished claim,
   among those buckets, whose host's lease has expired (:func:`lib.stores.scan_shards.claim`). Only the
   buckets won are scanned: one ``run_scans`` over their symbols (every algorithm from one fetch, one
   ``scan_runs`` row per algorithm, so a row is one host's share of one tick), with the market clock
   fixed at the pass's reading, so the bar scored is the bar claimed even when a candle closes during
   the fetch;
4. ``finished_at`` on the claims (by their host only). A scan that fails as a whole releases its
   claims, so the next pass retries them.

Why this holds by construction: a (timeframe, bar, bucket) row exists at most once, and only the host
whose statement created it, or took it over from an expired lease, fetches its klines. Hosts that
disagree for a moment about who is live may both think a bucket is another's (nobody claims it this
pass; the next pass, with a fresh view, does) or both think it is theirs (one insert wins; the other
gets nothing back). A host that dies mid-scan leaves unfinished claims; once its lease expires, the
host that now owns those buckets takes them over on its next pass. The one assumption is the lease's:
a host that stalls for longer than its lease (``lease_s``, renewed every third of it) while scanning can
be taken over and then finish too; its ``finish`` finds the claim gone, it logs ``scan_claim_lost``, and
the signals table's unique key keeps its signals from being stored twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from lib.core.timeframes import candle_open_ms, previous_open_ms
from lib.db.session import Database
from lib.exchange.market import MarketDataClient
from lib.exchange.market_clock import MarketClock
from lib.failpoints import failpoint
from lib.log import log_event
from lib.services.scanning.candidates import utc
from lib.services.scanning.models import ScanRequest, ScanResult
from lib.services.scanning.scanner import Scorer, run_scans
from lib.services.scanning.settings import ScanSettings
from lib.services.scanning.sharding import BUCKETS, by_bucket, owner, share_of
from lib.services.scanning.snapshot import DEFAULT_CONCURRENCY, universe
from lib.stores import scan_shards
from lib.stores.scan_shards import Bar, BarUniverse

logger = logging.getLogger("aitradex.scanner")

#: Seconds a lease lasts without renewal: how long a dead host's share waits to be taken over.
DEFAULT_LEASE_S = 10.0
#: The rendezvous "bucket" whose owner reads the tickers and records a bar's universe.
UNIVERSE_BUCKET = -1


def default_host_id() -> str:
    """A host id unique to this process: machine name, pid and a random suffix (a restart is a new host)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def market_scope(environment: str, paper_url: str | None) -> str:
    """The market a deployment's hosts share: the exchange environment, or ``paper:<url>`` on paper
    (each paper exchange is a market of its own, though several may replay the same bars)."""
    return f"paper:{paper_url}" if environment == "paper" else environment


@dataclass(frozen=True, slots=True)
class ShardHost:
    """One scanner host: its id, the market it scans (``scope``, see :func:`market_scope`), the source
    address its exchange calls leave from, and its lease length."""

    scope: str
    host_id: str = field(default_factory=default_host_id)
    source_address: str | None = None
    lease_s: float = DEFAULT_LEASE_S


@dataclass(frozen=True, slots=True)
class FixedClock:
    """A market clock stopped at one reading: every part of a pass judges candles at the same instant."""

    at_ms: int

    async def now_ms(self) -> int:
        """The reading."""
        return self.at_ms


def closed_bar_ms(timeframe: str, now_ms: int) -> int:
    """Open time of the newest bar of ``timeframe`` closed at ``now_ms``: what a scan then scores."""
    return previous_open_ms(timeframe, candle_open_ms(timeframe, now_ms))


@dataclass(frozen=True, slots=True)
class PassResult:
    """What one pass did for one (timeframe, bar), and how far the bar is across all hosts."""

    timeframe: str
    bar_time: datetime
    #: Whether the bar's universe is recorded (nothing is claimed before).
    recorded: bool
    #: Non-empty buckets of the bar's universe.
    buckets: int
    #: The buckets this pass claimed and scanned.
    scanned_buckets: tuple[int, ...]
    symbols: int
    results: tuple[ScanResult, ...]
    claimed: int
    finished: int

    @property
    def complete(self) -> bool:
        """Every non-empty bucket of the bar has been scanned (by some host)."""
        return self.recorded and self.finished >= self.buckets


async def bar_universe(
    db: Database,
    market: MarketDataClient,
    settings: ScanSettings,
    bar: Bar,
    host_id: str,
    hosts: Sequence[str],
) -> BarUniverse | None:
    """The bar's recorded universe; recorded now when this host owns the universe and none is yet."""
    recorded = await scan_shards.shared_universe(db, bar)
    if recorded is not None or owner(UNIVERSE_BUCKET, hosts) != host_id:
        return recorded
    symbols = await universe(market, settings, ScanRequest(timeframe=bar.timeframe))
    return await scan_shards.put_universe(db, bar, BarUniverse(BUCKETS, symbols), host_id)


async def scan_pass(
    host: ShardHost,
    timeframe: str,
    algorithms: Sequence[str],
    *,
    db: Database,
    market: MarketDataClient,
    now_ms: int,
    settings: ScanSettings,
    scorer: Scorer | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> PassResult:
    """One pass over the bar closed at ``now_ms``: claim this host's unscanned share, scan it, finish it.

    The caller holds the host's lease (:func:`keep_lease`). Raises what fails the scan as a whole, after
    releasing the claims it took.
    """
    bar_time = utc(closed_bar_ms(timeframe, now_ms))
    bar = Bar(host.scope, timeframe, bar_time)
    hosts = await scan_shards.live_hosts(db, host.scope)
    if host.host_id not in hosts:
        # A lapsed lease owns nothing: claiming now could take work a live host is about to take over.
        hosts = []
    recorded = await bar_universe(db, market, settings, bar, host.host_id, hosts)
    if recorded is None:
        return PassResult(timeframe, bar_time, False, 0, (), 0, (), 0, 0)
    buckets = len(by_bucket(recorded.symbols, recorded.buckets))
    mine = share_of(host.host_id, hosts, recorded.symbols, recorded.buckets) if hosts else {}
    won = await scan_shards.claim(db, bar, host.host_id, mine)
    results: list[ScanResult] = []
    symbols = [s for b in won for s in mine[b]]
    if won:
        failpoint("scanner.after_claim")
        requests = [ScanRequest(timeframe=timeframe, algorithm=a, symbols=tuple(symbols)) for a in algorithms]
        try:
            results = await run_scans(
                requests,
                db=db,
                market=market,
                clock=FixedClock(now_ms),
                settings=settings,
                scorer=scorer,
                concurrency=concurrency,
                host_id=host.host_id,
            )
        except BaseException:
            await asyncio.shield(scan_shards.release(db, bar, won, host.host_id))
            raise
        kept = await scan_shards.finish(db, bar, won, host.host_id)
        if kept != won:
            log_event(
                logger,
                "scan_claim_lost",
                level=logging.WARNING,
                host=host.host_id,
                timeframe=timeframe,
                bar_time=bar_time,
                buckets=sorted(set(won) - set(kept)),
            )
    claimed, finished = await scan_shards.progress(db, bar)
    result = PassResult(
        timeframe, bar_time, True, buckets, tuple(won), len(symbols), tuple(results), claimed, finished
    )
    if won:
        log_event(
            logger,
            "scan_share",
            host=host.host_id,
            timeframe=timeframe,
            bar_time=bar_time,
            hosts=len(hosts),
            buckets=len(won),
            symbols=len(symbols),
            bar_finished=f"{finished}/{buckets}",
        )
    return result


@contextlib.asynccontextmanager
async def keep_lease(db: Database, host: ShardHost, *, drop: bool = False) -> AsyncIterator[None]:
    """Hold ``host``'s lease while the block runs: renewed now, then every third of ``lease_s``.

    With ``drop``, the lease ends when the block does (a clean stop), so the other hosts take its share
    at once instead of after ``lease_s``.
    """
    await scan_shards.renew_lease(db, host.host_id, host.scope, host.source_address, host.lease_s)

    async def renew() -> None:
        while True:
            await asyncio.sleep(host.lease_s / 3)
            try:
                kept = await scan_shards.renew_lease(
                    db, host.host_id, host.scope, host.source_address, host.lease_s
                )
            except Exception as exc:  # a database hiccup: the next renewal may succeed in time
                log_event(logger, "lease_not_renewed", level=logging.WARNING, error_type=type(exc).__name__)
                continue
            if not kept:
                log_event(logger, "lease_lapsed", level=logging.WARNING, host=host.host_id)

    task = asyncio.create_task(renew(), name=f"lease:{host.host_id}")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if drop:
            await asyncio.shield(scan_shards.drop_lease(db, host.host_id))


async def scan_bar(
    host: ShardHost,
    timeframe: str,
    algorithms: Sequence[str],
    *,
    db: Database,
    market: MarketDataClient,
    clock: MarketClock,
    settings: ScanSettings,
    scorer: Scorer | None = None,
    poll_s: float = 0.25,
    deadline_s: float | None = None,
) -> list[PassResult]:
    """Scan this host's share of the newest closed bar, then keep sweeping until every bucket is done.

    What the scheduler's scan job runs on each host: it returns when the whole bar is scanned (so the
    executor that runs next sees every signal of the bar), or after ``deadline_s`` (default: three leases
    and a minute, time for a dead host's lease to expire and its share to be taken over) with a warning.
    """
    now_ms = await clock.now_ms()
    limit = deadline_s if deadline_s is not None else 3 * host.lease_s + 60.0
    deadline = time.monotonic() + limit
    passes: list[PassResult] = []
    async with keep_lease(db, host):
        while True:
            done = await scan_pass(
                host,
                timeframe,
                algorithms,
                db=db,
                market=market,
                now_ms=now_ms,
                settings=settings,
                scorer=scorer,
            )
            passes.append(done)
            if done.complete:
                return passes
            if time.monotonic() >= deadline:
                log_event(
                    logger,
                    "scan_bar_incomplete",
                    level=logging.WARNING,
                    host=host.host_id,
                    timeframe=timeframe,
                    bar_time=done.bar_time,
                    finished=done.finished,
                    buckets=done.buckets,
                )
                return passes
            await asyncio.sleep(poll_s)
