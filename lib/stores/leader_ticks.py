"""``scheduler_ticks``: which scheduler leads each tick of a once-per-tick job. Service only (RLS).

A claim is one ``insert ... on conflict do nothing`` on (job, tick): the scheduler whose insert lands is
that tick's leader for that job, whatever process or host it runs in, and a scheduler that reaches the
tick later (a slow worker, a host that restarted) finds the row and does not run the job again. Rows
older than ``RETENTION_DAYS`` are deleted by the leader of a later tick of the same job.
"""

from __future__ import annotations

from lib.db.session import Caller, Database

_SERVICE = Caller.service()
RETENTION_DAYS = 2

_CLAIM = """
insert into scheduler_ticks (job, tick, host_id) values (%s, %s, %s)
on conflict (job, tick) do nothing
returning host_id
"""

_PRUNE = (
    "delete from scheduler_ticks where job = %s and claimed_at < clock_timestamp() - %s * interval '1 day'"
)

_LEADER = "select host_id from scheduler_ticks where job = %s and tick = %s"


async def claim(db: Database, job: str, tick: str, host_id: str) -> bool:
    """Whether ``host_id`` leads ``tick`` of ``job`` (True only for the first to ask)."""
    async with db.write(_SERVICE) as conn:
        won = await (await conn.execute(_CLAIM, (job, tick, host_id))).fetchone() is not None
        if won:
            await conn.execute(_PRUNE, (job, RETENTION_DAYS))
    return won


async def leader(db: Database, job: str, tick: str) -> str | None:
    """The host that led ``tick`` of ``job``, or None when no scheduler has claimed it."""
    async with db.read(_SERVICE) as conn:
        row = await (await conn.execute(_LEADER, (job, tick))).fetchone()
    return None if row is None else str(row["host_id"])
