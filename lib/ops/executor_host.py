"""An executor host: a process that polls the signal queue and works on signals and their shards.

A host is a process with its own source address (``--source-address`` or ``AITRADEX_SOURCE_ADDRESS``):
every exchange call it makes, market data and signed, leaves from that address and counts against that
address's budget, kept by the process's one IP limiter. Several hosts on one Postgres share each large
signal's users through its shards (:mod:`lib.services.execution.shards`), so each host adds its budget.

:func:`serve` is the loop: one ``execute_pending`` run after another while there is work, a pause of
``interval_s`` (cut short by a stop) when a run found none, and a clean stop after the run in progress
on SIGTERM or SIGINT. The functions server's executor function and the built-in scheduler keep working
beside it: they run the same ``execute_pending``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from lib.app.wiring import close_services, exchange_clients, executor_deps, open_services
from lib.config import ExchangeConfig, Settings
from lib.exchange.access import MarketAccess
from lib.exchange.rate_limit import DEFAULT_SHARE, RateLimiter
from lib.exchange.trading import PybitExchange
from lib.services.execution.deps import ExecutorDeps
from lib.services.execution.fanout import execute_pending
from lib.services.execution.targets import unfinished

#: Pause between polls of an empty queue (seconds).
DEFAULT_INTERVAL_S = 0.5


@dataclass(frozen=True, slots=True)
class HostOptions:
    """How one host runs: ``paper_url`` replaces the local stack's paper exchange (tests and benches
    start their own); ``max_runs`` bounds the loop (None: until stopped)."""

    source_address: str | None = None
    paper_url: str | None = None
    interval_s: float = DEFAULT_INTERVAL_S
    lease_s: float | None = None
    shard_min_users: int | None = None
    share: float = DEFAULT_SHARE
    loop: bool = True
    max_runs: int | None = None


@dataclass
class HostReport:
    """What a host did: runs, signals and shards worked on, and the pairs' outcomes."""

    worker: str
    source_address: str | None
    runs: int = 0
    claimed: int = 0
    shards: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def worker_name(source_address: str | None) -> str:
    """A name no other executor has: the host, its source address and the process id."""
    return f"host:{socket.gethostname()}:{source_address or '-'}:{os.getpid()}"


async def serve(
    deps: ExecutorDeps,
    *,
    stop: asyncio.Event,
    interval_s: float = DEFAULT_INTERVAL_S,
    max_runs: int | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    report: HostReport | None = None,
    signal_ids: Sequence[UUID] | None = None,
) -> HostReport:
    """Run the executor until ``stop`` is set (or ``max_runs`` runs): at once again after a run that
    found work, after ``interval_s`` (or the stop) after one that found none. ``signal_ids``: only
    these signals (a bench that must not claim anyone else's)."""
    report = report or HostReport(worker=deps.worker, source_address=None)
    while not stop.is_set() and (max_runs is None or report.runs < max_runs):
        run = await execute_pending(deps, now=clock(), signal_ids=signal_ids)
        report.runs += 1
        report.claimed += run.claimed
        report.shards += run.shards
        for outcome in run.outcomes:
            report.outcomes[outcome.outcome] = report.outcomes.get(outcome.outcome, 0) + 1
        # Again at once only after a run that got through its work; one that found none, or was left
        # unanswered (an IP ban, say: its work went back to the queue), waits first.
        if (run.claimed == 0 and run.expired == 0) or unfinished(run.outcomes):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
    return report


def host_settings(settings: Settings, options: HostOptions) -> Settings:
    """The settings with the host's source address, when one is given."""
    if options.source_address is None:
        return settings
    return dataclasses.replace(settings, exchange=ExchangeConfig(source_address=options.source_address))


async def run_host(
    settings: Settings, options: HostOptions, *, ready: Callable[[str], None] | None = None
) -> HostReport:
    """Open the process's services (bound to the host's source address) and serve until SIGTERM/SIGINT;
    ``ready(worker)`` is called once it is about to poll the queue."""
    settings = host_settings(settings, options)
    address = settings.exchange.source_address
    exchange: PybitExchange | None = None
    market: MarketAccess | None = None
    if options.paper_url is not None:
        limiter = RateLimiter(share=options.share)
        market, exchange = exchange_clients(settings, paper_url=options.paper_url, limiter=limiter)
    services = await open_services(settings, exchange=exchange, market=market)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        deps = executor_deps(services, worker=worker_name(address))
        if options.lease_s is not None:
            deps.shard_lease_s = options.lease_s
        if options.shard_min_users is not None:
            deps.shard_min_users = options.shard_min_users
        report = HostReport(worker=deps.worker, source_address=address)
        if ready is not None:
            ready(deps.worker)
        return await serve(
            deps,
            stop=stop,
            interval_s=options.interval_s,
            max_runs=options.max_runs if options.loop else 1,
            clock=services.clock.now,
            report=report,
        )
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await close_services(services)
