"""The caller's own activity: orders, open positions, trade-log events and P&L figures.

Every read runs as the caller in a READ ONLY transaction, and none filters on ``user_id``: the owner
policies of ``execution_orders`` and ``trade_logs`` decide what a caller sees (their own rows), so a
mistake here can show a user less, never someone else's. Pages are keyset pages, newest first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from psycopg import sql

from lib.db.session import Caller, Database

#: How many closes the realized-P&L series returns at most (the newest; cumulative over all).
SERIES_MAX_POINTS = 1000

_ORDER_COLUMNS = sql.SQL("""
id, signal_id, order_link_id, environment, symbol, side, status, status_reason, qty, filled_qty,
avg_fill_price, stop_loss, take_profit, leverage, fee, exit_fee, exit_price, close_reason, realized_pnl,
close_requested_at, requested_at, placed_at, filled_at, closed_at, updated_at, created_at
""")

_ORDERS_SQL = sql.SQL("""
select {columns}
from execution_orders
where (%(statuses)s::text[] is null or status = any(%(statuses)s::text[]))
  and (%(symbol)s::text is null or symbol = %(symbol)s::text)
  and (%(after_at)s::timestamptz is null
       or (created_at, id) < (%(after_at)s::timestamptz, %(after_id)s::uuid))
order by created_at desc, id desc
limit %(limit)s
""").format(columns=_ORDER_COLUMNS)

# A position is a fill not yet closed (a partial fill holds its filled part).
_POSITIONS_SQL = sql.SQL("""
select {columns}
from execution_orders
where status in ('filled', 'partially_filled') and closed_at is null and filled_qty > 0
order by filled_at desc nulls last, id desc
""").format(columns=_ORDER_COLUMNS)

_LOGS_SQL = """
select id, order_id, level, event, message, context, created_at
from trade_logs
where (%(order_id)s::uuid is null or order_id = %(order_id)s::uuid)
  and (%(after)s::bigint is null or id < %(after)s::bigint)
order by id desc
limit %(limit)s
"""

_TOTALS_SQL = """
select
  coalesce(sum(realized_pnl) filter (where closed_at >= %(day)s), 0) as pnl_today,
  coalesce(sum(realized_pnl) filter (where closed_at >= %(week)s), 0) as pnl_7d,
  coalesce(sum(realized_pnl) filter (where closed_at is not null), 0) as pnl_total,
  coalesce(sum(fee), 0) + coalesce(sum(exit_fee), 0) as fees,
  count(*) filter (where closed_at is not null) as closed,
  count(*) filter (where closed_at is not null and realized_pnl > 0) as wins,
  count(*) filter (where closed_at is not null and realized_pnl <= 0) as losses
from execution_orders
"""

_SERIES_SQL = """
select order_id, symbol, closed_at, realized_pnl, cumulative_pnl from (
  select id as order_id, symbol, closed_at, realized_pnl,
         sum(realized_pnl) over (order by closed_at, id) as cumulative_pnl
  from execution_orders
  where closed_at is not null and realized_pnl is not null
) s
order by closed_at desc, order_id desc
limit %(limit)s
"""


@dataclass(frozen=True, slots=True)
class OrderKey:
    """Where an orders page starts: after the row ``(created_at, id)``."""

    created_at: datetime
    id: UUID


async def orders_page(
    db: Database,
    caller: Caller,
    *,
    statuses: Sequence[str] | None,
    symbol: str | None,
    after: OrderKey | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Up to ``limit`` of the caller's orders, newest first, after ``after``."""
    params = {
        "statuses": list(statuses) if statuses else None,
        "symbol": symbol,
        "after_at": after.created_at if after else None,
        "after_id": after.id if after else None,
        "limit": limit,
    }
    async with db.read(caller) as conn:
        return list(await (await conn.execute(_ORDERS_SQL, params)).fetchall())


async def open_positions(db: Database, caller: Caller) -> list[dict[str, Any]]:
    """The caller's fills not yet closed, newest first."""
    async with db.read(caller) as conn:
        return list(await (await conn.execute(_POSITIONS_SQL)).fetchall())


async def trade_logs_page(
    db: Database, caller: Caller, *, order_id: UUID | None, after_id: int | None, limit: int
) -> list[dict[str, Any]]:
    """Up to ``limit`` of the caller's events (one order's with ``order_id``), newest first."""
    params = {"order_id": order_id, "after": after_id, "limit": limit}
    async with db.read(caller) as conn:
        return list(await (await conn.execute(_LOGS_SQL, params)).fetchall())


@dataclass(frozen=True, slots=True)
class Totals:
    """The caller's realized P&L (since ``day``, since ``week``, ever), fees, and closes by result."""

    pnl_today: Decimal
    pnl_7d: Decimal
    pnl_total: Decimal
    fees: Decimal
    closed: int
    wins: int
    losses: int


async def summary(
    db: Database, caller: Caller, *, day: datetime, week: datetime
) -> tuple[Totals, list[dict[str, Any]], list[dict[str, Any]]]:
    """The caller's totals, the newest closes of the realized-P&L series (newest first) and their open
    positions, in one READ ONLY transaction (each statement sees the commits before it started)."""
    async with db.read(caller) as conn:
        row = await (await conn.execute(_TOTALS_SQL, {"day": day, "week": week})).fetchone()
        series = list(await (await conn.execute(_SERIES_SQL, {"limit": SERIES_MAX_POINTS})).fetchall())
        positions = list(await (await conn.execute(_POSITIONS_SQL)).fetchall())
    assert row is not None  # an aggregate always answers one row
    totals = Totals(
        pnl_today=Decimal(row["pnl_today"]),
        pnl_7d=Decimal(row["pnl_7d"]),
        pnl_total=Decimal(row["pnl_total"]),
        fees=Decimal(row["fees"]),
        closed=int(row["closed"]),
        wins=int(row["wins"]),
        losses=int(row["losses"]),
    )
    return totals, series, positions
