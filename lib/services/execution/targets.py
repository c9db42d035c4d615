"""Executing a signal for a set of users, shared by the one-executor fan-out and the shards of a split one.

A :class:`Plan` is what the pairs of one signal need besides the users themselves: the instruments'
filters of every environment among them and each user's daily loss allowance, read once for all of
them. :func:`execute_targets` runs the pairs (every one to its end, even if another failed, so nothing
is left half done); :func:`resume` sends the ``requested`` rows an executor presumed dead reserved but
never recorded, with their own ``orderLinkId`` (one it did send is found by its 110072, not placed twice).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID

from lib.core.instruments import InstrumentFilters
from lib.core.order_ids import order_link_id
from lib.errors import AitradexError
from lib.log import log_event
from lib.services.accounts import account_credentials
from lib.services.execution.deps import CATEGORY, TRANSIENT_SKIPS, OrderOutcome
from lib.services.execution.eligibility import loss_allowances
from lib.services.execution.pair import execute_for_target, send, skip
from lib.services.execution.run import Run
from lib.stores import orders as orders_store
from lib.stores import settings as settings_store
from lib.stores.accounts import Target
from lib.stores.orders import UnsentOrder
from lib.stores.signal_queue import SignalRow

logger = logging.getLogger("aitradex.executor")

#: No daily loss limit known for a user (no preferences row): trade, as the defaults allow.
_NO_LIMIT = (Decimal(100), Decimal(0))


@dataclass(frozen=True, slots=True)
class Plan:
    """The users of one signal with what their pairs need (see the module docstring)."""

    targets: list[Target]
    filters_by_env: dict[str, dict[str, InstrumentFilters]]
    allowances: dict[UUID, tuple[Decimal, Decimal]]


async def make_plan(run: Run, targets: Sequence[Target]) -> Plan:
    """Read the filters and loss allowances ``targets`` need (nothing when there are none)."""
    if not targets:
        return Plan([], {}, {})
    deps = run.deps
    environments = sorted({t.environment for t in targets})
    filters_by_env = {env: await deps.filters(CATEGORY, env) for env in environments}
    allowances = await loss_allowances(deps.db, [t.user_id for t in targets], run.now())
    return Plan(list(targets), filters_by_env, allowances)


def unfinished(outcomes: Sequence[OrderOutcome]) -> list[OrderOutcome]:
    """The pairs the exchange left unanswered (or the operator halted): their work goes back to the queue."""
    return [o for o in outcomes if o.outcome == "unknown" or o.reason in TRANSIENT_SKIPS]


async def execute_targets(
    run: Run,
    signal: SignalRow,
    plan: Plan,
    semaphore: asyncio.Semaphore,
    *,
    pair_done: Callable[[], None] | None = None,
) -> list[OrderOutcome]:
    """Execute ``signal`` for every user of ``plan`` (at most ``semaphore`` at once), then write;
    ``pair_done()`` is called as each pair ends."""
    if not plan.targets:
        return []
    await run.leverage.preload([t.account_id for t in plan.targets], signal.symbol)

    async def one(target: Target) -> OrderOutcome:
        filters = plan.filters_by_env[target.environment].get(signal.symbol)
        if filters is None:
            message = f"{signal.symbol} is not listed on {target.environment}"
            return skip(run, target.user_id, "symbol_unknown", message, "symbol_unknown")
        limit_pct, today_pnl = plan.allowances.get(target.user_id, _NO_LIMIT)
        try:
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
        finally:
            if pair_done is not None:
                pair_done()

    # Every pair runs to its end even if another failed, so nothing is left half done; a failure
    # (the database, say) then fails the signal (or shard), which goes back to the queue.
    results = await asyncio.gather(*(one(t) for t in plan.targets), return_exceptions=True)
    await run.finish()
    return _raise_first(results)


async def resume(
    run: Run,
    signal: SignalRow,
    semaphore: asyncio.Semaphore,
    *,
    only: Callable[[UUID], bool] | None = None,
) -> list[OrderOutcome]:
    """Send the orders a dead executor reserved for this signal (of the users ``only`` selects) but
    never recorded, with their own orderLinkId."""
    rows = await orders_store.unsent_orders(run.deps.db, signal.id)
    if only is not None:
        rows = [row for row in rows if only(row.user_id)]
    if rows and (await settings_store.trading_halted(run.deps.db)).halted:
        # Halted since the claim: the reserved rows wait (the signal goes back to the queue).
        message = "trading is halted by the operator: the reserved order is not sent"
        return [skip(run, row.user_id, "trading_halted", message, "trading_halted") for row in rows]
    if not rows:
        return []
    log_event(logger, "executor_resuming", signal_id=str(signal.id), orders=len(rows))

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
    return _raise_first(results)


def _raise_first(results: Sequence[OrderOutcome | BaseException]) -> list[OrderOutcome]:
    outcomes: list[OrderOutcome] = []
    for result in results:
        if isinstance(result, BaseException):
            raise result
        outcomes.append(result)
    return outcomes
