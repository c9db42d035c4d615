"""``scan_runs``: one row per scan of one (timeframe, algorithm). Service only (RLS).

A sharded scan (``lib.services.scanning.sharded``) records one row per algorithm per pass of a host
that scanned something, with its ``host_id`` and its share as ``symbols_requested``.

A run is inserted as ``running`` before any market data is read, so a crash leaves a trace, and closed
once as ``succeeded``, ``partial`` or ``failed`` with its counts and errors. ``diagnostics`` judges scan
freshness from the newest bar of the finished runs that were not dry runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from lib.db.session import Caller, Database

#: How a run ended (a row is ``running`` until then).
RunStatus = Literal["succeeded", "partial", "failed"]

_OPEN = (
    "insert into scan_runs (timeframe, algorithm, dry_run, status, host_id) "
    "values (%s, %s, %s, 'running', %s) returning id"
)

_CLOSE = (
    "update scan_runs set status = %s, symbols_requested = %s, symbols_scanned = %s, "
    "candidates = %s, signals_created = %s, errors = %s::jsonb, finished_at = now(), "
    "duration_ms = %s, bar_time = %s where id = %s"
)

_NEWEST_BARS = (
    "select timeframe, max(bar_time) as bar from scan_runs "
    "where status in ('succeeded', 'partial') and not dry_run group by timeframe"
)


async def open_runs(
    db: Database, timeframe: str, algorithms: Sequence[str], dry_run: bool, host_id: str | None = None
) -> list[str]:
    """One ``running`` row per algorithm, in one transaction; their ids in the algorithms' order.

    ``host_id``: the scanner host whose share the runs scan (None outside the shards).
    """
    ids: list[str] = []
    async with db.write(Caller.service()) as conn:
        for algorithm in algorithms:
            row = await (await conn.execute(_OPEN, (timeframe, algorithm, dry_run, host_id))).fetchone()
            assert row is not None  # insert ... returning answers the row it inserted
            ids.append(str(row["id"]))
    return ids


async def close_run(
    db: Database,
    run_id: str,
    *,
    status: RunStatus,
    symbols_requested: int,
    symbols_scanned: int,
    candidates: int,
    signals_created: int,
    errors: Sequence[Mapping[str, Any]],
    duration_ms: int,
    bar_time: datetime | None,
) -> None:
    """Record how run ``run_id`` ended (``finished_at`` is the database's now)."""
    async with db.write(Caller.service()) as conn:
        await conn.execute(
            _CLOSE,
            (
                status,
                symbols_requested,
                symbols_scanned,
                candidates,
                signals_created,
                json.dumps(list(errors)),
                duration_ms,
                bar_time,
                run_id,
            ),
        )


async def newest_bar_by_timeframe(db: Database) -> dict[str, datetime]:
    """Per timeframe, the newest bar a finished (``succeeded``/``partial``), non-dry run scored.

    Runs recorded before ``scan_runs.bar_time`` existed have no bar and count as not scanned.
    """
    async with db.read(Caller.service()) as conn:
        rows = await (await conn.execute(_NEWEST_BARS)).fetchall()
    return {r["timeframe"]: r["bar"] for r in rows if r["bar"] is not None}
