"""One (signal, user) pair, or one manual order: size, reserve, set leverage, place, record.

Per user, the run reads the wallet (retried on timeouts, 5xx and 10006) and **sizes** the order
(``lib.core.sizing``: risk per trade over the stop distance, capped, rounded to the qty step, the
leverage capped to the instrument's maximum). A skip is logged in ``trade_logs`` with its reason; a
wallet equity that is not a finite number of sane size is one (``out_of_range``).

The pair is then **reserved**: its ``execution_orders`` row is inserted as ``requested`` with the
deterministic ``orderLinkId`` and committed before anything is sent. The unique (user, signal) row is
what makes "once" true across executors. The open-position rules are checked again inside the
reservation, under a per-user advisory lock, so two executors working on different signals cannot both
give a user a position in one symbol, or one position more than their maximum.

Then leverage is set (retried) and the market order **placed** with SL/TP attached
(:mod:`lib.services.execution.placement`), and the result recorded: ``placed`` with the exchange's order
id, ``rejected`` or ``failed`` with the reason, or nothing (the row stays ``requested``) when the exchange
gave no answer. A crash between reservation and result leaves a ``requested`` row, which the next run
of the signal or the tracker reconciles.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from lib.core.instruments import InstrumentFilters, fmt
from lib.core.sizing import out_of_range_message, size_order, within_magnitude
from lib.crypto import KeyVault
from lib.errors import AitradexError, ExchangeError, ExchangeRejected, IpBanned
from lib.exchange.bybit import SET_LEVERAGE, already_done
from lib.exchange.ports import Credentials, OrderRequest
from lib.failpoints import failpoint
from lib.services.accounts import account_credentials
from lib.services.execution.caches import key_fingerprint
from lib.services.execution.deps import CATEGORY, OrderOutcome
from lib.services.execution.eligibility import within_daily_loss_limit
from lib.services.execution.placement import (
    ORDER_WINDOW,
    deferrable,
    exchange_status,
    place_with_retries,
    retrying,
    state_reason,
)
from lib.services.execution.run import Run
from lib.stores.accounts import Target
from lib.stores.order_batches import OrderResult, Reservation
from lib.stores.signal_queue import SignalRow
from lib.stores.trade_logs import LogLine


def target_credentials(vault: KeyVault, target: Target) -> Credentials:
    """The target account's plain keys."""
    return account_credentials(
        vault, target.user_id, target.environment, target.api_key_encrypted, target.api_secret_encrypted
    )


def skip(run: Run, user_id: UUID, event: str, message: str, why: str, **context: Any) -> OrderOutcome:
    """Log why the pair is skipped (written behind) and say so."""
    run.writer.log(LogLine(user_id, event, message, level="warning", context=context))
    return OrderOutcome(user_id, "skipped", reason=why)


async def execute_for_target(
    run: Run,
    signal: SignalRow,
    target: Target,
    filters: InstrumentFilters,
    *,
    link_id: str,
    loss_limit_pct: Decimal,
    today_pnl: Decimal,
) -> OrderOutcome:
    """Everything for one (signal, user) pair; never raises for exchange, account or sizing problems."""
    facts = {"signal_id": str(signal.id)}
    try:
        creds = target_credentials(run.deps.vault, target)
        wallet = await run.wallet(target.account_id, creds)
    except ExchangeError as exc:
        reason = "exchange_unavailable" if deferrable(exc) else "account_unusable"
        return skip(run, target.user_id, reason, exc.message, reason, code=exc.code, **facts)
    except AitradexError as exc:  # keys that cannot be decrypted, an environment nobody configured
        return skip(run, target.user_id, "account_unusable", exc.message, exc.code, code=exc.code, **facts)
    if not within_magnitude(wallet.total_equity):
        # Nonsense from the exchange (Infinity, 1e999999): refused here, before any arithmetic on it.
        message = out_of_range_message("wallet's equity")
        return skip(
            run, target.user_id, "sizing_skipped", message, "out_of_range", reason="out_of_range", **facts
        )
    if not within_daily_loss_limit(wallet.total_equity, loss_limit_pct, today_pnl):
        message = "today's realized loss reached the daily limit"
        return skip(run, target.user_id, "daily_loss_limit", message, "daily_loss_limit", **facts)

    decision = size_order(
        equity=wallet.total_equity,
        risk_pct=target.risk_per_trade_pct,
        entry=signal.entry_price,
        stop_loss=signal.stop_loss,
        take_profit=signal.take_profit,
        direction=signal.direction,  # type: ignore[arg-type]
        max_position_usd=target.max_position_usd,
        leverage=target.leverage,
        filters=filters,
    )
    if not decision.ok or decision.levels is None:
        reason = str(decision.skip_reason)
        return skip(run, target.user_id, "sizing_skipped", decision.message, reason, reason=reason, **facts)
    return await reserve_and_place(
        run,
        target,
        creds,
        symbol=signal.symbol,
        side=signal.side,
        qty=decision.qty,
        entry=decision.levels.entry,
        stop_loss=decision.levels.stop_loss,
        take_profit=decision.levels.take_profit,
        leverage=decision.leverage,
        link_id=link_id,
        signal_id=signal.id,
        check_rules=True,
        context={"risk": fmt(decision.risk_amount), "capped_by": list(decision.capped_by), **facts},
    )


async def reserve_and_place(
    run: Run,
    target: Target,
    creds: Credentials,
    *,
    symbol: str,
    side: str,
    qty: Decimal,
    entry: Decimal,
    stop_loss: Decimal | None,
    take_profit: Decimal | None,
    leverage: int,
    link_id: str,
    signal_id: UUID | None,
    check_rules: bool,
    context: dict[str, Any],
) -> OrderOutcome:
    """Reserve the order row (``requested``), set leverage, place it, and record what happened.

    ``leverage`` is what the instrument allows of the user's (``lib.core.sizing.usable_leverage``); when
    it is lower than theirs, the order's ``trade_logs`` say so (``leverage_capped``).
    """
    reserved = await run.writer.reserve(
        Reservation(
            user_id=target.user_id,
            signal_id=signal_id,
            account_id=target.account_id,
            symbol=symbol,
            side=side,
            qty=qty,
            price=entry,
            stop_loss=stop_loss,
            take_profit=take_profit,
            leverage=leverage,
            order_link_id=link_id,
            environment=target.environment,
            requested_at=run.now(),
            max_open=target.max_open_positions if check_rules else None,
            message=f"{side} {fmt(qty)} {symbol}",
            context={"qty": fmt(qty), **context},
        )
    )
    if reserved.order_id is None:
        if reserved.reserved:
            return OrderOutcome(target.user_id, "duplicate", link_id)
        if reserved.halted:
            message = "trading is halted by the operator: no new order is placed"
            return skip(run, target.user_id, "trading_halted", message, "trading_halted")
        if not reserved.symbol_free:
            message = f"a position in {symbol} is already open"
            return skip(run, target.user_id, "position_open", message, "position_open", symbol=symbol)
        if not reserved.under_max:
            message = "the maximum number of open positions is reached"
            return skip(run, target.user_id, "max_open_positions", message, "max_open_positions")
        return OrderOutcome(target.user_id, "duplicate", link_id)  # another executor reserved it first
    if leverage < target.leverage:
        run.writer.log(
            LogLine(
                target.user_id,
                "leverage_capped",
                f"{symbol} allows at most {leverage}x here: your leverage of {target.leverage}x is capped "
                f"to {leverage}x for this order",
                order_id=reserved.order_id,
                level="warning",
                context={"requested": target.leverage, "used": leverage},
            )
        )
    failpoint("executor.after_reserve")
    return await send(
        run,
        reserved.order_id,
        target.user_id,
        target.account_id,
        creds,
        symbol=symbol,
        side=side,
        qty=qty,
        stop_loss=stop_loss,
        take_profit=take_profit,
        leverage=leverage,
        link_id=link_id,
    )


async def send(
    run: Run,
    order_id: UUID,
    user_id: UUID,
    account_id: UUID,
    creds: Credentials,
    *,
    symbol: str,
    side: str,
    qty: Decimal,
    stop_loss: Decimal | None,
    take_profit: Decimal | None,
    leverage: int,
    link_id: str,
) -> OrderOutcome:
    """Set leverage and place a reserved order, then record what happened (written behind)."""
    deps = run.deps
    deadline = time.monotonic() + ORDER_WINDOW.total_seconds()
    run.used_accounts.add(account_id)
    try:
        await ensure_leverage(run, account_id, creds, symbol, leverage)
    except ExchangeError as exc:
        if not deferrable(exc):
            reason = f"leverage not set: {exc.message}"
            return _failed(run, user_id, order_id, link_id, "failed", reason, exc, 0)
        # Nothing was sent; the row stays requested and the signal's next run sends it (see fanout).
        run.writer.log(
            LogLine(
                user_id,
                "order_deferred",
                f"leverage could not be set just now ({exc.code}); the order is sent on the next run",
                order_id=order_id,
                level="warning",
                context={"error": exc.code},
            )
        )
        return OrderOutcome(user_id, "unknown", link_id, reason=exc.code)
    request = OrderRequest(
        category=CATEGORY,
        symbol=symbol,
        side=side,
        qty=fmt(qty),
        order_link_id=link_id,
        stop_loss=fmt(stop_loss) if stop_loss is not None else None,
        take_profit=fmt(take_profit) if take_profit is not None else None,
    )
    sent = await place_with_retries(deps, creds, request, account_id, deadline=deadline)
    # The order may have taken margin or filled (or may yet, when unanswered): the next read is fresh.
    deps.wallets.invalidate(account_id)
    if sent.result == "placed":
        state = sent.state
        status = exchange_status(state) if state is not None else "placed"
        run.writer.result(
            OrderResult(
                order_id=order_id,
                user_id=user_id,
                status=status,
                at=run.now(),
                event="order_placed",
                message=f"exchange accepted, status {status}",
                exchange_order_id=sent.order_id,
                filled_qty=state.filled_qty if state is not None else None,
                avg_price=state.avg_price if state is not None else None,
                fee=state.fee if state is not None else None,
                reason=state_reason(state) if state is not None else None,
                attempts=sent.attempts,
                context={"attempts": sent.attempts, "looked_up": state is not None},
            )
        )
        return OrderOutcome(user_id, "filled" if status == "filled" else "placed", link_id)
    if sent.result == "rejected":
        assert sent.error is not None
        return _failed(
            run, user_id, order_id, link_id, "rejected", sent.error.message, sent.error, sent.attempts
        )
    if isinstance(sent.error, IpBanned):
        # Refused at the door: nothing was sent. The row stays requested; a run after the ban sends it.
        run.writer.log(
            LogLine(
                user_id,
                "order_deferred",
                "the exchange is refusing this host's IP for now; the order is sent on a run after the ban",
                order_id=order_id,
                level="warning",
                context={"error": sent.error.code, "attempts": sent.attempts},
            )
        )
        return OrderOutcome(user_id, "unknown", link_id, reason=sent.error.code)
    run.writer.log(
        LogLine(
            user_id,
            "order_outcome_unknown",
            "no answer from the exchange after retries; the order tracker will reconcile it by orderLinkId",
            order_id=order_id,
            level="warning",
            context={"error": sent.error.code if sent.error else None, "attempts": sent.attempts},
        )
    )
    return OrderOutcome(user_id, "unknown", link_id, reason=sent.error.code if sent.error else "")


async def ensure_leverage(run: Run, account_id: UUID, creds: Credentials, symbol: str, leverage: int) -> None:
    """Set the account's leverage for ``symbol`` unless the shared memo says it already is; remember it.

    110043 ("leverage not modified") is success: the exchange already has it (``bybit.already_done``).
    """
    fingerprint = key_fingerprint(creds.api_key)
    if await run.leverage.is_set(account_id, symbol, leverage, fingerprint):
        return
    deps = run.deps

    async def set_it() -> None:
        try:
            await deps.exchange.set_leverage(creds, CATEGORY, symbol, leverage)
        except ExchangeRejected as exc:
            if not already_done(SET_LEVERAGE, exc.ret_code):
                raise

    await retrying(set_it, deps.backoff)
    await run.leverage.remember(account_id, symbol, leverage, fingerprint, at=run.now())


def _failed(
    run: Run,
    user_id: UUID,
    order_id: UUID,
    link_id: str,
    status: Literal["rejected", "failed"],
    reason: str,
    error: ExchangeError,
    attempts: int,
) -> OrderOutcome:
    run.writer.result(
        OrderResult(
            order_id=order_id,
            user_id=user_id,
            status=status,
            at=run.now(),
            event=f"order_{status}",
            message=reason,
            level="warning",
            reason=reason,
            ret_code=error.ret_code,
            ret_msg=error.ret_msg,
            attempts=attempts,
            context={"ret_code": error.ret_code, "code": error.code},
        )
    )
    return OrderOutcome(user_id, status, link_id, reason=reason)
