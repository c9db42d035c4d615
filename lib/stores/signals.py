"""``signals``: the scanner's output and the executor's queue. Read: everyone (RLS); write: service only.

This module holds the scanner's idempotent insert, the display query of ``signals-api`` and the queue
depth ``diagnostics`` reports. The executor's claim and status updates live with the executor.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
from psycopg import sql
from psycopg.rows import tuple_row
from psycopg.types.json import set_json_loads

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


# Each filter's fixed SQL; the values are always parameters.
_FILTERS: tuple[tuple[str, sql.Composable], ...] = (
    *((name, sql.SQL("{} = %s").format(sql.Identifier(name))) for name in ("symbol", "algorithm")),
    *((name, sql.SQL("{} = %s").format(sql.Identifier(name))) for name in ("timeframe", "direction")),
    # As numeric, not float8: 80.1 must compare equal to the stored numeric(5,2) 80.10.
    ("min_score", sql.SQL("score >= %s")),
    ("since", sql.SQL("created_at >= %s")),
    # A row comparison, which the (created_at desc, id desc) index serves directly.
    ("after", sql.SQL("(created_at, id) < (%s, %s)")),
)
# The numbers are read as float8 by PostgreSQL (the same correctly rounded double Python would make of
# the numeric), so rows become Signals without a Decimal in between.
_SELECT = sql.SQL(", ").join(
    sql.SQL("{}::float8 as {}").format(sql.Identifier(name), sql.Identifier(name))
    if name in _NUMERIC_COLUMNS
    else sql.Identifier(name)
    for name in COLUMNS
)


def _load_json(data: str | bytes) -> Any:
    """``components`` as Python: orjson (several times faster than json on 50 rows), json as the
    fallback for what orjson refuses and json takes (an integer beyond 64 bits, say)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


@functools.cache
def _display_query(present: tuple[str, ...]) -> sql.SQL:
    """The display query for the filters ``present`` (a handful of shapes, each composed once)."""
    clauses = [clause for name, clause in _FILTERS if name in present]
    where = sql.SQL("where ") + sql.SQL(" and ").join(clauses) if clauses else sql.SQL("")
    query = sql.SQL("select {columns} from signals {where} order by created_at desc, id desc limit %s")
    # Rendered once: identifiers quote the same on every connection (UTF-8, standard strings).
    return sql.SQL(query.format(columns=_SELECT, where=where).as_string(None))


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
    values: dict[str, Any] = {
        "symbol": symbol,
        "algorithm": algorithm,
        "timeframe": timeframe,
        "direction": direction,
        "min_score": None if min_score is None else Decimal(str(min_score)),
        "since": since,
        "after": after,
    }
    present = tuple(name for name, _clause in _FILTERS if values[name] is not None)
    params: list[Any] = []
    for name in present:
        params.extend(values[name] if name == "after" else (values[name],))
    async with db.read(caller) as conn:
        cursor = conn.cursor(row_factory=tuple_row)
        set_json_loads(_load_json, cursor)
        rows = await (await cursor.execute(_display_query(present), [*params, limit])).fetchall()
    # The columns are read in the dataclass's field order.
    return [Signal(*row) for row in rows]


async def queue_depth(db: Database, as_of: datetime) -> tuple[int, datetime | None]:
    """Signals waiting for execution (``new``, unexpired at ``as_of``) and the oldest one's creation."""
    async with db.read(Caller.service()) as conn:
        row = await (await conn.execute(_QUEUE_DEPTH, (as_of,))).fetchone()
    assert row is not None  # an aggregate always answers one row
    return int(row["depth"]), row["oldest"]
