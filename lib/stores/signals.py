"""``signals``: the scanner's output and the executor's queue. Read: everyone (RLS); write: service only.

This module holds the scanner's idempotent insert, the display query of ``signals-api`` and the queue
depth ``diagnostics`` reports. The executor's claim and status updates live with the executor.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from psycopg import sql

from lib.core.signal import NewSignal, Signal
from lib.db.session import Caller, Database

#: The columns of a stored signal, in the order they are read (and answered by signals-api).
COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Signal))
_NUMERIC_COLUMNS = ("score", "confidence", "entry_price", "stop_loss", "take_profit", "atr")
_NEW_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(NewSignal))

# One statement for a whole scan: the rows travel as one JSON array. "do nothing" on the one-per-bar key
# makes a second scan of the same bar add nothing; only the rows actually inserted come back.
_INSERT_NEW = """
insert into signals (symbol, category, timeframe, direction, algorithm, score, confidence, entry_price,
                     stop_loss, take_profit, atr, components, bar_time, expires_at, status)
select r.symbol, r.category, r.timeframe, r.direction, r.algorithm, r.score, r.confidence, r.entry_price,
       r.stop_loss, r.take_profit, r.atr, r.components, r.bar_time, r.expires_at, 'new'
from jsonb_to_recordset(%s::jsonb) as r(
  symbol text, category text, timeframe text, direction text, algorithm text, score numeric,
  confidence numeric, entry_price numeric, stop_loss numeric, take_profit numeric, atr numeric,
  components jsonb, bar_time timestamptz, expires_at timestamptz)
on conflict on constraint signals_one_per_bar do nothing
returning id
"""

_QUEUE_DEPTH = (
    "select count(*) as depth, min(created_at) as oldest from signals "
    "where status = 'new' and expires_at > %s"
)


def _new_row(signal: NewSignal) -> dict[str, Any]:
    row = {name: getattr(signal, name) for name in _NEW_COLUMNS}
    row["bar_time"] = signal.bar_time.isoformat()
    row["expires_at"] = signal.expires_at.isoformat()
    return row


async def insert_new(db: Database, signals: Sequence[NewSignal]) -> list[str]:
    """Store ``signals`` as ``new`` in one statement (as service_role); the ids of the rows that were new.

    A signal already stored for its (symbol, timeframe, algorithm, direction, bar_time) is skipped.
    """
    if not signals:
        return []
    async with db.write(Caller.service()) as conn:
        cursor = await conn.execute(_INSERT_NEW, (json.dumps([_new_row(s) for s in signals]),))
        return [str(row["id"]) for row in await cursor.fetchall()]


def _where(
    *,
    symbol: str | None,
    algorithm: str | None,
    timeframe: str | None,
    direction: str | None,
    min_score: float | None,
    since: datetime | None,
    after: tuple[datetime, UUID] | None,
) -> tuple[sql.Composable, list[Any]]:
    """The WHERE clause: fixed SQL per filter, every value a parameter."""
    clauses: list[sql.Composable] = []
    params: list[Any] = []
    for column, value in (
        ("symbol", symbol),
        ("algorithm", algorithm),
        ("timeframe", timeframe),
        ("direction", direction),
    ):
        if value is not None:
            clauses.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            params.append(value)
    if min_score is not None:
        # As numeric, not float8: 80.1 must compare equal to the stored numeric(5,2) 80.10.
        clauses.append(sql.SQL("score >= %s"))
        params.append(Decimal(str(min_score)))
    if since is not None:
        clauses.append(sql.SQL("created_at >= %s"))
        params.append(since)
    if after is not None:
        # A row comparison, which the (created_at desc, id desc) index serves directly.
        clauses.append(sql.SQL("(created_at, id) < (%s, %s)"))
        params.extend(after)
    if not clauses:
        return sql.SQL(""), params
    return sql.SQL("where ") + sql.SQL(" and ").join(clauses), params


def _signal(row: dict[str, Any]) -> Signal:
    values = dict(row)
    for column in _NUMERIC_COLUMNS:
        values[column] = float(values[column])
    return Signal(**values)


async def newest_first(
    db: Database,
    caller: Caller,
    *,
    limit: int,
    symbol: str | None = None,
    algorithm: str | None = None,
    timeframe: str | None = None,
    direction: str | None = None,
    min_score: float | None = None,
    since: datetime | None = None,
    after: tuple[datetime, UUID] | None = None,
) -> list[Signal]:
    """Up to ``limit`` signals ``caller`` may see (RLS decides), ordered ``(created_at desc, id desc)``.

    Every filter given must hold (``since`` is inclusive); ``after`` is a ``(created_at, id)`` position
    in that order, and only rows strictly after it are read.
    """
    where, params = _where(
        symbol=symbol,
        algorithm=algorithm,
        timeframe=timeframe,
        direction=direction,
        min_score=min_score,
        since=since,
        after=after,
    )
    query = sql.SQL(
        "select {columns} from signals {where} order by created_at desc, id desc limit %s"
    ).format(columns=sql.SQL(", ").join(map(sql.Identifier, COLUMNS)), where=where)
    async with db.read(caller) as conn:
        rows = await (await conn.execute(query, [*params, limit])).fetchall()
    return [_signal(row) for row in rows]


async def queue_depth(db: Database, as_of: datetime) -> tuple[int, datetime | None]:
    """Signals waiting for execution (``new``, unexpired at ``as_of``) and the oldest one's creation."""
    async with db.read(Caller.service()) as conn:
        row = await (await conn.execute(_QUEUE_DEPTH, (as_of,))).fetchone()
    assert row is not None  # an aggregate always answers one row
    return int(row["depth"]), row["oldest"]
