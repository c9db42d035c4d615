"""``instruments_cache``: one row per category, upserted, never growing. Service only (RLS).

The row's ``payload`` is ``{"format": <n>, "environments": {<environment>: <entry>}}``: one entry per
exchange environment, whose shape belongs to ``lib.services.instruments.payload``. This module reads and
writes one environment's entry without touching the others', and holds the per-(category, environment)
advisory lock that lets one caller at a time refresh it. A row of another format reads as no entry, and
the next write replaces it. ``fetched_at``/``expires_at`` columns are those of the latest write of any
environment (what ``diagnostics`` reports as the cache's age).

Every function that takes a ``Connection`` runs inside the caller's transaction, which must be
``service_role``'s; the lock is a transaction lock, released at commit or rollback.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import errors as pg_errors
from psycopg.types.json import Jsonb

from lib.db.session import Caller, Connection, Database

_READ_ENTRY = (
    "select payload -> 'environments' -> %(environment)s as entry from instruments_cache "
    "where category = %(category)s and payload ->> 'format' = %(format)s"
)

_UPSERT = """
insert into instruments_cache as c (category, payload, fetched_at, expires_at)
values (%(category)s,
        jsonb_build_object('format', %(format_n)s::int,
                           'environments', jsonb_build_object(%(environment)s::text, %(entry)s::jsonb)),
        %(fetched_at)s, %(expires_at)s)
on conflict (category) do update set
  payload = case
    when c.payload ->> 'format' = %(format)s and jsonb_typeof(c.payload -> 'environments') = 'object'
      then jsonb_set(c.payload, array['environments', %(environment)s::text], %(entry)s::jsonb)
    else excluded.payload
  end,
  fetched_at = excluded.fetched_at,
  expires_at = excluded.expires_at
"""

_AGES = "select category, fetched_at, expires_at from instruments_cache"


def _lock_key(category: str, environment: str) -> str:
    return f"instruments:{category}:{environment}"


async def read_entry(conn: Connection, category: str, environment: str, payload_format: int) -> Any:
    """The stored entry (JSON) of ``environment`` in ``category``'s row, or None without one.

    A row whose payload is not of ``payload_format`` has no entry.
    """
    params = {"category": category, "environment": environment, "format": str(payload_format)}
    row = await (await conn.execute(_READ_ENTRY, params)).fetchone()
    return None if row is None else row["entry"]


async def upsert_entry(
    conn: Connection,
    category: str,
    environment: str,
    payload_format: int,
    entry: dict[str, Any],
    *,
    fetched_at: datetime,
    expires_at: datetime,
) -> None:
    """Store ``environment``'s entry in ``category``'s row (other environments' entries are kept)."""
    await conn.execute(
        _UPSERT,
        {
            "category": category,
            "environment": environment,
            "format": str(payload_format),
            "format_n": payload_format,
            "entry": Jsonb(entry),
            "fetched_at": fetched_at,
            "expires_at": expires_at,
        },
    )


async def try_refresh_lock(conn: Connection, category: str, environment: str) -> bool:
    """Take the refresh lock of (category, environment) if it is free; whether it was taken."""
    row = await (
        await conn.execute(
            "select pg_try_advisory_xact_lock(hashtext(%s)) as won", (_lock_key(category, environment),)
        )
    ).fetchone()
    return bool(row and row["won"])


async def wait_refresh_lock(conn: Connection, category: str, environment: str, lock_timeout: str) -> bool:
    """Wait for the refresh lock of (category, environment), at most ``lock_timeout`` (an interval).

    True once it is held; False when the wait timed out (the transaction is then aborted: only a
    rollback is left to do with it).
    """
    await conn.execute("select set_config('lock_timeout', %s, true)", (lock_timeout,))
    try:
        await conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (_lock_key(category, environment),))
    except pg_errors.LockNotAvailable:
        return False
    return True


@dataclass(frozen=True, slots=True)
class RowAge:
    """When one category's row was last written, and until when it counts as fresh."""

    category: str
    fetched_at: datetime
    expires_at: datetime


async def row_ages(db: Database) -> list[RowAge]:
    """Every category's row, with its latest refresh (as service_role)."""
    async with db.read(Caller.service()) as conn:
        rows = await (await conn.execute(_AGES)).fetchall()
    return [RowAge(r["category"], r["fetched_at"], r["expires_at"]) for r in rows]
