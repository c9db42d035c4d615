"""One claimed signal to every eligible user, and the executor run that claims and fans out a batch.

After its pairs are done, a signal is marked ``executed`` (some order is live) or ``skipped``; but if
the exchange left any pair unanswered (a wallet it could not read, leverage it could not set, an order
with no answer), the signal goes back to the queue instead. The next run reclaims it, sends the
``requested`` rows again with their own ``orderLinkId`` (so one that was accepted after all is found by
its 110072, not placed twice) and retries the users it could not read. A dead executor's claim, once
stale, is resumed the same way. The order tracker reconciles ``requested`` rows from the exchange in
the meantime, and marks them failed only once no executor will send them any more.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from lib.core.order_ids import order_link_id
from lib.errors import AitradexError
from lib.log import log_event
from lib.services.accounts import account_credentials
from lib.services.execution.deps import (
    CATEGORY,
    TRANSIENT_SKIPS,
    ExecutionReport,
    ExecutorDeps,
    OrderOutcome,
)
from lib.services.execution.eligibility import eligible_targets, loss_allowances
from lib.services.execution.pair import execute_for_target, send, skip
from lib.services.execution.queue import claim_signals, mark_done, release_claim, renew_claim
from lib.services.execution.run import Run
from lib.stores import orders as orders_store
from lib.stores import settings as settings_store
from lib.stores.accounts import Target
from lib.stores.orders import UnsentOrder
from lib.stores.signal_queue import SignalRow

logger = logging.getLogger("aitradex.executor")


async def _fan_out(run: Run, signal: SignalRow) -> list[OrderOutcome]:
    """Execute one claimed signal for every eligible user, then mark it executed or skipped."""
    deps = run.deps
    if not await renew_claim(deps.db, signal.id, deps.worker, run.now()):
        log_event(logger, "executor_claim_lost", level=logging.WARNING, signal_id=str(signal.id))
        return []
    outcomes: list[OrderOutcome] = []
    if signal.reclaimed:
        outcomes.extend(await _resume(run, signal))
    targets = await eligible_targets(deps.db, signal)
    if targets:
        environments = sorted({t.environment for t in targets})
        filters_by_env = {env: await deps.filters(CATEGORY, env) for env in environments}
        allowances = await loss_allowances(deps.db, [t.user_id for t in targets], run.now())
        await run.leverage.preload([t.account_id for t in targets], signal.symbol)
        semaphore = asyncio.Semaphore(deps.concurrency)

        async def one(target: Target) -> OrderOutcome:
            filters = filters_by_env[target.environment].get(signal.symbol)
            if filters is None:
                message = f"{signal.symbol} is not listed on {target.environment}"
                return skip(run, target.user_id, "symbol_unknown", message, "symbol_unknown")
            limit_pct, today_pnl = allowances.get(target.user_id, (Decimal(100), Decimal(0)))
            async with semaphore:
                return await execute_for_target(
                    run,
                    signal,
                    target,
                    filters,
                    link_id=order_link_id(signal.id, target.user_id),
                    loss_limit_pct=limit_pct,
                    today_pnl=today_pnl,
                )

        # Every pair runs to its end even if another failed, so nothing is left half done; a failure
        # (the database, say) then fails the signal, which goes back to the queue.
        results = await asyncio.gather(*(one(t) for t in targets), return_exceptions=True)
        await run.finish()
        for result in results:
            if isinstance(result, BaseException):
                raise result
            outcomes.append(result)
    unfinished = [o for o in outcomes if o.outcome == "unknown" or o.reason in TRANSIENT_SKIPS]
    if unfinished:
        # The exchange did not answer for some pairs: the signal goes back to the queue, and the next run
        # (now reclaiming it) re-sends their reserved rows with the same orderLinkId and retries the
        # users it could not read. Bounded by the signal's expiry.
        log_event(
            logger,
            "executor_signal_unfinished",
            level=logging.WARNING,
            signal_id=str(signal.id),
            pairs=len(unfinished),
        )
        await release_claim(deps.db, signal.id, deps.worker)
        return outcomes
    live = any(o.outcome in ("placed", "filled", "duplicate") for o in outcomes)
    await mark_done(deps.db, signal, live=live, now=run.now())
    return outcomes


async def _resume(run: Run, signal: SignalRow) -> list[OrderOutcome]:
    """Send the orders a dead executor reserved for this signal but never recorded (same orderLinkId:
    one it did send is found by its 110072, not placed twice)."""
    rows = await orders_store.unsent_orders(run.deps.db, signal.id)
    if rows and (await settings_store.trading_halted(run.deps.db)).halted:
        # Halted since the claim: the reserved rows wait (the signal goes back to the queue).
        message = "trading is halted by the operator: the reserved order is not sent"
        return [skip(run, row.user_id, "trading_halted", message, "trading_halted") for row in rows]
    if rows:
        log_event(logger, "executor_resuming", signal_id=str(signal.id), orders=len(rows))
    semaphore = asyncio.Semaphore(run.deps.concurrency)

    async def one(row: UnsentOrder) -> OrderOutcome:
        try:
            creds = account_credentials(
                run.deps.vault, row.user_id, row.environment, row.api_key_encrypted, row.api_secret_encrypted
            )
        except AitradexError as exc:
            return skip(run, row.user_id, "account_unusable", exc.message, exc.code, code=exc.code)
        async with semaphore:
            return await send(
                run,
                row.order_id,
                row.user_id,
                row.account_id,
                creds,
                symbol=row.symbol,
                side=row.side,
                qty=Decimal(row.qty),
                stop_loss=row.stop_loss,
                take_profit=row.take_profit,
                leverage=int(row.leverage),
                link_id=row.order_link_id,
            )

    results = await asyncio.gather(*(one(row) for row in rows), return_exceptions=True)
    await run.finish()
    outcomes: list[OrderOutcome] = []
    for result in results:
        if isinstance(result, BaseException):
            raise result
        outcomes.append(result)
    return outcomes


async def fan_out(deps: ExecutorDeps, signal: SignalRow, *, now: datetime) -> list[OrderOutcome]:
    """Execute one signal this worker has claimed (see :func:`execute_pending`)."""
    return await _fan_out(Run(deps, now), signal)


async def execute_pending(
    deps: ExecutorDeps,
    *,
    now: datetime,
    batch_size: int = 50,
    signal_ids: Sequence[UUID] | None = None,
) -> ExecutionReport:
    """One executor run: claim a batch of signals (only ``signal_ids`` if given) and execute each.

    A signal whose fan-out fails (the database or the instruments cache unreachable, say) is handed
    back to the queue and the run goes on with the next one.
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
    for signal in signals:
        try:
            report.outcomes.extend(await _fan_out(run, signal))
        except AitradexError as exc:
            log_event(
                logger,
                "executor_signal_failed",
                level=logging.ERROR,
                signal_id=str(signal.id),
                error=exc.code,
            )
            await release_claim(deps.db, signal.id, deps.worker)
    report.duration_ms = round((time.perf_counter() - started) * 1000, 1)
    log_event(
        logger,
        "executor_run",
        worker=deps.worker,
        claimed=report.claimed,
        expired=expired,
        placed=report.count("placed") + report.count("filled"),
        skipped=report.count("skipped"),
        rejected=report.count("rejected"),
        unknown=report.count("unknown"),
        duplicate=report.count("duplicate"),
        duration_ms=report.duration_ms,
    )
    return report
