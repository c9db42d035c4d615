"""The trade executor: turns new signals into orders, once per (signal, user), and records every step.

The signals table is the queue. An executor run:

1. expires signals past ``expires_at`` and **claims** a batch of ``new`` ones (or ``processing`` ones
   whose claim is stale because their executor died): ``FOR UPDATE SKIP LOCKED``, so executors on
   several machines never take the same signal;
2. **fans out** each signal to the eligible users: auto-trade on, the signal's algorithm and timeframe
   among theirs, score at least their minimum, symbol allowed and not blocked, an active account the
   deployment may trade (mainnet only when ``live_trading_enabled``), fewer open positions than their
   maximum, no open position in that symbol already, and today's realized loss under their daily
   limit;
3. per user, **sizes** the order (``lib.sizing``: risk per trade over the stop distance, capped,
   rounded to the qty step). A skip is logged in ``trade_logs`` with its reason;
4. **reserves** the pair: inserts ``execution_orders`` as ``requested`` with the deterministic
   ``orderLinkId``. The unique (user, signal) row is what makes "once" true across executors;
5. sets leverage and **places** the market order with SL/TP attached. A timeout, a 5xx or a 10006
   is retried with the *same* ``orderLinkId``. If the first attempt had in fact been accepted, the
   exchange answers 110072 and the order is looked up, not sent again. If the outcome is still
   unknown when retries run out, the row stays ``requested`` for the order tracker to reconcile;
6. marks the signal ``executed`` (some order placed) or ``skipped``.

Per account, order creation keeps to Bybit's 10 per second.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from psycopg.types.json import Jsonb

from lib.crypto import API_KEY_FIELD, API_SECRET_FIELD, KeyVault
from lib.db.session import Caller, Database
from lib.errors import (
    AitradexError,
    Conflict,
    ExchangeError,
    ExchangeRejected,
    InvalidRequest,
    NotFound,
    RateLimited,
)
from lib.exchange.rate_limit import RateLimiter
from lib.exchange.trading import (
    DUPLICATE_ORDER_LINK_ID,
    Credentials,
    OrderRequest,
    OrderState,
    TradingExchange,
)
from lib.failpoints import failpoint
from lib.instruments import InstrumentFilters, fmt, normalize_qty, validate_order
from lib.log import log_event
from lib.sizing import normalize_levels, size_order

logger = logging.getLogger("aitradex.executor")

CATEGORY = "linear"
CLAIM_STALE_AFTER = timedelta(minutes=5)
PLACE_ATTEMPTS = 4
ORDERS_PER_SECOND_PER_ACCOUNT = 10
EXCHANGE_STATUS: Mapping[str, str] = {
    "New": "placed",
    "Untriggered": "placed",
    "PartiallyFilled": "partially_filled",
    "Filled": "filled",
    "Cancelled": "cancelled",
    "PartiallyFilledCanceled": "cancelled",
    "Deactivated": "cancelled",
    "Rejected": "rejected",
}
Outcome = Literal["placed", "filled", "rejected", "failed", "unknown", "skipped", "duplicate"]


def order_link_id(signal_id: UUID | str, user_id: UUID | str) -> str:
    """The deterministic Bybit ``orderLinkId`` of a (signal, user) pair: 35 chars of ``[a-z0-9-]``."""
    digest = hashlib.sha256(f"{signal_id}:{user_id}".encode()).hexdigest()
    return f"ax-{digest[:32]}"


def manual_order_link_id(user_id: UUID | str, client_order_id: str) -> str:
    """The ``orderLinkId`` of a manual trade, deterministic from the caller's own idempotency key."""
    digest = hashlib.sha256(f"manual:{user_id}:{client_order_id}".encode()).hexdigest()
    return f"am-{digest[:32]}"


@dataclass(frozen=True, slots=True)
class SignalRow:
    """A claimed signal."""

    id: UUID
    symbol: str
    category: str
    timeframe: str
    direction: str
    algorithm: str
    score: Decimal
    entry_price: Decimal
    stop_loss: Decimal
    take_profit: Decimal

    @property
    def side(self) -> str:
        return "Buy" if self.direction == "LONG" else "Sell"


@dataclass(frozen=True, slots=True)
class Target:
    """One user an order goes to, with what sizing needs."""

    user_id: UUID
    account_id: UUID
    environment: str
    api_key_encrypted: str
    api_secret_encrypted: str
    risk_per_trade_pct: Decimal
    max_position_usd: Decimal
    leverage: int


@dataclass(frozen=True, slots=True)
class OrderOutcome:
    """What happened for one (signal, user) pair."""

    user_id: UUID
    outcome: Outcome
    order_link_id: str | None = None
    reason: str = ""


@dataclass
class ExecutionReport:
    """One executor run."""

    claimed: int = 0
    expired: int = 0
    outcomes: list[OrderOutcome] = field(default_factory=list)
    duration_ms: float = 0.0

    def count(self, outcome: Outcome) -> int:
        return sum(1 for o in self.outcomes if o.outcome == outcome)


@dataclass
class ExecutorDeps:
    """What the executor needs, passed in (the wiring builds it; tests may hand fakes)."""

    db: Database
    exchange: TradingExchange
    vault: KeyVault
    filters: Any  # async (category, environment) -> Mapping[str, InstrumentFilters]
    worker: str = "executor"
    concurrency: int = 64
    account_limiters: dict[UUID, RateLimiter] = field(default_factory=dict)

    def limiter_for(self, account_id: UUID) -> RateLimiter:
        limiter = self.account_limiters.get(account_id)
        if limiter is None:
            limiter = RateLimiter(share=1.0, limit=ORDERS_PER_SECOND_PER_ACCOUNT, window_s=1.0)
            self.account_limiters[account_id] = limiter
        return limiter


_SERVICE = Caller.service()

_CLAIM_SQL = """
update signals set status = 'processing', claimed_at = %(now)s, claimed_by = %(worker)s
where id in (
  select id from signals
  where expires_at > %(now)s
    and (status = 'new' or (status = 'processing' and claimed_at < %(stale)s))
  order by created_at
  limit %(limit)s
  for update skip locked
)
returning id, symbol, category, timeframe, direction, algorithm, score, entry_price, stop_loss, take_profit
"""

_TARGETS_SQL = """
with settings as (
  select coalesce(
    (select value = 'true'::jsonb from app_settings where key = 'live_trading_enabled'), false
  ) as live
)
select distinct on (p.user_id)
  p.user_id, a.id as account_id, a.environment, a.api_key_encrypted, a.api_secret_encrypted,
  p.risk_per_trade_pct, p.max_position_usd, p.leverage
from trading_preferences p
join user_trading_accounts a on a.user_id = p.user_id and a.is_active
cross join settings s
where p.auto_trade_enabled
  and %(algorithm)s = any(p.algorithms)
  and %(timeframe)s = any(p.timeframes)
  and p.min_score <= %(score)s
  and (cardinality(p.symbol_allowlist) = 0 or %(symbol)s = any(p.symbol_allowlist))
  and not (%(symbol)s = any(p.symbol_blocklist))
  and (a.environment <> 'mainnet' or s.live)
  and not exists (
    select 1 from execution_orders o where o.user_id = p.user_id and o.signal_id = %(signal_id)s
  )
  and not exists (
    select 1 from execution_orders o
    where o.user_id = p.user_id and o.symbol = %(symbol)s
      and (o.status in ('requested', 'placed', 'partially_filled')
           or (o.status = 'filled' and o.closed_at is null))
  )
  and (
    select count(*) from execution_orders o
    where o.user_id = p.user_id
      and (o.status in ('requested', 'placed', 'partially_filled')
           or (o.status = 'filled' and o.closed_at is null))
  ) < p.max_open_positions
-- one account per user: the most recently connected one this deployment may trade
order by p.user_id, a.updated_at desc
"""

_TODAY_PNL_SQL = """
select coalesce(sum(realized_pnl), 0) as pnl from execution_orders
where user_id = %s and closed_at >= date_trunc('day', %s::timestamptz)
"""


async def log_trade(
    db: Database,
    user_id: UUID,
    event: str,
    message: str,
    *,
    order_id: UUID | None = None,
    level: str = "info",
    context: dict[str, Any] | None = None,
) -> None:
    """Append one ``trade_logs`` event (the user can read their own)."""
    async with db.write(_SERVICE) as conn:
        await conn.execute(
            "insert into trade_logs (user_id, order_id, level, event, message, context) "
            "values (%s, %s, %s, %s, %s, %s)",
            (user_id, order_id, level, event, message, Jsonb(context or {})),
        )


async def claim_signals(
    db: Database, *, worker: str, now: datetime, limit: int
) -> tuple[list[SignalRow], int]:
    """Expire old signals, then claim up to ``limit`` (returns the claimed ones and how many expired)."""
    async with db.write(_SERVICE) as conn:
        expired = await conn.execute(
            "update signals set status = 'expired', processed_at = %s "
            "where status in ('new', 'processing') and expires_at <= %s",
            (now, now),
        )
        rows = await (
            await conn.execute(
                _CLAIM_SQL, {"now": now, "worker": worker, "stale": now - CLAIM_STALE_AFTER, "limit": limit}
            )
        ).fetchall()
    return [SignalRow(**row) for row in rows], expired.rowcount


async def eligible_targets(db: Database, signal: SignalRow) -> list[Target]:
    """The users this signal goes to (see the module docstring for the rules)."""
    params = {
        "algorithm": signal.algorithm,
        "timeframe": signal.timeframe,
        "score": signal.score,
        "symbol": signal.symbol,
        "signal_id": signal.id,
    }
    async with db.read(_SERVICE) as conn:
        rows = await (await conn.execute(_TARGETS_SQL, params)).fetchall()
    return [Target(**row) for row in rows]


def _credentials(vault: KeyVault, target: Target) -> Credentials:
    return Credentials(
        environment=target.environment,
        api_key=vault.decrypt(target.api_key_encrypted, user_id=str(target.user_id), field=API_KEY_FIELD),
        api_secret=vault.decrypt(
            target.api_secret_encrypted, user_id=str(target.user_id), field=API_SECRET_FIELD
        ),
    )


async def _within_daily_loss_limit(
    db: Database, user_id: UUID, equity: Decimal, limit_pct: Decimal, now: datetime
) -> bool:
    async with db.read(_SERVICE) as conn:
        row = await (await conn.execute(_TODAY_PNL_SQL, (user_id, now))).fetchone()
    pnl = Decimal(row["pnl"]) if row else Decimal(0)
    return pnl > -(equity * limit_pct / 100)


async def record_exchange_state(db: Database, order_id: UUID, state: OrderState, *, now: datetime) -> str:
    """Move an ``execution_orders`` row to what the exchange reports; returns the new status."""
    status = EXCHANGE_STATUS.get(state.status, "placed")
    async with db.write(_SERVICE) as conn:
        await conn.execute(
            "update execution_orders set status = %s, exchange_order_id = %s, filled_qty = %s, "
            "avg_fill_price = %s, fee = %s, placed_at = coalesce(placed_at, %s), "
            "filled_at = case when %s = 'filled' then coalesce(filled_at, %s) else filled_at end, "
            "status_reason = nullif(%s, '') where id = %s",
            (
                status,
                state.order_id,
                state.filled_qty,
                state.avg_price,
                state.fee,
                now,
                status,
                now,
                state.reject_reason,
                order_id,
            ),
        )
    return status


async def place_with_retries(
    deps: ExecutorDeps,
    creds: Credentials,
    request: OrderRequest,
    account_id: UUID,
) -> tuple[str, OrderState | None, ExchangeError | None]:
    """Send the order, retrying retryable failures with the same ``orderLinkId``.

    Returns ("placed", state-or-None, None), ("rejected", None, error) or ("unknown", None, last error).
    A duplicate (110072) means an earlier attempt was accepted: the order is looked up instead.
    """
    last: ExchangeError | None = None
    for attempt in range(PLACE_ATTEMPTS):
        await deps.limiter_for(account_id).acquire()
        try:
            await deps.exchange.place_order(creds, request)
            failpoint("executor.after_exchange_ack")
            state = await _lookup(deps, creds, request)
            return "placed", state, None
        except ExchangeRejected as exc:
            if exc.ret_code == DUPLICATE_ORDER_LINK_ID:
                state = await _lookup(deps, creds, request)
                return "placed", state, None
            return "rejected", None, exc
        except ExchangeError as exc:
            if not exc.retryable:
                return "rejected", None, exc
            last = exc
            await asyncio.sleep(min(2.0, 0.1 * 2**attempt) if not isinstance(exc, RateLimited) else 1.0)
    return "unknown", None, last


async def _lookup(deps: ExecutorDeps, creds: Credentials, request: OrderRequest) -> OrderState | None:
    try:
        return await deps.exchange.find_order(creds, request.category, request.symbol, request.order_link_id)
    except ExchangeError:
        return None  # the tracker will look again; the order is already safe on the exchange


async def execute_for_target(
    deps: ExecutorDeps,
    signal: SignalRow,
    target: Target,
    filters: InstrumentFilters,
    *,
    now: datetime,
    link_id: str,
    daily_loss_limit_pct: Decimal,
) -> OrderOutcome:
    """Everything for one (signal, user) pair; never raises for exchange or sizing problems."""
    db = deps.db
    try:
        creds = _credentials(deps.vault, target)
        wallet = await deps.exchange.wallet_balance(creds)
    except AitradexError as exc:
        await log_trade(
            db,
            target.user_id,
            "account_unusable",
            exc.message,
            level="warning",
            context={"signal_id": str(signal.id), "code": exc.code},
        )
        return OrderOutcome(target.user_id, "skipped", reason=exc.code)
    if not await _within_daily_loss_limit(db, target.user_id, wallet.total_equity, daily_loss_limit_pct, now):
        await log_trade(
            db,
            target.user_id,
            "daily_loss_limit",
            "today's realized loss reached the daily limit",
            context={"signal_id": str(signal.id)},
        )
        return OrderOutcome(target.user_id, "skipped", reason="daily_loss_limit")

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
        await log_trade(
            db,
            target.user_id,
            "sizing_skipped",
            decision.message,
            context={"signal_id": str(signal.id), "reason": decision.skip_reason},
        )
        return OrderOutcome(target.user_id, "skipped", reason=str(decision.skip_reason))

    assert decision.levels is not None
    return await reserve_and_place(
        deps,
        target,
        creds,
        symbol=signal.symbol,
        side=signal.side,
        qty=decision.qty,
        entry=decision.levels.entry,
        stop_loss=decision.levels.stop_loss,
        take_profit=decision.levels.take_profit,
        link_id=link_id,
        signal_id=signal.id,
        now=now,
        context={"risk": fmt(decision.risk_amount), "capped_by": list(decision.capped_by)},
    )


async def reserve_and_place(
    deps: ExecutorDeps,
    target: Target,
    creds: Credentials,
    *,
    symbol: str,
    side: str,
    qty: Decimal,
    entry: Decimal,
    stop_loss: Decimal | None,
    take_profit: Decimal | None,
    link_id: str,
    signal_id: UUID | None,
    now: datetime,
    context: dict[str, Any] | None = None,
) -> OrderOutcome:
    """Reserve the order row (``requested``), set leverage, place it, and record what happened."""
    db = deps.db
    async with db.write(_SERVICE) as conn:
        row = await (
            await conn.execute(
                "insert into execution_orders (user_id, signal_id, account_id, symbol, category, side, "
                "order_type, qty, price, stop_loss, take_profit, leverage, order_link_id, environment, "
                "requested_at, attempts) "
                "values (%s, %s, %s, %s, %s, %s, 'Market', %s, %s, %s, %s, %s, %s, %s, %s, 1) "
                "on conflict do nothing returning id",
                (
                    target.user_id,
                    signal_id,
                    target.account_id,
                    symbol,
                    CATEGORY,
                    side,
                    qty,
                    entry,
                    stop_loss,
                    take_profit,
                    target.leverage,
                    link_id,
                    target.environment,
                    now,
                ),
            )
        ).fetchone()
    if row is None:  # another executor (or an earlier call) reserved this pair first
        return OrderOutcome(target.user_id, "duplicate", link_id)
    order_id: UUID = row["id"]
    await log_trade(
        db,
        target.user_id,
        "order_requested",
        f"{side} {fmt(qty)} {symbol}",
        order_id=order_id,
        context={"qty": fmt(qty), **(context or {})},
    )

    try:
        await deps.exchange.set_leverage(creds, CATEGORY, symbol, target.leverage)
    except ExchangeError as exc:
        if not exc.retryable:
            return await _finish(
                db, target, order_id, link_id, "failed", f"leverage refused: {exc.message}", exc
            )
    request = OrderRequest(
        category=CATEGORY,
        symbol=symbol,
        side=side,
        qty=fmt(qty),
        order_link_id=link_id,
        stop_loss=fmt(stop_loss) if stop_loss is not None else None,
        take_profit=fmt(take_profit) if take_profit is not None else None,
    )
    result, state, error = await place_with_retries(deps, creds, request, target.account_id)
    async with db.write(_SERVICE) as conn:
        await conn.execute(
            "update user_trading_accounts set last_used_at = %s where id = %s", (now, target.account_id)
        )
    if result == "placed":
        status = "placed"
        if state is not None:
            status = await record_exchange_state(db, order_id, state, now=now)
        else:
            async with db.write(_SERVICE) as conn:
                await conn.execute(
                    "update execution_orders set status = 'placed', placed_at = %s where id = %s",
                    (now, order_id),
                )
        await log_trade(
            db, target.user_id, "order_placed", f"exchange accepted, status {status}", order_id=order_id
        )
        return OrderOutcome(target.user_id, "filled" if status == "filled" else "placed", link_id)
    if result == "rejected":
        assert error is not None
        return await _finish(db, target, order_id, link_id, "rejected", error.message, error)
    await log_trade(
        db,
        target.user_id,
        "order_outcome_unknown",
        "no answer from the exchange after retries; the order tracker will reconcile it by orderLinkId",
        order_id=order_id,
        level="warning",
        context={"error": error.code if error else None},
    )
    return OrderOutcome(target.user_id, "unknown", link_id, reason=error.code if error else "")


async def _finish(
    db: Database,
    target: Target,
    order_id: UUID,
    link_id: str,
    status: Literal["rejected", "failed"],
    reason: str,
    error: ExchangeError,
) -> OrderOutcome:
    async with db.write(_SERVICE) as conn:
        await conn.execute(
            "update execution_orders set status = %s, status_reason = %s, ret_code = %s, ret_msg = %s "
            "where id = %s",
            (status, reason[:500], error.ret_code, (error.ret_msg or "")[:500], order_id),
        )
    await log_trade(
        db,
        target.user_id,
        f"order_{status}",
        reason,
        order_id=order_id,
        level="warning",
        context={"ret_code": error.ret_code},
    )
    return OrderOutcome(target.user_id, status, link_id, reason=reason)


async def fan_out(deps: ExecutorDeps, signal: SignalRow, *, now: datetime) -> list[OrderOutcome]:
    """Execute one claimed signal for every eligible user, then mark it executed or skipped."""
    targets = await eligible_targets(deps.db, signal)
    outcomes: list[OrderOutcome] = []
    if targets:
        environments = sorted({t.environment for t in targets})
        filters_by_env = {env: await deps.filters(CATEGORY, env) for env in environments}
        async with deps.db.read(_SERVICE) as conn:
            rows = await (
                await conn.execute(
                    "select user_id, daily_loss_limit_pct from trading_preferences where user_id = any(%s)",
                    ([t.user_id for t in targets],),
                )
            ).fetchall()
        loss_limits = {r["user_id"]: Decimal(r["daily_loss_limit_pct"]) for r in rows}
        semaphore = asyncio.Semaphore(deps.concurrency)

        async def one(target: Target) -> OrderOutcome:
            filters = filters_by_env[target.environment].get(signal.symbol)
            if filters is None:
                await log_trade(
                    deps.db,
                    target.user_id,
                    "symbol_unknown",
                    f"{signal.symbol} is not listed on {target.environment}",
                    context={"signal_id": str(signal.id)},
                )
                return OrderOutcome(target.user_id, "skipped", reason="symbol_unknown")
            async with semaphore:
                return await execute_for_target(
                    deps,
                    signal,
                    target,
                    filters,
                    now=now,
                    link_id=order_link_id(signal.id, target.user_id),
                    daily_loss_limit_pct=loss_limits.get(target.user_id, Decimal(100)),
                )

        outcomes = list(await asyncio.gather(*(one(t) for t in targets)))
    placed = any(o.outcome in ("placed", "filled", "unknown", "duplicate") for o in outcomes)
    async with deps.db.write(_SERVICE) as conn:
        await conn.execute(
            "update signals set status = %s, processed_at = %s where id = %s",
            ("executed" if placed else "skipped", now, signal.id),
        )
    return outcomes


async def execute_pending(deps: ExecutorDeps, *, now: datetime, batch_size: int = 50) -> ExecutionReport:
    """One executor run: claim a batch of signals and execute each for its users."""
    started = time.perf_counter()
    signals, expired = await claim_signals(deps.db, worker=deps.worker, now=now, limit=batch_size)
    report = ExecutionReport(claimed=len(signals), expired=expired)
    for signal in signals:
        report.outcomes.extend(await fan_out(deps, signal, now=now))
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
        duration_ms=report.duration_ms,
    )
    return report


def outcomes_summary(outcomes: Sequence[OrderOutcome]) -> dict[str, int]:
    """Counts of each outcome, for responses and logs."""
    summary: dict[str, int] = {}
    for o in outcomes:
        summary[o.outcome] = summary.get(o.outcome, 0) + 1
    return summary


@dataclass(frozen=True, slots=True)
class ManualOrder:
    """A user's own market order: notional in USD, optional SL/TP, and an idempotency key of theirs."""

    symbol: str
    side: Literal["Buy", "Sell"]
    amount_usd: Decimal
    client_order_id: str
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None


_USER_TARGET_SQL = """
with settings as (
  select coalesce(
    (select value = 'true'::jsonb from app_settings where key = 'live_trading_enabled'), false
  ) as live
)
select a.user_id, a.id as account_id, a.environment, a.api_key_encrypted, a.api_secret_encrypted,
       coalesce(p.risk_per_trade_pct, 1) as risk_per_trade_pct,
       coalesce(p.max_position_usd, 1000) as max_position_usd,
       coalesce(p.leverage, 1) as leverage,
       coalesce(p.daily_loss_limit_pct, 5) as daily_loss_limit_pct
from user_trading_accounts a
left join trading_preferences p on p.user_id = a.user_id
cross join settings s
where a.user_id = %s and a.is_active and (a.environment <> 'mainnet' or s.live)
order by a.updated_at desc
limit 1
"""


async def user_target(db: Database, user_id: UUID) -> tuple[Target, Decimal]:
    """The user's tradable account with their preferences (defaults if never saved), and their loss limit."""
    async with db.read(_SERVICE) as conn:
        row = await (await conn.execute(_USER_TARGET_SQL, (user_id,))).fetchone()
    if row is None:
        raise Conflict(
            "connect an active trading account first (mainnet needs live trading enabled by the operator)"
        )
    limit = Decimal(row.pop("daily_loss_limit_pct"))
    return Target(**row), limit


async def execute_signal_for_user(
    deps: ExecutorDeps, *, user_id: UUID, signal_id: UUID, now: datetime
) -> OrderOutcome:
    """Execute one signal for one user on request (auto-trade need not be on; caps still apply)."""
    async with deps.db.read(_SERVICE) as conn:
        row = await (
            await conn.execute(
                "select id, symbol, category, timeframe, direction, algorithm, score, entry_price, "
                "stop_loss, take_profit from signals "
                "where id = %s and expires_at > %s and status <> 'expired'",
                (signal_id, now),
            )
        ).fetchone()
    if row is None:
        raise NotFound("no such signal, or it has expired", details={"signal_id": str(signal_id)})
    signal = SignalRow(**row)
    target, loss_limit = await user_target(deps.db, user_id)
    filters = (await deps.filters(CATEGORY, target.environment)).get(signal.symbol)
    if filters is None:
        raise NotFound(f"{signal.symbol} is not listed on {target.environment}")
    return await execute_for_target(
        deps,
        signal,
        target,
        filters,
        now=now,
        link_id=order_link_id(signal.id, user_id),
        daily_loss_limit_pct=loss_limit,
    )


async def execute_manual_for_user(
    deps: ExecutorDeps, market: Any, *, user_id: UUID, order: ManualOrder, now: datetime
) -> OrderOutcome:
    """Place a user's manual order of ``amount_usd`` at the current last price of their environment."""
    target, _ = await user_target(deps.db, user_id)
    price = await last_price(market, target.environment, CATEGORY, order.symbol)
    filters = (await deps.filters(CATEGORY, target.environment)).get(order.symbol)
    if filters is None:
        raise NotFound(f"{order.symbol} is not listed on {target.environment}")
    if order.amount_usd > target.max_position_usd:
        raise InvalidRequest(
            "amount is above your max position", details={"max_position_usd": fmt(target.max_position_usd)}
        )
    qty = normalize_qty(order.amount_usd / price, filters)
    violations = validate_order(qty, price, filters)
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
    creds = _credentials(deps.vault, target)
    return await reserve_and_place(
        deps,
        target,
        creds,
        symbol=order.symbol,
        side=order.side,
        qty=qty,
        entry=entry,
        stop_loss=stop,
        take_profit=target_price,
        link_id=manual_order_link_id(user_id, order.client_order_id),
        signal_id=None,
        now=now,
        context={"manual": True},
    )


async def queue_status(db: Database, now: datetime) -> dict[str, int]:
    """Signals waiting, being processed, and orders not yet final: the executor's state at a glance."""
    async with db.read(_SERVICE) as conn:
        row = await (
            await conn.execute(
                "select "
                "(select count(*) from signals where status = 'new' and expires_at > %(now)s) as pending, "
                "(select count(*) from signals where status = 'processing') as processing, "
                "(select count(*) from execution_orders where status = 'requested') as requested, "
                "(select count(*) from execution_orders "
                " where status in ('placed', 'partially_filled')) as open_orders",
                {"now": now},
            )
        ).fetchone()
    return {k: int(v) for k, v in (row or {}).items()}


async def last_price(market: Any, environment: str, category: str, symbol: str) -> Decimal:
    """The symbol's last traded price in ``environment`` (for sizing a manual order by notional)."""
    async with market.client(environment) as client:
        tickers = await client.tickers(category, symbol)
    if not tickers or tickers[0].last_price is None:
        raise NotFound(f"no price for {symbol} on {environment}")
    return Decimal(str(tickers[0].last_price))
