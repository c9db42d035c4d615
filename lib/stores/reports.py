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
# The exit's fees are what the price difference earned beyond the realized P&L, which the tracker
# records net of the entry's fee (``fee``) and the exits' fees (lib.services.tracking.close_of).
_EXIT_FEES = """
    (case when o.side = 'Buy' then 1 else -1 end) * (o.exit_price - o.avg_fill_price)
    * coalesce(nullif(o.filled_qty, 0), o.qty) - o.realized_pnl - o.fee"""
_ORDERS = f"""
    select u.email, o.status, count(*) as n, coalesce(sum(o.realized_pnl), 0) as pnl,
           count(*) filter (where o.closed_at is not null) as closed,
           coalesce(sum(o.fee), 0)
           + coalesce(sum({_EXIT_FEES}) filter (where o.realized_pnl is not null), 0) as fees
    from execution_orders o join auth.users u on u.id = o.user_id
    where o.created_at >= %(since)s and u.email = any(%(emails)s)
    group by 1, 2 order by 1, 2"""  # noqa: S608 (no input in it: a constant expression)
_CLOSES = f"""
    select u.email, o.symbol, o.side, o.qty, o.avg_fill_price, o.exit_price, o.close_reason,
           o.realized_pnl,
           case when o.realized_pnl is not null then o.fee + ({_EXIT_FEES}) end as fees
    from execution_orders o join auth.users u on u.id = o.user_id
    where o.created_at >= %(since)s and u.email = any(%(emails)s) and o.closed_at is not null
    order by o.closed_at"""  # noqa: S608 (no input in it: a constant expression)


async def signals_by_bucket(db: Database, since: datetime) -> list[dict[str, Any]]:
    """Signals stored since ``since``, counted by algorithm, timeframe and score decile (1..10)."""
    async with db.read(Caller.service()) as conn:
        return await (await conn.execute(_SIGNALS, {"since": since})).fetchall()


def orders_by_user(
    owner: psycopg.Connection[Any], since: datetime, emails: list[str]
) -> list[tuple[Any, ...]]:
    """``(email, status, orders, realized P&L, closed, fees)`` per user and status since ``since``; fees
    are the entries' and (for closed positions) the exits' fees, in USDT."""
    return owner.execute(_ORDERS, {"since": since, "emails": emails}).fetchall()


def closes_by_user(
    owner: psycopg.Connection[Any], since: datetime, emails: list[str]
) -> list[tuple[Any, ...]]:
    """Every position closed since ``since`` for these users, oldest close first: ``(email, symbol,
    side, qty, entry, exit, reason, realized P&L, fees)``."""
    return owner.execute(_CLOSES, {"since": since, "emails": emails}).fetchall()
