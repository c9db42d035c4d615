"""``execution_orders``: the executor's grouped writes, many orders per statement.

One transaction per write cost more than the exchange calls (``bench/fanout.py``), so reservations and
results go in batches (``unnest`` of one array per column), each logging its ``trade_logs`` events in the
same statement. A reservation is committed before its order is sent; a result is written only after
the exchange answered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from psycopg import sql
from psycopg.types.json import Jsonb

from lib.db.session import Caller, Database
from lib.stores.orders import OPEN_POSITION_SQL
from lib.stores.settings import TRADING_HALTED_SQL

_SERVICE = Caller.service()


@dataclass(frozen=True, slots=True)
class Reservation:
    """A ``requested`` row to insert before anything is sent, with its first log line."""

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
class Reserved:
    """What a reservation found: its row's id if it inserted one, else why not."""

    order_id: UUID | None
    reserved: bool  # the pair's row already existed (another executor, or an earlier run)
    symbol_free: bool
    under_max: bool
    halted: bool = False  # the operator kill switch was on: nothing was reserved


@dataclass(frozen=True, slots=True)
class OrderResult:
    """What the exchange said about a reserved order, and the log line that records it."""

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


# Per user, in a stable order so that two executors never wait for each other's locks in a cycle.
_LOCK_USERS_SQL = (
    "select pg_advisory_xact_lock(hashtextextended('aitradex.execution:' || u::text, 0)) "
    "from (select distinct unnest(%s::uuid[]) as u order by 1) users"
)

_RESERVE_SQL = sql.SQL("""
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
      where o.user_id = i.user_id and o.symbol = i.symbol and {open_position}
    ) as symbol_free,
    i.max_open is null or (
      select count(*) from execution_orders o where o.user_id = i.user_id and {open_position}
    ) < i.max_open as under_max,
    {halted} as halted
  from input i
),
inserted as (
  insert into execution_orders (user_id, signal_id, account_id, symbol, category, side, order_type, qty,
    price, stop_loss, take_profit, leverage, order_link_id, environment, requested_at, attempts)
  select user_id, signal_id, account_id, symbol, 'linear', side, 'Market', qty, price, stop_loss,
    take_profit, leverage, order_link_id, environment, requested_at, 0
  from checked where not reserved and symbol_free and under_max and not halted
  on conflict do nothing
  returning id, order_link_id
),
logged as (
  insert into trade_logs (user_id, order_id, level, event, message, context)
  select c.user_id, ins.id, 'info', 'order_requested', c.message, c.context
  from inserted ins join checked c using (order_link_id)
)
select c.order_link_id, ins.id, c.reserved, c.symbol_free, c.under_max, c.halted
from checked c left join inserted ins using (order_link_id)
""").format(open_position=OPEN_POSITION_SQL, halted=TRADING_HALTED_SQL)

_RESULT_SQL = """
with input as (
  select * from unnest(
    %(order_id)s::uuid[], %(user_id)s::uuid[], %(status)s::text[], %(at)s::timestamptz[],
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


def _arrays(items: Sequence[Any], record: type[Any]) -> dict[str, list[Any]]:
    """One array per field of ``record`` (a dataclass) over ``items``, for an ``unnest`` insert."""
    return {
        f.name: [Jsonb(v) if isinstance(v, dict) else v for v in (getattr(i, f.name) for i in items)]
        for f in fields(record)
    }


async def reserve(db: Database, items: Sequence[Reservation]) -> list[Reserved]:
    """Insert each ``requested`` row its rules permit, in one committed transaction; one answer per item.

    Nothing is inserted while the operator kill switch is on (``halted``): it is read in this same
    statement, so a halt stops the very next order, whichever executor path reserves it.

    Items with open-position rules (``max_open`` set) are checked under their users' advisory locks, so
    executors working on different signals cannot both give a user one position too many. The caller
    keeps two items of one user out of one call: a statement does not see its own other rows.
    """
    params = _arrays(items, Reservation)
    async with db.write(_SERVICE) as conn:
        if any(i.max_open is not None for i in items):
            await conn.execute(_LOCK_USERS_SQL, ([i.user_id for i in items if i.max_open is not None],))
        rows = await (await conn.execute(_RESERVE_SQL, params)).fetchall()
    by_link = {r["order_link_id"]: r for r in rows}
    answers = (by_link[i.order_link_id] for i in items)
    return [
        Reserved(
            r["id"], bool(r["reserved"]), bool(r["symbol_free"]), bool(r["under_max"]), bool(r["halted"])
        )
        for r in answers
    ]


async def record_results(db: Database, items: Sequence[OrderResult]) -> None:
    """Record each reserved order's result (over ``requested``/``failed`` rows only) and log it."""
    params = _arrays(items, OrderResult)
    for column in ("reason", "ret_msg"):
        params[column] = [v[:500] if v else None for v in params[column]]
    async with db.write(_SERVICE) as conn:
        await conn.execute(_RESULT_SQL, params)
