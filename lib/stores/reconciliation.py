"""The SQL of the reconciliation after a restore (:mod:`lib.services.reconciliation`). Service only.

What it reads: the active accounts with their keys, the signals an ``ax-`` id may belong to, which
``orderLinkId`` s the database already holds. What it writes: an order the exchange has and the
database lacks (with a ``recovered_from_exchange`` event, in the same statement), the close claim of a
close by hand that was sent but lost, and signals whose orders exist marked ``executed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from lib.db.session import Caller, Database

_SERVICE = Caller.service()


@dataclass(frozen=True, slots=True)
class ReconcileAccount:
    """An active trading account, with its encrypted keys."""

    account_id: UUID
    user_id: UUID
    environment: str
    api_key_encrypted: str
    api_secret_encrypted: str
    leverage: int


async def active_accounts(db: Database, user_ids: Sequence[UUID] | None = None) -> list[ReconcileAccount]:
    """Every active account (only ``user_ids``' if given), with the user's leverage preference."""
    async with db.read(_SERVICE) as conn:
        rows = await (
            await conn.execute(
                "select a.id as account_id, a.user_id, a.environment, a.api_key_encrypted, "
                "a.api_secret_encrypted, coalesce(p.leverage, 1) as leverage "
                "from user_trading_accounts a left join trading_preferences p on p.user_id = a.user_id "
                "where a.is_active and (%(users)s::uuid[] is null or a.user_id = any(%(users)s::uuid[])) "
                "order by a.user_id, a.id",
                {"users": None if user_ids is None else list(user_ids)},
            )
        ).fetchall()
    return [ReconcileAccount(**row) for row in rows]


async def signal_ids_since(db: Database, since: datetime | None) -> list[UUID]:
    """Signals created at or after ``since`` (all without it): the pairs an ``ax-`` id may come from."""
    async with db.read(_SERVICE) as conn:
        rows = await (
            await conn.execute(
                "select id from signals where %(since)s::timestamptz is null or created_at >= %(since)s",
                {"since": since},
            )
        ).fetchall()
    return [row["id"] for row in rows]


async def known_link_ids(db: Database, link_ids: Sequence[str]) -> set[str]:
    """Which of ``link_ids`` the database holds, as an order's or as a close's ``orderLinkId``."""
    async with db.read(_SERVICE) as conn:
        rows = await (
            await conn.execute(
                "select order_link_id as link from execution_orders where order_link_id = any(%(ids)s) "
                "union select close_order_link_id from execution_orders "
                "where close_order_link_id = any(%(ids)s)",
                {"ids": list(link_ids)},
            )
        ).fetchall()
    return {row["link"] for row in rows}


async def filled_order_ids(db: Database, account_id: UUID) -> list[UUID]:
    """The account's filled orders that have no close claim yet (a lost ``ac-`` close may be theirs)."""
    async with db.read(_SERVICE) as conn:
        rows = await (
            await conn.execute(
                "select id from execution_orders where account_id = %s and status = 'filled' "
                "and close_order_link_id is null",
                (account_id,),
            )
        ).fetchall()
    return [row["id"] for row in rows]


@dataclass(frozen=True, slots=True)
class RecoveredOrder:
    """An order the exchange has and the database lacks, as the reconciliation imports it."""

    user_id: UUID
    account_id: UUID
    signal_id: UUID | None
    environment: str
    category: str
    symbol: str
    side: str
    order_type: str
    qty: Decimal
    stop_loss: Decimal | None
    take_profit: Decimal | None
    leverage: int
    order_link_id: str
    exchange_order_id: str
    status: str
    status_reason: str | None
    filled_qty: Decimal
    avg_fill_price: Decimal | None
    fee: Decimal
    requested_at: datetime
    filled_at: datetime | None
    message: str
    context: dict[str, Any]


_IMPORT_SQL = """
with inserted as (
  insert into execution_orders (user_id, signal_id, account_id, symbol, category, side, order_type, qty,
    stop_loss, take_profit, leverage, order_link_id, exchange_order_id, status, status_reason, filled_qty,
    avg_fill_price, fee, environment, requested_at, placed_at, filled_at, attempts)
  values (%(user_id)s, %(signal_id)s, %(account_id)s, %(symbol)s, %(category)s, %(side)s, %(order_type)s,
    %(qty)s, %(stop_loss)s, %(take_profit)s, %(leverage)s, %(order_link_id)s, %(exchange_order_id)s,
    %(status)s, %(status_reason)s, %(filled_qty)s, %(avg_fill_price)s, %(fee)s, %(environment)s,
    %(requested_at)s, %(requested_at)s, %(filled_at)s, 1)
  on conflict do nothing
  returning id, user_id
)
insert into trade_logs (user_id, order_id, level, event, message, context)
select user_id, id, 'warning', 'recovered_from_exchange', %(message)s, %(context)s from inserted
returning order_id
"""


async def import_order(db: Database, order: RecoveredOrder) -> UUID | None:
    """Insert ``order`` with its ``recovered_from_exchange`` event; None when a row with its
    ``orderLinkId`` (or its signal and user) exists already, which makes a second run import nothing."""
    params = {name: getattr(order, name) for name in RecoveredOrder.__slots__ if name not in ("context",)}
    params["context"] = Jsonb(order.context)
    async with db.write(_SERVICE) as conn:
        row = await (await conn.execute(_IMPORT_SQL, params)).fetchone()
    return row["order_id"] if row is not None else None


async def record_lost_close_claim(
    db: Database, order_id: UUID, close_link_id: str, at: datetime, context: dict[str, Any]
) -> bool:
    """Put back the close claim of a close by hand the exchange has (``ac-…``) and the database lost,
    with a ``recovered_from_exchange`` event; False when the row holds a claim already."""
    async with db.write(_SERVICE) as conn:
        row = await (
            await conn.execute(
                "with claimed as (update execution_orders set close_order_link_id = %(link)s, "
                "close_requested_at = %(at)s where id = %(id)s and close_order_link_id is null "
                "returning id, user_id) "
                "insert into trade_logs (user_id, order_id, level, event, message, context) "
                "select user_id, id, 'warning', 'recovered_from_exchange', "
                "'the close by hand ' || %(link)s || ' was found on the exchange', %(context)s "
                "from claimed returning order_id",
                {"link": close_link_id, "at": at, "id": order_id, "context": Jsonb(context)},
            )
        ).fetchone()
    return row is not None


async def mark_signals_executed(
    db: Database, signal_ids: Sequence[UUID], now: datetime, user_ids: Sequence[UUID] | None = None
) -> int:
    """Mark ``executed`` the still ``new`` or ``processing`` signals among ``signal_ids`` that have an order
    (requested, placed or filled) in the database (of one of ``user_ids``, if given); how many."""
    async with db.write(_SERVICE) as conn:
        cursor = await conn.execute(
            "update signals s set status = 'executed', processed_at = %(now)s, claimed_by = null "
            "where s.id = any(%(ids)s) and s.status in ('new', 'processing') and exists ("
            "select 1 from execution_orders o where o.signal_id = s.id "
            "and o.status in ('requested', 'placed', 'partially_filled', 'filled') "
            "and (%(users)s::uuid[] is null or o.user_id = any(%(users)s::uuid[])))",
            {"ids": list(signal_ids), "now": now, "users": None if user_ids is None else list(user_ids)},
        )
    return cursor.rowcount


async def newest_order_time(db: Database) -> datetime | None:
    """When the newest order in the database was requested (None without any)."""
    async with db.read(_SERVICE) as conn:
        row = await (await conn.execute("select max(requested_at) as t from execution_orders")).fetchone()
    return row["t"] if row is not None else None
