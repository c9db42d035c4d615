"""``execution_orders``: every order's life, from its reservation to its close. Service only (the owner
reads their own through RLS, elsewhere).

Which rows count as a position is defined here once: :data:`OPEN_POSITION_SQL`. The executor's
reservation and fan-out rules (``lib.stores.order_batches``, ``lib.stores.accounts``) and the tracker's
work list all use it (the partial index ``execution_orders_user_open_idx`` in the execution migration
spells out the same predicate, and a query over it is planned on that index).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from psycopg import sql

from lib.core.vocabulary import OrderStatus
from lib.db.session import Caller, Connection, Database

_SERVICE = Caller.service()

#: Statuses of an order the exchange has not finished with (it may still fill).
OPEN_ORDER_STATUSES: tuple[OrderStatus, ...] = ("requested", "placed", "partially_filled")

#: A row of ``execution_orders o`` that holds, or may hold, a position: requested, placed, partially
#: filled, or filled and not yet closed. It counts against the open-position rules. An ``untracked`` row
#: (its account was disconnected, see the untracked-orders migration) does not.
OPEN_POSITION_SQL: sql.Composable = sql.SQL(
    "(o.status in ({}) or (o.status = 'filled' and o.closed_at is null))"
).format(sql.SQL(", ").join(map(sql.Literal, OPEN_ORDER_STATUSES)))


async def record_exchange_state(
    db: Database,
    order_id: UUID,
    *,
    status: str,
    exchange_order_id: str,
    filled_qty: Decimal,
    avg_price: Decimal | None,
    fee: Decimal,
    reason: str | None,
    now: datetime,
) -> str:
    """Move a row to what the exchange reports; returns the row's status after.

    Never moves an order backwards: a final state (filled, cancelled, rejected) is not replaced by an
    open one, nor partially filled by placed, whoever reports late. An ``untracked`` row (its account was
    disconnected meanwhile) is left as it is until its account is connected again.
    """
    async with db.write(_SERVICE) as conn:
        row = await (
            await conn.execute(
                "update execution_orders set status = %(status)s, exchange_order_id = %(exchange_order_id)s, "
                "filled_qty = %(filled_qty)s, avg_fill_price = %(avg_price)s, fee = %(fee)s, "
                "placed_at = coalesce(placed_at, %(now)s), "
                "filled_at = case when %(status)s = 'filled' then coalesce(filled_at, %(now)s) "
                "else filled_at end, "
                "status_reason = coalesce(%(reason)s, status_reason) "
                "where id = %(id)s and status <> 'untracked' "
                "and not (status in ('filled', 'cancelled', 'rejected') and status <> %(status)s) "
                "and not (status = 'partially_filled' and %(status)s = 'placed') "
                "returning status",
                {
                    "id": order_id,
                    "status": status,
                    "exchange_order_id": exchange_order_id,
                    "filled_qty": filled_qty,
                    "avg_price": avg_price,
                    "fee": fee,
                    "reason": reason,
                    "now": now,
                },
            )
        ).fetchone()
        if row is None:
            row = await (
                await conn.execute("select status from execution_orders where id = %s", (order_id,))
            ).fetchone()
    return str(row["status"]) if row is not None else status


@dataclass(frozen=True, slots=True)
class UnsentOrder:
    """A reserved row of a reclaimed signal, never recorded as sent, with its account's keys."""

    order_id: UUID
    user_id: UUID
    account_id: UUID
    symbol: str
    side: str
    qty: Decimal
    stop_loss: Decimal | None
    take_profit: Decimal | None
    leverage: int
    order_link_id: str
    environment: str
    api_key_encrypted: str
    api_secret_encrypted: str


async def unsent_orders(db: Database, signal_id: UUID) -> list[UnsentOrder]:
    """The signal's ``requested`` rows on active accounts: reserved by an executor presumed dead (its
    claim went stale), so they are sent again with their own orderLinkId."""
    async with db.read(_SERVICE) as conn:
        rows = await (
            await conn.execute(
                "select o.id as order_id, o.user_id, o.account_id, o.symbol, o.side, o.qty, o.stop_loss, "
                "o.take_profit, o.leverage, o.order_link_id, a.environment, a.api_key_encrypted, "
                "a.api_secret_encrypted "
                "from execution_orders o "
                "join user_trading_accounts a on a.id = o.account_id and a.is_active "
                "where o.signal_id = %s and o.status = 'requested'",
                (signal_id,),
            )
        ).fetchall()
    return [UnsentOrder(**row) for row in rows]


async def daily_loss_allowances(
    db: Database, user_ids: Sequence[UUID], now: datetime
) -> dict[UUID, tuple[Decimal, Decimal]]:
    """Per user with preferences: (daily loss limit %, realized P&L of positions closed since the
    start of ``now``'s day), in one query for a whole fan-out."""
    async with db.read(_SERVICE) as conn:
        rows = await (
            await conn.execute(
                "select p.user_id, p.daily_loss_limit_pct, "
                "coalesce((select sum(o.realized_pnl) from execution_orders o "
                "where o.user_id = p.user_id and o.closed_at >= date_trunc('day', %s::timestamptz)), 0) "
                "as pnl "
                "from trading_preferences p where p.user_id = any(%s)",
                (now, list(user_ids)),
            )
        ).fetchall()
    return {r["user_id"]: (Decimal(r["daily_loss_limit_pct"]), Decimal(r["pnl"])) for r in rows}


async def unfinished_counts(db: Database) -> dict[str, int]:
    """Orders not yet final: ``requested`` ones, and ``open_orders`` (placed or partially filled)."""
    async with db.read(_SERVICE) as conn:
        row = await (
            await conn.execute(
                "select (select count(*) from execution_orders where status = 'requested') as requested, "
                "(select count(*) from execution_orders "
                " where status in ('placed', 'partially_filled')) as open_orders"
            )
        ).fetchone()
    return {k: int(v) for k, v in (row or {}).items()}


# -- the tracker's work list -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrackedOrder:
    """A row the tracker follows, with its signal's status and its account's keys."""

    id: UUID
    user_id: UUID
    account_id: UUID
    signal_id: UUID | None
    symbol: str
    category: str
    side: str
    qty: Decimal
    order_link_id: str
    status: str
    avg_fill_price: Decimal | None
    filled_qty: Decimal | None
    fee: Decimal | None
    filled_at: datetime | None
    requested_at: datetime
    signal_status: str | None
    environment: str
    api_key_encrypted: str
    api_secret_encrypted: str


# Every row holding (or maybe holding) a position, but a requested one only after the grace period.
_TO_TRACK_SQL = sql.SQL("""
select o.id, o.user_id, o.account_id, o.signal_id, o.symbol, o.category, o.side, o.qty, o.order_link_id,
       o.status, o.avg_fill_price, o.filled_qty, o.fee, o.filled_at, o.requested_at,
       s.status as signal_status,
       a.environment, a.api_key_encrypted, a.api_secret_encrypted
from execution_orders o
join user_trading_accounts a on a.id = o.account_id
left join signals s on s.id = o.signal_id
where {open_position}
  and (o.status <> 'requested' or o.requested_at < %(grace)s)
  and (%(users)s::uuid[] is null or o.user_id = any(%(users)s::uuid[]))
order by o.account_id, o.requested_at
limit %(limit)s
""").format(open_position=OPEN_POSITION_SQL)


async def orders_to_track(
    db: Database, *, requested_before: datetime, limit: int, user_ids: Sequence[UUID] | None = None
) -> list[TrackedOrder]:
    """Every non-final row (and filled one not yet closed), ``requested`` ones only if reserved before
    ``requested_before``; grouped by account. Only ``user_ids``' rows if given."""
    params = {
        "grace": requested_before,
        "limit": limit,
        "users": None if user_ids is None else list(user_ids),
    }
    async with db.read(_SERVICE) as conn:
        rows = await (await conn.execute(_TO_TRACK_SQL, params)).fetchall()
    return [TrackedOrder(**row) for row in rows]


async def mark_failed(db: Database, order_id: UUID, reason: str) -> bool:
    """Mark a still ``requested`` row failed with ``reason``; False if it had moved on meanwhile."""
    async with db.write(_SERVICE) as conn:
        cursor = await conn.execute(
            "update execution_orders set status = 'failed', status_reason = %s "
            "where id = %s and status = 'requested'",
            (reason, order_id),
        )
    return cursor.rowcount > 0


async def record_close(
    db: Database,
    order_id: UUID,
    *,
    at: datetime,
    exit_price: Decimal | None,
    reason: str,
    realized_pnl: Decimal | None,
    exit_fee: Decimal | None = None,
) -> bool:
    """Record how a filled order's position ended; False if it was already recorded as closed (or its
    account was disconnected meanwhile: the row is ``untracked`` until it is connected again)."""
    async with db.write(_SERVICE) as conn:
        cursor = await conn.execute(
            "update execution_orders set closed_at = %s, exit_price = %s, close_reason = %s, "
            "realized_pnl = %s, exit_fee = %s where id = %s and closed_at is null and status = 'filled'",
            (at, exit_price, reason, realized_pnl, exit_fee, order_id),
        )
    return cursor.rowcount > 0


# -- orders of a disconnected account (the untracked-orders migration) -----------------------------

#: What the migration's trigger raises when an account with open rows is deleted without confirmation.
OPEN_ORDERS_SQLSTATE = "AX409"

_RELINK_SQL = """
with relinked as (
  update execution_orders o
  set status = o.untracked_from, account_id = %(account_id)s, untracked_from = null,
      untracked_key_hint = null, untracked_account_id = null
  where o.user_id = %(user_id)s and o.status = 'untracked' and o.environment = %(environment)s
    and o.untracked_key_hint = %(key_hint)s
  returning o.id, o.user_id, o.status, o.symbol
)
insert into trade_logs (user_id, order_id, level, event, message, context)
select r.user_id, r.id, 'info', 'order_tracking_resumed',
       'the same exchange account was connected again: this ' || r.symbol || ' order (' || r.status
       || ') is tracked again',
       jsonb_build_object('status', r.status, 'account_id', %(account_id)s::text)
from relinked r
"""


async def relink_untracked(
    conn: Connection, *, user_id: str, environment: str, key_hint: str, account_id: str
) -> int:
    """Give the user's ``untracked`` rows of the same exchange account (``environment`` and ``key_hint``)
    back to ``account_id`` with the status they had, each with a ``trade_logs`` event; how many.

    Runs in the caller's transaction (the connect's own, as ``service_role``), so an account is never
    visible as connected while its old rows are still untracked.
    """
    cursor = await conn.execute(
        _RELINK_SQL,
        {"user_id": user_id, "environment": environment, "key_hint": key_hint, "account_id": account_id},
    )
    return cursor.rowcount


async def count_open_on_account(conn: Connection, *, user_id: str, exchange: str, environment: str) -> int:
    """Rows holding (or maybe holding) a position on the user's account for ``environment``."""
    query = sql.SQL(
        "select count(*) as n from execution_orders o "
        "join user_trading_accounts a on a.id = o.account_id "
        "where a.user_id = %s and a.exchange = %s and a.environment = %s and {open_position}"
    ).format(open_position=OPEN_POSITION_SQL)
    row = await (await conn.execute(query, (user_id, exchange, environment))).fetchone()
    return int(row["n"]) if row is not None else 0


async def untracked_now(conn: Connection) -> int:
    """Rows the untracked-orders trigger marked ``untracked`` in this transaction (it counts them in the
    transaction-local setting ``aitradex.untracked_orders``)."""
    row = await (
        await conn.execute(
            "select coalesce(nullif(current_setting('aitradex.untracked_orders', true), ''), '0')::int as n"
        )
    ).fetchone()
    return int(row["n"]) if row is not None else 0
