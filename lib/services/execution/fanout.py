"""One claimed signal to every eligible user, and the executor run that claims and fans out a batch.

After its pairs are done, a signal is marked ``executed`` (some order is live) or ``skipped``; but if
the exchange left any pair unanswered (a wallet it could not read, leverage it could not set, an order
with no answer), the signal goes back to the queue instead. The next run reclaims it, sends the
``requested`` rows again with their own ``orderLinkId`` (so one that was accepted after all is found by
its 110072, not placed twice) and retries the users it could not read. A dead executor's claim, once
stale, is resumed the same way. The order tracker reconciles ``requested`` rows from the exchange in
the meantime, and marks them failed only once no executor will send them any more.

A signal for ``shard_min_users`` users or more is split into shards instead, which executors on every
host share (:mod:`lib.services.execution.shards`); every run then also works on the shards it can claim.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from lib.errors import AitradexError
from lib.log import log_event
from lib.services.execution.deps import ExecutionReport, ExecutorDeps, OrderOutcome
from lib.services.execution.eligibility import eligible_targets
from lib.services.execution.queue import claim_signals, mark_done, release_claim, renew_claim
from lib.services.execution.run import Run
from lib.services.execution.shards import ShardWork, work_shards
from lib.services.execution.targets import execute_targets, make_plan, resume, unfinished
from lib.stores import signal_shards
from lib.stores.signal_queue import SignalRow

logger = logging.getLogger("aitradex.executor")


async def _fan_out(run: Run, signal: SignalRow, work: ShardWork) -> list[OrderOutcome]:
    """Execute one claimed signal for every eligible user, then mark it executed or skipped (or split it)."""
    deps = run.deps
    if not await renew_claim(deps.db, signal.id, deps.worker, run.now()):
        log_event(logger, "executor_claim_lost", level=logging.WARNING, signal_id=str(signal.id))
        return []
    if signal.reclaimed and await signal_shards.exists(deps.db, signal.id):
        # Split before: its shards carry it (the run's shard workers take what is left). Only a signal
        # whose last shard ended without the signal being marked needs marking here.
        await signal_shards.finish_signal(deps.db, signal.id, now=run.now())
        return []
    semaphore = work.semaphore
    outcomes: list[OrderOutcome] = []
    if signal.reclaimed:
        outcomes.extend(await resume(run, signal, semaphore))
    targets = await eligible_targets(deps.db, signal)
    if not signal.reclaimed and len(targets) >= deps.shard_min_users:
        await work.split(signal, targets)
        return []
    outcomes.extend(await execute_targets(run, signal, await make_plan(run, targets), semaphore))
    if left := unfinished(outcomes):
        # The exchange did not answer for some pairs: the signal goes back to the queue, and the next run
        # (now reclaiming it) re-sends their reserved rows with the same orderLinkId and retries the
        # users it could not read. Bounded by the signal's expiry.
        log_event(
            logger,
            "executor_signal_unfinished",
            level=logging.WARNING,
            signal_id=str(signal.id),
            pairs=len(left),
        )
        await release_claim(deps.db, signal.id, deps.worker)
        return outcomes
    live = any(o.outcome in ("placed", "filled", "duplicate") for o in outcomes)
    await mark_done(deps.db, signal, live=live, now=run.now())
    return outcomes


async def fan_out(deps: ExecutorDeps, signal: SignalRow, *, now: datetime) -> list[OrderOutcome]:
    """Execute one signal this worker has claimed (see :func:`execute_pending`), its shards too if split."""
    run = Run(deps, now)
    work = ShardWork(run, signal_ids=[signal.id])
    outcomes = await _fan_out(run, signal, work)
    return outcomes + await work_shards(work)


async def execute_pending(
    deps: ExecutorDeps,
    *,
    now: datetime,
    batch_size: int = 50,
    signal_ids: Sequence[UUID] | None = None,
) -> ExecutionReport:
    """One executor run: claim a batch of signals (only ``signal_ids`` if given) and execute each, then
    work on the shards of split signals (this run's and other executors') until none is left to take.

    A signal whose fan-out fails (the database or the instruments cache unreachable, say) is handed
    back to the queue and the run goes on with the next one; a shard likewise.
    """
    started = time.perf_counter()
    signals, expired = await claim_signals(
        deps.db,
        worker=deps.worker,
        now=now,
        limit=batch_size,
        signal_ids=signal_ids,
        market_now=await deps.market_time(now),
    )
    report = ExecutionReport(claimed=len(signals), expired=expired)
    run = Run(deps, now)
    work = ShardWork(run, signal_ids=signal_ids)
    for signal in signals:
        try:
            report.outcomes.extend(await _fan_out(run, signal, work))
        except AitradexError as exc:
            log_event(
                logger,
                "executor_signal_failed",
                level=logging.ERROR,
                signal_id=str(signal.id),
                error=exc.code,
            )
            await release_claim(deps.db, signal.id, deps.worker)
    report.outcomes.extend(await work_shards(work))
    report.shards = work.shards
    report.claimed += len(work.signals - {s.id for s in signals})
    report.duration_ms = round((time.perf_counter() - started) * 1000, 1)
    # An idle run (a host polling an empty queue) is logged at debug level only.
    idle = report.claimed == 0 and expired == 0
    log_event(
        logger,
        "executor_run",
        level=logging.DEBUG if idle else logging.INFO,
        worker=deps.worker,
        claimed=report.claimed,
        shards=report.shards,
        expired=expired,
        placed=report.count("placed") + report.count("filled"),
        skipped=report.count("skipped"),
        rejected=report.count("rejected"),
        unknown=report.count("unknown"),
        duplicate=report.count("duplicate"),
        duration_ms=report.duration_ms,
    )
    return report
