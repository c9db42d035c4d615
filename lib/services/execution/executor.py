"""The trade executor: turns new signals into orders, once per (signal, user), and records every step.

The signals table is the queue. An executor run:

1. expires signals past ``expires_at`` and **claims** a batch of ``new`` ones (or ``processing`` ones
   whose claim is stale because their executor died): ``FOR UPDATE SKIP LOCKED``, so executors on
   several machines never take the same signal. Before fanning a claimed signal out, the run renews
   its claim, and gives the signal up if another executor has since taken it over;
2. **fans out** each signal to the eligible users: auto-trade on, the signal's algorithm and timeframe
   among theirs, score at least their minimum, symbol allowed and not blocked, an active account the
   deployment may trade (mainnet only when ``live_trading_enabled``), fewer open positions than their
   maximum, no open position in that symbol already, and today's realized loss under their daily
   limit;
3. per user, reads the wallet (retried on timeouts, 5xx and 10006) and **sizes** the order
   (``lib.core.sizing``: risk per trade over the stop distance, capped, rounded to the qty step). A skip is
   logged in ``trade_logs`` with its reason;
4. **reserves** the pair: inserts ``execution_orders`` as ``requested`` with the deterministic
   ``orderLinkId``, and commits, before anything is sent. The unique (user, signal) row is what makes
   "once" true across executors. The open-position rules are checked again inside the reservation,
   under a per-user advisory lock, so two executors working on different signals cannot both give a
   user a position in one symbol, or one position more than their maximum;
5. sets leverage (retried) and **places** the market order with SL/TP attached. A timeout, a 5xx or
   a 10006 is retried with the *same* ``orderLinkId``. If the first attempt had in fact been
   accepted, the exchange answers 110072 and the order is looked up, not sent again. If the outcome
   is still unknown when retries run out (or :data:`ORDER_WINDOW` has passed), the row stays
   ``requested``;
6. records the result (``placed`` with the exchange's order id, ``rejected`` or ``failed`` with the
   reason), then marks the signal ``executed`` (some order is live) or ``skipped``; but if the exchange
   left any pair unanswered (a wallet it could not read, leverage it could not set, an order with no
   answer), the signal goes back to the queue instead. The next run reclaims it, sends the
   ``requested`` rows again with their own ``orderLinkId`` (so one that was accepted after all is found
   by its 110072, not placed twice) and retries the users it could not read. A dead executor's claim,
   once stale, is resumed the same way. The order tracker reconciles ``requested`` rows from the
   exchange in the meantime, and marks them failed only once no executor will send them any more.

Writes are grouped: reservations, results and log lines from the orders in flight are written a
batch per statement (:class:`_Batcher`), because one transaction per write cost more CPU than the
exchange calls themselves (``bench/fanout.py``). Batching never changes the order of effects that
matter: a reservation is committed before its order is sent, and a result is written only after the
exchange answered. A crash between the two leaves a ``requested`` row, which the tracker reconciles.

Per account, order creation keeps to Bybit's 10 per second.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar
from uuid import UUID

from psycopg.types.json import Jsonb

from lib.core.instruments import InstrumentFilters, fmt, normalize_qty, validate_order
from lib.core.sizing import normalize_levels, size_order
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
    WalletBalance,
)
from lib.failpoints import failpoint
from lib.log import log_event

logger = logging.getLogger("aitradex.executor")

CATEGORY = "linear"
CLAIM_STALE_AFTER = timedelta(minutes=5)
#: Sends of one order (the first and its retries with the same orderLinkId).
PLACE_ATTEMPTS = 4
#: Attempts of a wallet read or a leverage change on timeouts, 5xx and 10006.
CALL_ATTEMPTS = 4
#: No order is sent (or re-sent) later than this after its reservation: the tracker's grace period for
#: ``requested`` rows (``lib.services.tracking.REQUESTED_GRACE``) must exceed it plus one request timeout.
ORDER_WINDOW = timedelta(seconds=40)
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
# A row that holds (or may hold) a position counts against the open-position rules: requested, placed,
# partially filled, or filled and not yet closed. The queries below spell this out each time.
Outcome = Literal["placed", "filled", "rejected", "failed", "unknown", "skipped", "duplicate"]
#: Skips that a later run may not repeat: the exchange did not answer (as opposed to an account, a rule
#: or sizing saying no).
TRANSIENT_SKIPS = frozenset({"exchange_unavailable"})

_NO_REASON = ("", "EC_NoError")


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
    """A claimed signal. ``reclaimed``: some executor had claimed it before (it died, or failed and
    handed it back), so rows it reserved may be waiting to be sent."""

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
    reclaimed: bool = False

    @property
    def side(self) -> str:
        return "Buy" if self.direction == "LONG" else "Sell"


@dataclass(frozen=True, slots=True)
class Target:
    """One user an order goes to, with what sizing and the open-position rules need."""

    user_id: UUID
    account_id: UUID
    environment: str
    api_key_encrypted: str
    api_secret_encrypted: str
    risk_per_trade_pct: Decimal
    max_position_usd: Decimal
    leverage: int
    max_open_positions: int


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
    """What the executor needs, passed in (the wiring builds it; tests may hand fakes).

    ``concurrency`` bounds the orders in flight at once; ``batch_max`` bounds how many writes share one
    statement, and ``batch_wait_s`` (reservations: an order waits for it) and ``behind_wait_s`` (results
    and logs, written behind) how long the first of a batch waits for company. Measured by
    ``bench/fanout.py``: 2 ms windows made batches of about one and cost as much as unbatched writes.
    """

    db: Database
    exchange: TradingExchange
    vault: KeyVault
    filters: Any  # async (category, environment) -> Mapping[str, InstrumentFilters]
    worker: str = "executor"
    concurrency: int = 128
    account_limiters: dict[UUID, RateLimiter] = field(default_factory=dict)
    batch_max: int = 128
    batch_wait_s: float = 0.02
    behind_wait_s: float = 0.05
    # Signals expire in market time: on the paper exchange that is its replay clock (2018), not the
    # wall clock. None: market time is wall time (the ``now`` a run is given).
    market_now: Callable[[], Awaitable[datetime]] | None = None

    async def market_time(self, wall: datetime) -> datetime:
        """Market time for judging signal expiry (``wall`` when no market clock is wired)."""
        return wall if self.market_now is None else await self.market_now()

    def limiter_for(self, account_id: UUID) -> RateLimiter:
        limiter = self.account_limiters.get(account_id)
        if limiter is None:
            limiter = RateLimiter(share=1.0, limit=ORDERS_PER_SECOND_PER_ACCOUNT, window_s=1.0)
            self.account_limiters[account_id] = limiter
        return limiter


_SERVICE = Caller.service()

# -- grouped writes --------------------------------------------------------------------------------

T = TypeVar("T")
R = TypeVar("R")


class _Batcher(Generic[T, R]):
    """Collects items from concurrent tasks and hands them to ``flush`` a batch at a time.

    ``submit`` returns what ``flush`` returned for that item once the batch is written (committed), or
    raises what ``flush`` raised. A batch goes out when ``max_items`` are waiting, or ``max_wait_s`` after
    the first one arrived. ``key``, when given, keeps items with equal keys out of one batch (the later
    ones wait for the next): a statement cannot see its own other rows, so per-user rules need that.
    """

    def __init__(
        self,
        flush: Callable[[list[T]], Awaitable[list[R]]],
        *,
        max_items: int,
        max_wait_s: float,
        key: Callable[[T], Hashable] | None = None,
    ) -> None:
        self._flush = flush
        self._max_items = max(1, max_items)
        self._max_wait_s = max_wait_s
        self._key = key
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        """Queue ``item`` and wait until its batch is written."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if len(self._pending) >= self._max_items:
            self._start()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._max_wait_s, self._start)
        return await future

    def _take(self) -> list[tuple[T, asyncio.Future[R]]]:
        if self._key is None:
            batch, self._pending = self._pending[: self._max_items], self._pending[self._max_items :]
            return batch
        batch, rest, seen = [], [], set()
        for entry in self._pending:
            k = self._key(entry[0])
            if k in seen or len(batch) >= self._max_items:
                rest.append(entry)
            else:
                seen.add(k)
                batch.append(entry)
        self._pending = rest
        return batch

    def _start(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch = self._take()
        if batch:
            task = asyncio.get_running_loop().create_task(self._write(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if self._pending:
            self._timer = asyncio.get_running_loop().call_later(self._max_wait_s, self._start)

    async def _write(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._flush([item for item, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def drain(self) -> None:
        """Write everything queued and wait for every batch in flight."""
        while self._pending or self._tasks:
            if self._pending:
                self._start()
            if self._tasks:
                await asyncio.wait(set(self._tasks))


@dataclass(frozen=True, slots=True)
class _Reservation:
    user_id: UUID
    signal_id: UUID | None
    account_id: UUID
    symbol: str
    side: str
    qty: Decimal
    price: Decimal
    stop_loss: Decimal | None
    take_profit: Decimal | None
    leverage: int
    order_link_id: str
    environment: str
    requested_at: datetime
    max_open: int | None  # None: no open-position rules (a manual order)
    message: str
    context: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Reserved:
    order_id: UUID | None
    reserved: bool  # the pair's row already existed (another executor, or an earlier run)
    symbol_free: bool
    under_max: bool


@dataclass(frozen=True, slots=True)
class _Result:
    order_id: UUID
    user_id: UUID
    status: str
    at: datetime
    event: str
    message: str
    level: str = "info"
    exchange_order_id: str | None = None
    filled_qty: Decimal | None = None
    avg_price: Decimal | None = None
    fee: Decimal | None = None
    reason: str | None = None
    ret_code: int | None = None
    ret_msg: str | None = None
    attempts: int | None = None
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _LogLine:
    user_id: UUID
    event: str
    message: str
    order_id: UUID | None = None
    level: str = "info"
    context: dict[str, Any] = field(default_factory=dict)


_LOCK_USERS_SQL = (
    "select pg_advisory_xact_lock(hashtextextended('aitradex.execution:' || u::text, 0)) "
    "from (select distinct unnest(%s::uuid[]) as u order by 1) users"
)

_RESERVE_SQL = """
with input as (
  select * from unnest(
    %(user_id)s::uuid[], %(signal_id)s::uuid[], %(account_id)s::uuid[], %(symbol)s::text[],
    %(side)s::text[], %(qty)s::numeric[], %(price)s::numeric[], %(stop_loss)s::numeric[],
    %(take_profit)s::numeric[], %(leverage)s::int[], %(order_link_id)s::text[], %(environment)s::text[],
    %(requested_at)s::timestamptz[], %(max_open)s::int[], %(message)s::text[], %(context)s::jsonb[]
  ) as t(user_id, signal_id, account_id, symbol, side, qty, price, stop_loss, take_profit, leverage,
         order_link_id, environment, requested_at, max_open, message, context)
),
checked as (
  select i.*,
    exists (select 1 from execution_orders o where o.order_link_id = i.order_link_id) as reserved,
    i.max_open is null or not exists (
      select 1 from execution_orders o
      where o.user_id = i.user_id and o.symbol = i.symbol
        and (o.status in ('requested', 'placed', 'partially_filled')
             or (o.status = 'filled' and o.closed_at is null))
    ) as symbol_free,
    i.max_open is null or (
      select count(*) from execution_orders o
      where o.user_id = i.user_id
        and (o.status in ('requested', 'placed', 'partially_filled')
             or (o.status = 'filled' and o.closed_at is null))
    ) < i.max_open as under_max
  from input i
),
inserted as (
  insert into execution_orders (user_id, signal_id, account_id, symbol, category, side, order_type, qty,
    price, stop_loss, take_profit, leverage, order_link_id, environment, requested_at, attempts)
  select user_id, signal_id, account_id, symbol, 'linear', side, 'Market', qty, price, stop_loss,
    take_profit, leverage, order_link_id, environment, requested_at, 0
  from checked where not reserved and symbol_free and under_max
  on conflict do nothing
  returning id, order_link_id
),
logged as (
  insert into trade_logs (user_id, order_id, level, event, message, context)
  select c.user_id, ins.id, 'info', 'order_requested', c.message, c.context
  from inserted ins join checked c using (order_link_id)
)
select c.order_link_id, ins.id, c.reserved, c.symbol_free, c.under_max
from checked c left join inserted ins using (order_link_id)
"""

_RESULT_SQL = """
with input as (
  select * from unnest(
    %(id)s::uuid[], %(user_id)s::uuid[], %(status)s::text[], %(at)s::timestamptz[],
    %(exchange_order_id)s::text[], %(filled_qty)s::numeric[], %(avg_price)s::numeric[], %(fee)s::numeric[],
    %(reason)s::text[], %(ret_code)s::int[], %(ret_msg)s::text[], %(attempts)s::int[],
    %(event)s::text[], %(level)s::text[], %(message)s::text[], %(context)s::jsonb[]
  ) as t(id, user_id, status, at, exchange_order_id, filled_qty, avg_price, fee, reason, ret_code, ret_msg,
         attempts, event, level, message, context)
),
updated as (
  update execution_orders o set
    status = i.status,
    exchange_order_id = coalesce(i.exchange_order_id, o.exchange_order_id),
    filled_qty = coalesce(i.filled_qty, o.filled_qty),
    avg_fill_price = coalesce(i.avg_price, o.avg_fill_price),
    fee = coalesce(i.fee, o.fee),
    placed_at = case when i.status in ('placed', 'partially_filled', 'filled')
                     then coalesce(o.placed_at, i.at) else o.placed_at end,
    filled_at = case when i.status = 'filled' then coalesce(o.filled_at, i.at) else o.filled_at end,
    status_reason = coalesce(i.reason, o.status_reason),
    ret_code = coalesce(i.ret_code, o.ret_code),
    ret_msg = coalesce(i.ret_msg, o.ret_msg),
    attempts = coalesce(i.attempts, o.attempts)
  from input i
  -- Only over what this executor reserved: if the tracker already recorded the exchange's word, it stands.
  where o.id = i.id and o.status in ('requested', 'failed')
  returning o.id
)
insert into trade_logs (user_id, order_id, level, event, message, context)
select user_id, id, level, event, message, context from input
"""

_LOG_SQL = """
insert into trade_logs (user_id, order_id, level, event, message, context)
select * from unnest(%s::uuid[], %s::uuid[], %s::text[], %s::text[], %s::text[], %s::jsonb[])
"""


class _Writer:
    """The executor's grouped writes: reservations, results and log lines."""

    def __init__(self, db: Database, *, max_items: int, max_wait_s: float, behind_wait_s: float) -> None:
        self.db = db
        self._reserve = _Batcher(
            self._write_reservations, max_items=max_items, max_wait_s=max_wait_s, key=lambda r: r.user_id
        )
        self._results: _Batcher[_Result, None] = _Batcher(
            self._write_results, max_items=max_items, max_wait_s=behind_wait_s
        )
        self._logs: _Batcher[_LogLine, None] = _Batcher(
            self._write_logs, max_items=max_items, max_wait_s=behind_wait_s
        )
        self._behind: set[asyncio.Future[None]] = set()

    async def reserve(self, item: _Reservation) -> _Reserved:
        """Insert the ``requested`` row (rules permitting) and wait for the commit."""
        return await self._reserve.submit(item)

    def result(self, item: _Result) -> None:
        """Record an order's result; written behind, :meth:`drain` waits for it."""
        self._behind.add(asyncio.ensure_future(self._results.submit(item)))

    def log(self, item: _LogLine) -> None:
        """Append a ``trade_logs`` line; written behind, :meth:`drain` waits for it."""
        self._behind.add(asyncio.ensure_future(self._logs.submit(item)))

    async def drain(self) -> None:
        """Wait until every write so far is committed; raises the first failure."""
        await self._reserve.drain()
        await self._results.drain()
        await self._logs.drain()
        behind, self._behind = self._behind, set()
        failures = [r for r in await asyncio.gather(*behind, return_exceptions=True) if r is not None]
        if failures:
            raise failures[0]

    async def _write_reservations(self, items: list[_Reservation]) -> list[_Reserved]:
        params = {
            "user_id": [i.user_id for i in items],
            "signal_id": [i.signal_id for i in items],
            "account_id": [i.account_id for i in items],
            "symbol": [i.symbol for i in items],
            "side": [i.side for i in items],
            "qty": [i.qty for i in items],
            "price": [i.price for i in items],
            "stop_loss": [i.stop_loss for i in items],
            "take_profit": [i.take_profit for i in items],
            "leverage": [i.leverage for i in items],
            "order_link_id": [i.order_link_id for i in items],
            "environment": [i.environment for i in items],
            "requested_at": [i.requested_at for i in items],
            "max_open": [i.max_open for i in items],
            "message": [i.message for i in items],
            "context": [Jsonb(i.context) for i in items],
        }
        async with self.db.write(_SERVICE) as conn:
            if any(i.max_open is not None for i in items):
                await conn.execute(_LOCK_USERS_SQL, ([i.user_id for i in items if i.max_open is not None],))
            rows = await (await conn.execute(_RESERVE_SQL, params)).fetchall()
        by_link = {r["order_link_id"]: r for r in rows}
        return [
            _Reserved(
                order_id=by_link[i.order_link_id]["id"],
                reserved=bool(by_link[i.order_link_id]["reserved"]),
                symbol_free=bool(by_link[i.order_link_id]["symbol_free"]),
                under_max=bool(by_link[i.order_link_id]["under_max"]),
            )
            for i in items
        ]

    async def _write_results(self, items: list[_Result]) -> list[None]:
        params = {
            "id": [i.order_id for i in items],
            "user_id": [i.user_id for i in items],
            "status": [i.status for i in items],
            "at": [i.at for i in items],
            "exchange_order_id": [i.exchange_order_id for i in items],
            "filled_qty": [i.filled_qty for i in items],
            "avg_price": [i.avg_price for i in items],
            "fee": [i.fee for i in items],
            "reason": [i.reason[:500] if i.reason else None for i in items],
            "ret_code": [i.ret_code for i in items],
            "ret_msg": [i.ret_msg[:500] if i.ret_msg else None for i in items],
            "attempts": [i.attempts for i in items],
            "event": [i.event for i in items],
            "level": [i.level for i in items],
            "message": [i.message for i in items],
            "context": [Jsonb(i.context) for i in items],
        }
        async with self.db.write(_SERVICE) as conn:
            await conn.execute(_RESULT_SQL, params)
        return [None] * len(items)

    async def _write_logs(self, items: list[_LogLine]) -> list[None]:
        async with self.db.write(_SERVICE) as conn:
            await conn.execute(
                _LOG_SQL,
                (
                    [i.user_id for i in items],
                    [i.order_id for i in items],
                    [i.level for i in items],
                    [i.event for i in items],
                    [i.message for i in items],
                    [Jsonb(i.context) for i in items],
                ),
            )
        return [None] * len(items)


class _Run:
    """One executor run: its clock, its grouped writes, and what it learned along the way."""

    def __init__(self, deps: ExecutorDeps, now: datetime) -> None:
        self.deps = deps
        self._base = now
        self._t0 = time.monotonic()
        self.writer = _Writer(
            deps.db, max_items=deps.batch_max, max_wait_s=deps.batch_wait_s, behind_wait_s=deps.behind_wait_s
        )
        self.wallets: dict[UUID, WalletBalance] = {}
        self.used_accounts: set[UUID] = set()

    def now(self) -> datetime:
        """The run's ``now`` moved on by the time spent since it started (so row times stay true)."""
        return self._base + timedelta(seconds=time.monotonic() - self._t0)

    async def wallet(self, account_id: UUID, creds: Credentials) -> WalletBalance:
        """The account's wallet, read once per run (retried on transient failures)."""
        wallet = self.wallets.get(account_id)
        if wallet is None:
            wallet = await _retrying(lambda: self.deps.exchange.wallet_balance(creds))
            self.wallets[account_id] = wallet
        return wallet

    async def finish(self) -> None:
        """Write what is still queued, then note the accounts this run sent orders for."""
        await self.writer.drain()
        if self.used_accounts:
            used, self.used_accounts = sorted(self.used_accounts), set()
            async with self.deps.db.write(_SERVICE) as conn:
                await conn.execute(
                    "update user_trading_accounts set last_used_at = %s where id = any(%s)",
                    (self.now(), used),
                )


# -- queue -----------------------------------------------------------------------------------------

_CLAIM_SQL = """
with picked as (
  select id, claimed_at is not null as reclaimed from signals
  where expires_at > %(market)s
    and (status = 'new' or (status = 'processing' and claimed_at < %(stale)s))
    and (%(ids)s::uuid[] is null or id = any(%(ids)s::uuid[]))
  order by created_at
  limit %(limit)s
  for update skip locked
)
update signals s set status = 'processing', claimed_at = %(now)s, claimed_by = %(worker)s
from picked
where s.id = picked.id
returning s.id, s.symbol, s.category, s.timeframe, s.direction, s.algorithm, s.score, s.entry_price,
  s.stop_loss, s.take_profit, picked.reclaimed
"""

_TARGETS_SQL = """
with settings as (
  select coalesce(
    (select value = 'true'::jsonb from app_settings where key = 'live_trading_enabled'), false
  ) as live
)
select distinct on (p.user_id)
  p.user_id, a.id as account_id, a.environment, a.api_key_encrypted, a.api_secret_encrypted,
  p.risk_per_trade_pct, p.max_position_usd, p.leverage, p.max_open_positions
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

_LOSS_SQL = """
select p.user_id, p.daily_loss_limit_pct,
  coalesce((select sum(o.realized_pnl) from execution_orders o
            where o.user_id = p.user_id and o.closed_at >= date_trunc('day', %s::timestamptz)), 0) as pnl
from trading_preferences p where p.user_id = any(%s)
"""

_MARK_SQL = """
update signals s set status = %(status)s, processed_at = %(now)s
where s.id = %(id)s and s.status = 'processing'
"""

# A signal claimed before: executed when some order of it is live or filled, whoever placed it, so an
# executor that took over and found nothing left to do does not call an executed signal skipped.
_MARK_RECLAIMED_SQL = """
update signals s set
  status = case when exists (select 1 from execution_orders o where o.signal_id = s.id
                             and o.status in ('requested', 'placed', 'partially_filled', 'filled'))
                then 'executed' else 'skipped' end,
  processed_at = %(now)s
where s.id = %(id)s and s.status = 'processing'
"""

# Rows of a reclaimed signal that were reserved and never recorded as sent: the executor that reserved
# them is presumed dead (its claim went stale), so they are sent again with their own orderLinkId.
_LEFTOVERS_SQL = """
select o.id as order_id, o.user_id, o.account_id, o.symbol, o.side, o.qty, o.stop_loss, o.take_profit,
       o.leverage, o.order_link_id, a.environment, a.api_key_encrypted, a.api_secret_encrypted
from execution_orders o
join user_trading_accounts a on a.id = o.account_id and a.is_active
where o.signal_id = %s and o.status = 'requested'
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
    db: Database,
    *,
    worker: str,
    now: datetime,
    limit: int,
    signal_ids: Sequence[UUID] | None = None,
    market_now: datetime | None = None,
) -> tuple[list[SignalRow], int]:
    """Expire old signals, then claim up to ``limit`` (returns the claimed ones and how many expired).

    Expiry is judged at ``market_now`` (default ``now``); claims are stamped and judged stale in wall time.

    ``signal_ids`` narrows both steps to those signals (an operator re-running chosen signals, or a
    test that must not touch anyone else's queue).
    """
    ids = None if signal_ids is None else list(signal_ids)
    async with db.write(_SERVICE) as conn:
        expired = await conn.execute(
            "update signals set status = 'expired', processed_at = %(now)s "
            "where status in ('new', 'processing') and expires_at <= %(market)s "
            "and (%(ids)s::uuid[] is null or id = any(%(ids)s::uuid[]))",
            {"now": now, "market": market_now or now, "ids": ids},
        )
        rows = await (
            await conn.execute(
                _CLAIM_SQL,
                {
                    "now": now,
                    "market": market_now or now,
                    "worker": worker,
                    "stale": now - CLAIM_STALE_AFTER,
                    "limit": limit,
                    "ids": ids,
                },
            )
        ).fetchall()
    return [SignalRow(**row) for row in rows], expired.rowcount


async def _renew_claim(db: Database, signal_id: UUID, worker: str, now: datetime) -> bool:
    """Refresh this worker's claim before working on it; False if another executor has taken it over."""
    async with db.write(_SERVICE) as conn:
        row = await (
            await conn.execute(
                "update signals set claimed_at = %s where id = %s and status = 'processing' "
                "and claimed_by = %s returning id",
                (now, signal_id, worker),
            )
        ).fetchone()
    return row is not None


async def _release_claim(db: Database, signal_id: UUID, worker: str) -> None:
    """Hand a signal back to the queue after a failure, so the next run tries again at once.

    ``claimed_at`` stays: the next claim then knows the signal was worked on (``reclaimed``).
    """
    async with db.write(_SERVICE) as conn:
        await conn.execute(
            "update signals set status = 'new', claimed_by = null "
            "where id = %s and status = 'processing' and claimed_by = %s",
            (signal_id, worker),
        )


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


async def _loss_allowances(
    db: Database, user_ids: Sequence[UUID], now: datetime
) -> dict[UUID, tuple[Decimal, Decimal]]:
    """Per user: (daily loss limit %, today's realized P&L), in one query for the whole fan-out."""
    async with db.read(_SERVICE) as conn:
        rows = await (await conn.execute(_LOSS_SQL, (now, list(user_ids)))).fetchall()
    return {r["user_id"]: (Decimal(r["daily_loss_limit_pct"]), Decimal(r["pnl"])) for r in rows}


def within_daily_loss_limit(equity: Decimal, limit_pct: Decimal, today_pnl: Decimal) -> bool:
    """Whether today's realized P&L is still above the loss the user allows per day."""
    return today_pnl > -(equity * limit_pct / 100)


def _credentials(vault: KeyVault, target: Target) -> Credentials:
    return account_credentials(
        vault, target.user_id, target.environment, target.api_key_encrypted, target.api_secret_encrypted
    )


def account_credentials(
    vault: KeyVault, user_id: UUID | str, environment: str, api_key_encrypted: str, api_secret_encrypted: str
) -> Credentials:
    """An account's plain keys, decrypted for ``user_id`` and each key's own field."""
    return Credentials(
        environment=environment,
        api_key=vault.decrypt(api_key_encrypted, user_id=str(user_id), field=API_KEY_FIELD),
        api_secret=vault.decrypt(api_secret_encrypted, user_id=str(user_id), field=API_SECRET_FIELD),
    )


def exchange_status(state: OrderState) -> str:
    """The ``execution_orders`` status of what the exchange reports."""
    return EXCHANGE_STATUS.get(state.status, "placed")


def _reason(state: OrderState) -> str | None:
    return None if state.reject_reason in _NO_REASON else state.reject_reason


async def record_exchange_state(db: Database, order_id: UUID, state: OrderState, *, now: datetime) -> str:
    """Move an ``execution_orders`` row to what the exchange reports; returns the row's status after.

    Never moves an order backwards: a final state (filled, cancelled, rejected) is not replaced by an
    open one, nor partially filled by placed, whoever reports late.
    """
    status = exchange_status(state)
    async with db.write(_SERVICE) as conn:
        row = await (
            await conn.execute(
                "update execution_orders set status = %(status)s, exchange_order_id = %(oid)s, "
                "filled_qty = %(filled)s, avg_fill_price = %(avg)s, fee = %(fee)s, "
                "placed_at = coalesce(placed_at, %(now)s), "
                "filled_at = case when %(status)s = 'filled' then coalesce(filled_at, %(now)s) "
                "else filled_at end, "
                "status_reason = coalesce(%(reason)s, status_reason) "
                "where id = %(id)s "
                "and not (status in ('filled', 'cancelled', 'rejected') and status <> %(status)s) "
                "and not (status = 'partially_filled' and %(status)s = 'placed') "
                "returning status",
                {
                    "status": status,
                    "oid": state.order_id,
                    "filled": state.filled_qty,
                    "avg": state.avg_price,
                    "fee": state.fee,
                    "now": now,
                    "reason": _reason(state),
                    "id": order_id,
                },
            )
        ).fetchone()
        if row is None:
            row = await (
                await conn.execute("select status from execution_orders where id = %s", (order_id,))
            ).fetchone()
    return str(row["status"]) if row is not None else status


# -- exchange calls --------------------------------------------------------------------------------


def _backoff_s(attempt: int, error: ExchangeError) -> float:
    if isinstance(error, RateLimited):
        return 1.0  # Bybit's window is one second
    return min(2.0, 0.1 * 2.0**attempt)


async def _retrying(call: Callable[[], Awaitable[T]], attempts: int = CALL_ATTEMPTS) -> T:
    """``call()``, again after timeouts, 5xx and 10006 (with backoff); other errors at once."""
    for attempt in range(attempts):
        try:
            return await call()
        except ExchangeError as exc:
            if not exc.retryable or attempt == attempts - 1:
                raise
            await asyncio.sleep(_backoff_s(attempt, exc))
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class PlaceResult:
    """How sending one order ended: ``placed`` (with the exchange's id, and its state when looked up),
    ``rejected`` (the exchange refused it on purpose), or ``unknown`` (no answer after retries)."""

    result: Literal["placed", "rejected", "unknown"]
    attempts: int
    order_id: str | None = None
    state: OrderState | None = None
    error: ExchangeError | None = None


async def place_with_retries(
    deps: ExecutorDeps,
    creds: Credentials,
    request: OrderRequest,
    account_id: UUID,
    *,
    deadline: float | None = None,
) -> PlaceResult:
    """Send the order, retrying retryable failures with the same ``orderLinkId``.

    A duplicate (110072) means an earlier attempt was accepted: the order is looked up instead. No
    attempt starts after ``deadline`` (``time.monotonic()``), so the tracker knows when the executor has
    surely given up on a ``requested`` row.
    """
    last: ExchangeError | None = None
    attempt = 0
    while attempt < PLACE_ATTEMPTS and (deadline is None or time.monotonic() < deadline):
        attempt += 1
        await deps.limiter_for(account_id).acquire()
        try:
            order_id = await deps.exchange.place_order(creds, request)
            failpoint("executor.after_exchange_ack")
            return PlaceResult("placed", attempt, order_id=order_id or None)
        except ExchangeRejected as exc:
            if exc.ret_code == DUPLICATE_ORDER_LINK_ID:
                state = await _lookup(deps, creds, request)
                return PlaceResult("placed", attempt, order_id=state.order_id if state else None, state=state)
            return PlaceResult("rejected", attempt, error=exc)
        except ExchangeError as exc:
            if not exc.retryable:
                return PlaceResult("rejected", attempt, error=exc)
            last = exc
            await asyncio.sleep(_backoff_s(attempt - 1, exc))
    return PlaceResult("unknown", attempt, error=last)


async def _lookup(deps: ExecutorDeps, creds: Credentials, request: OrderRequest) -> OrderState | None:
    try:
        return await _retrying(
            lambda: deps.exchange.find_order(creds, request.category, request.symbol, request.order_link_id)
        )
    except ExchangeError:
        return None  # the tracker will look again; the order is already safe on the exchange


# -- one (signal, user) pair -----------------------------------------------------------------------


def _skip(run: _Run, user_id: UUID, event: str, message: str, why: str, **context: Any) -> OrderOutcome:
    run.writer.log(_LogLine(user_id, event, message, level="warning", context=context))
    return OrderOutcome(user_id, "skipped", reason=why)


async def _execute_for_target(
    run: _Run,
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
        creds = _credentials(run.deps.vault, target)
        wallet = await run.wallet(target.account_id, creds)
    except ExchangeError as exc:
        reason = "exchange_unavailable" if exc.retryable else "account_unusable"
        return _skip(run, target.user_id, reason, exc.message, reason, code=exc.code, **facts)
    except AitradexError as exc:  # keys that cannot be decrypted, an environment nobody configured
        return _skip(run, target.user_id, "account_unusable", exc.message, exc.code, code=exc.code, **facts)
    if not within_daily_loss_limit(wallet.total_equity, loss_limit_pct, today_pnl):
        message = "today's realized loss reached the daily limit"
        return _skip(run, target.user_id, "daily_loss_limit", message, "daily_loss_limit", **facts)

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
        return _skip(run, target.user_id, "sizing_skipped", decision.message, reason, reason=reason, **facts)
    return await _reserve_and_place(
        run,
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
        check_rules=True,
        context={"risk": fmt(decision.risk_amount), "capped_by": list(decision.capped_by), **facts},
    )


async def _reserve_and_place(
    run: _Run,
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
    check_rules: bool,
    context: dict[str, Any],
) -> OrderOutcome:
    """Reserve the order row (``requested``), set leverage, place it, and record what happened."""
    reserved = await run.writer.reserve(
        _Reservation(
            user_id=target.user_id,
            signal_id=signal_id,
            account_id=target.account_id,
            symbol=symbol,
            side=side,
            qty=qty,
            price=entry,
            stop_loss=stop_loss,
            take_profit=take_profit,
            leverage=target.leverage,
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
        if not reserved.symbol_free:
            message = f"a position in {symbol} is already open"
            return _skip(run, target.user_id, "position_open", message, "position_open", symbol=symbol)
        if not reserved.under_max:
            message = "the maximum number of open positions is reached"
            return _skip(run, target.user_id, "max_open_positions", message, "max_open_positions")
        return OrderOutcome(target.user_id, "duplicate", link_id)  # another executor reserved it first
    failpoint("executor.after_reserve")
    return await _send(
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
        leverage=target.leverage,
        link_id=link_id,
    )


async def _send(
    run: _Run,
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
        await _retrying(lambda: deps.exchange.set_leverage(creds, CATEGORY, symbol, leverage))
    except ExchangeError as exc:
        if not exc.retryable:
            reason = f"leverage not set: {exc.message}"
            return _failed(run, user_id, order_id, link_id, "failed", reason, exc, 0)
        # Nothing was sent; the row stays requested and the signal's next run sends it (see _fan_out).
        run.writer.log(
            _LogLine(
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
    if sent.result == "placed":
        state = sent.state
        status = exchange_status(state) if state is not None else "placed"
        run.writer.result(
            _Result(
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
                reason=_reason(state) if state is not None else None,
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
    run.writer.log(
        _LogLine(
            user_id,
            "order_outcome_unknown",
            "no answer from the exchange after retries; the order tracker will reconcile it by orderLinkId",
            order_id=order_id,
            level="warning",
            context={"error": sent.error.code if sent.error else None, "attempts": sent.attempts},
        )
    )
    return OrderOutcome(user_id, "unknown", link_id, reason=sent.error.code if sent.error else "")


def _failed(
    run: _Run,
    user_id: UUID,
    order_id: UUID,
    link_id: str,
    status: Literal["rejected", "failed"],
    reason: str,
    error: ExchangeError,
    attempts: int,
) -> OrderOutcome:
    run.writer.result(
        _Result(
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


# -- fan-out and runs ------------------------------------------------------------------------------


async def _fan_out(run: _Run, signal: SignalRow) -> list[OrderOutcome]:
    """Execute one claimed signal for every eligible user, then mark it executed or skipped."""
    deps = run.deps
    if not await _renew_claim(deps.db, signal.id, deps.worker, run.now()):
        log_event(logger, "executor_claim_lost", level=logging.WARNING, signal_id=str(signal.id))
        return []
    outcomes: list[OrderOutcome] = []
    if signal.reclaimed:
        outcomes.extend(await _resume(run, signal))
    targets = await eligible_targets(deps.db, signal)
    if targets:
        environments = sorted({t.environment for t in targets})
        filters_by_env = {env: await deps.filters(CATEGORY, env) for env in environments}
        allowances = await _loss_allowances(deps.db, [t.user_id for t in targets], run.now())
        semaphore = asyncio.Semaphore(deps.concurrency)

        async def one(target: Target) -> OrderOutcome:
            filters = filters_by_env[target.environment].get(signal.symbol)
            if filters is None:
                message = f"{signal.symbol} is not listed on {target.environment}"
                return _skip(run, target.user_id, "symbol_unknown", message, "symbol_unknown")
            limit_pct, today_pnl = allowances.get(target.user_id, (Decimal(100), Decimal(0)))
            async with semaphore:
                return await _execute_for_target(
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
        await _release_claim(deps.db, signal.id, deps.worker)
        return outcomes
    live = any(o.outcome in ("placed", "filled", "duplicate") for o in outcomes)
    async with deps.db.write(_SERVICE) as conn:
        if signal.reclaimed:
            await conn.execute(_MARK_RECLAIMED_SQL, {"now": run.now(), "id": signal.id})
        else:
            status = "executed" if live else "skipped"
            await conn.execute(_MARK_SQL, {"status": status, "now": run.now(), "id": signal.id})
    return outcomes


async def _resume(run: _Run, signal: SignalRow) -> list[OrderOutcome]:
    """Send the orders a dead executor reserved for this signal but never recorded (same orderLinkId:
    one it did send is found by its 110072, not placed twice)."""
    async with run.deps.db.read(_SERVICE) as conn:
        rows = await (await conn.execute(_LEFTOVERS_SQL, (signal.id,))).fetchall()
    if rows:
        log_event(logger, "executor_resuming", signal_id=str(signal.id), orders=len(rows))
    semaphore = asyncio.Semaphore(run.deps.concurrency)

    async def one(row: dict[str, Any]) -> OrderOutcome:
        try:
            creds = account_credentials(
                run.deps.vault,
                row["user_id"],
                row["environment"],
                row["api_key_encrypted"],
                row["api_secret_encrypted"],
            )
        except AitradexError as exc:
            return _skip(run, row["user_id"], "account_unusable", exc.message, exc.code, code=exc.code)
        async with semaphore:
            return await _send(
                run,
                row["order_id"],
                row["user_id"],
                row["account_id"],
                creds,
                symbol=row["symbol"],
                side=row["side"],
                qty=Decimal(row["qty"]),
                stop_loss=row["stop_loss"],
                take_profit=row["take_profit"],
                leverage=int(row["leverage"]),
                link_id=row["order_link_id"],
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
    return await _fan_out(_Run(deps, now), signal)


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
    run = _Run(deps, now)
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
            await _release_claim(deps.db, signal.id, deps.worker)
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


def outcomes_summary(outcomes: Sequence[OrderOutcome]) -> dict[str, int]:
    """Counts of each outcome, for responses and logs."""
    summary: dict[str, int] = {}
    for o in outcomes:
        summary[o.outcome] = summary.get(o.outcome, 0) + 1
    return summary


# -- a user's own trades ---------------------------------------------------------------------------


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
       coalesce(p.max_open_positions, 5) as max_open_positions,
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


async def _single(run: _Run, work: Awaitable[OrderOutcome]) -> OrderOutcome:
    try:
        return await work
    finally:
        await run.finish()


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
                (signal_id, await deps.market_time(now)),
            )
        ).fetchone()
    if row is None:
        raise NotFound("no such signal, or it has expired", details={"signal_id": str(signal_id)})
    signal = SignalRow(**row)
    target, loss_limit = await user_target(deps.db, user_id)
    filters = (await deps.filters(CATEGORY, target.environment)).get(signal.symbol)
    if filters is None:
        raise NotFound(f"{signal.symbol} is not listed on {target.environment}")
    allowance = (await _loss_allowances(deps.db, [user_id], now)).get(user_id, (loss_limit, Decimal(0)))
    run = _Run(deps, now)
    return await _single(
        run,
        _execute_for_target(
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
    run = _Run(deps, now)
    return await _single(
        run,
        _reserve_and_place(
            run,
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
            check_rules=False,
            context={"manual": True},
        ),
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
