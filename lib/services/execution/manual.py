"""A user's own trades: one signal executed on request, or a manual market order sized by notional.

Auto-trade need not be on for either; the user's caps still apply. Both go through the same
reservation and placement as a fan-out, with their own deterministic ``orderLinkId``.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal
from uuid import UUID

from lib.core.instruments import fmt, normalize_qty, validate_market_order
from lib.core.order_ids import manual_order_link_id, order_link_id
from lib.core.sizing import normalize_levels, out_of_range_message, usable_leverage, within_magnitude
from lib.errors import InvalidRequest, NotFound
from lib.exchange.access import MarketAccess
from lib.services.execution.deps import CATEGORY, ExecutorDeps, OrderOutcome
from lib.services.execution.eligibility import loss_allowances, user_target
from lib.services.execution.pair import execute_for_target, reserve_and_place, skip, target_credentials
from lib.services.execution.run import Run
from lib.services.symbol_validation import listed
from lib.stores import signal_queue


@dataclass(frozen=True, slots=True)
class ManualOrder:
    """A user's own market order: notional in USD, optional SL/TP, and an idempotency key of theirs."""

    symbol: str
    side: Literal["Buy", "Sell"]
    amount_usd: Decimal
    client_order_id: str
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None


async def _single(run: Run, work: Awaitable[OrderOutcome]) -> OrderOutcome:
    try:
        return await work
    finally:
        await run.finish()


async def execute_signal_for_user(
    deps: ExecutorDeps, *, user_id: UUID, signal_id: UUID, now: datetime
) -> OrderOutcome:
    """Execute one signal for one user on request (auto-trade need not be on; caps still apply)."""
    signal = await signal_queue.open_signal(deps.db, signal_id, market_now=await deps.market_time(now))
    if signal is None:
        raise NotFound("no such signal, or it has expired", details={"signal_id": str(signal_id)})
    target, loss_limit = await user_target(deps.db, user_id)
    filters = listed(
        await deps.filters(CATEGORY, target.environment),
        signal.symbol,
        category=CATEGORY,
        environment=target.environment,
    )
    allowance = (await loss_allowances(deps.db, [user_id], now)).get(user_id, (loss_limit, Decimal(0)))
    run = Run(deps, now)
    return await _single(
        run,
        execute_for_target(
            run,
            signal,
            target,
            filters,
            link_id=order_link_id(signal.id, user_id),
            loss_limit_pct=loss_limit,
            today_pnl=allowance[1],
        ),
    )


async def execute_manual_for_user(
    deps: ExecutorDeps, market: MarketAccess, *, user_id: UUID, order: ManualOrder, now: datetime
) -> OrderOutcome:
    """Place a user's manual order of ``amount_usd`` at the current last price of their environment.

    An unlisted symbol is a 404 with suggestions, as ``symbol-validator`` answers (checked before the
    exchange is asked for a price). The order is checked as the executor's sizing checks its own
    (:func:`lib.core.instruments.validate_market_order`): a market order carries no price, so the last
    price need not lie on the tick. Leverage is capped to the instrument's maximum, as for a signal.
    """
    target, _ = await user_target(deps.db, user_id)
    filters = listed(
        await deps.filters(CATEGORY, target.environment),
        order.symbol,
        category=CATEGORY,
        environment=target.environment,
    )
    if order.amount_usd > target.max_position_usd:
        raise InvalidRequest(
            "amount is above your max position", details={"max_position_usd": fmt(target.max_position_usd)}
        )
    price = await last_price(market, target.environment, CATEGORY, order.symbol)
    if not (within_magnitude(price) and price > 0):
        # Nonsense from the exchange: refused before any arithmetic on it, and logged like a sizing skip.
        run = Run(deps, now)
        message = out_of_range_message(f"last price of {order.symbol}")
        skipped = skip(run, user_id, "sizing_skipped", message, "out_of_range", reason="out_of_range")
        await run.finish()
        return skipped
    qty = normalize_qty(order.amount_usd / price, filters)
    violations = validate_market_order(qty, price, filters)
    if violations:
        raise InvalidRequest(
            "the order breaks the instrument's filters",
            details={"violations": [v.code for v in violations], "qty": fmt(qty)},
        )
    entry, stop, target_price = price, order.stop_loss, order.take_profit
    if stop is not None:
        levels = normalize_levels(
            "LONG" if order.side == "Buy" else "SHORT", price, stop, target_price, filters
        )
        if levels is None:
            raise InvalidRequest("stop-loss and take-profit are on the wrong side of the price")
        entry, stop, target_price = levels.entry, levels.stop_loss, levels.take_profit
    creds = target_credentials(deps.vault, target)
    run = Run(deps, now)
    return await _single(
        run,
        reserve_and_place(
            run,
            target,
            creds,
            symbol=order.symbol,
            side=order.side,
            qty=qty,
            entry=entry,
            stop_loss=stop,
            take_profit=target_price,
            leverage=usable_leverage(target.leverage, filters),
            link_id=manual_order_link_id(user_id, order.client_order_id),
            signal_id=None,
            check_rules=False,
            context={"manual": True},
        ),
    )


async def last_price(market: MarketAccess, environment: str, category: str, symbol: str) -> Decimal:
    """The symbol's last traded price in ``environment`` (for sizing a manual order by notional)."""
    async with market.client(environment) as client:
        tickers = await client.tickers(category, symbol)
    if not tickers or tickers[0].last_price is None:
        raise NotFound(f"no price for {symbol} on {environment}")
    return Decimal(str(tickers[0].last_price))
