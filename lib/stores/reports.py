"""Operator reports across users: what the demo prints at its end.

Per-user lines join ``auth.users``, which no API role may read, so they take the operator's (owner)
connection; the signal counts are read as ``service_role``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from lib.db.session import Caller, Database

_SIGNALS = """
    select algorithm, timeframe, width_bucket(score, 0, 100.0001, 10) as bucket, count(*) as n
    from signals where created_at >= %(since)s group by 1, 2, 3 order by 1, 2, 3"""
_ORDERS = """
    select u.email, o.status, count(*) as n, coalesce(sum(o.realized_pnl), 0) as pnl,
           count(*) filter (where o.closed_at is not null) as closed
    from execution_orders o join auth.users u on u.id = o.user_id
    where o.created_at >= %(since)s and u.email = any(%(emails)s)
    group by 1, 2 order by 1, 2"""
_CLOSES = """
    select u.email, o.symbol, o.side, o.qty, o.avg_fill_price, o.exit_price, o.close_reason,
           o.realized_pnl
    from execution_orders o join auth.users u on u.id = o.user_id
    where o.created_at >= %(since)s and u.email = any(%(emails)s) and o.closed_at is not null
    order by o.closed_at"""


async def signals_by_bucket(db: Database, since: datetime) -> list[dict[str, Any]]:
    """Signals stored since ``since``, counted by algorithm, timeframe and score decile (1..10)."""
    async with db.read(Caller.service()) as conn:
        return await (await conn.execute(_SIGNALS, {"since": since})).fetchall()


def orders_by_user(
    owner: psycopg.Connection[Any], since: datetime, emails: list[str]
) -> list[tuple[Any, ...]]:
    """``(email, status, orders, realized P&L, closed)`` per user and status since ``since``."""
    return owner.execute(_ORDERS, {"since": since, "emails": emails}).fetchall()


def closes_by_user(
    owner: psycopg.Connection[Any], since: datetime, emails: list[str]
) -> list[tuple[Any, ...]]:
    """Every position closed since ``since`` for these users, oldest close first."""
    return owner.execute(_CLOSES, {"since": since, "emails": emails}).fetchall()
