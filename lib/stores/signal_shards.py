"""``signal_shards``: one signal's users split into shards that executors on every host claim. Service only.

A row per non-empty shard of a signal, written by the executor that claimed the signal
(:func:`create`). A shard claim is ``status = 'processing'`` with ``claimed_by`` and a lease
(``lease_until``) on the database clock, so no host's clock matters; the holder renews its leases while
it works (:func:`renew`). A shard whose lease ran out (its host died) is claimable again, and its
``claimed_at`` tells the next holder it was worked on before (``reclaimed``: rows reserved then may be
waiting to be sent). The executor that finishes the last shard of a signal marks the signal done in the
same transaction (:func:`finish`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from psycopg import sql

from lib.db.session import Caller, Database
from lib.stores.settings import TRADING_HALTED_SQL
from lib.stores.signal_queue import SignalRow

_SERVICE = Caller.service()


@dataclass(frozen=True, slots=True)
class ShardClaim:
    """A claimed shard of a signal; ``reclaimed``: some executor held it before."""

    signal: SignalRow
    shard: int
    reclaimed: bool
    #: How many users the shard held when the signal was split.
    users: int = 0


_CREATE_SQL = """
insert into signal_shards (signal_id, shard, users)
select %(signal_id)s, s, u from unnest(%(shards)s::int[], %(users)s::int[]) as t(s, u)
on conflict (signal_id, shard) do nothing
"""

# Nothing is claimed while the operator kill switch is on, nor a shard of a signal that is no longer
# being worked on (expired, or handed back to the queue: its next claimer sees the shards again).
_CLAIM_SQL = sql.SQL("""
with picked as (
  select sh.signal_id, sh.shard, sh.claimed_at is not null as reclaimed
  from signal_shards sh join signals s on s.id = sh.signal_id
  where not {halted} and sh.status <> 'done'
    and (sh.status = 'new' or sh.lease_until < clock_timestamp())
    and s.status = 'processing' and s.expires_at > %(market)s
    and not (sh.signal_id = any(%(skip)s::uuid[]))
    and (%(ids)s::uuid[] is null or sh.signal_id = any(%(ids)s::uuid[]))
  order by s.created_at, sh.shard
  limit %(limit)s
  for update of sh skip locked
)
update signal_shards sh set status = 'processing', claimed_by = %(worker)s,
  claimed_at = clock_timestamp(), lease_until = clock_timestamp() + make_interval(secs => %(lease)s)
from picked, signals s
where sh.signal_id = picked.signal_id and sh.shard = picked.shard and s.id = sh.signal_id
returning s.id, s.symbol, s.category, s.timeframe, s.direction, s.algorithm, s.score, s.entry_price,
  s.stop_loss, s.take_profit, sh.shard, sh.users, picked.reclaimed
""").format(halted=TRADING_HALTED_SQL)

_RENEW_SQL = """
update signal_shards set lease_until = clock_timestamp() + make_interval(secs => %(lease)s)
where claimed_by = %(worker)s and status = 'processing'
"""

# Serialised on the signal's row lock, so of two executors finishing the last two shards at once the
# second sees the first's shard done and marks the signal: neither can miss the other's commit.
_LOCK_SIGNAL_SQL = "select status from signals where id = %s for update"
_DONE_SQL = """
update signal_shards set status = 'done', done_at = clock_timestamp(), lease_until = null
where signal_id = %(signal_id)s and shard = %(shard)s and status <> 'done'
"""
# Executed when some order of it is live or filled, whoever placed it (as for a reclaimed signal).
_MARK_SIGNAL_SQL = """
update signals s set
  status = case when exists (select 1 from execution_orders o where o.signal_id = s.id
                             and o.status in ('requested', 'placed', 'partially_filled', 'filled'))
                then 'executed' else 'skipped' end,
  processed_at = %(now)s
where s.id = %(signal_id)s and s.status = 'processing'
  and not exists (select 1 from signal_shards sh where sh.signal_id = s.id and sh.status <> 'done')
returning s.status
"""

_RELEASE_SQL = """
update signal_shards set status = 'new', claimed_by = null, lease_until = null
where signal_id = %(signal_id)s and shard = %(shard)s and status = 'processing' and claimed_by = %(worker)s
"""


async def create(db: Database, signal_id: UUID, users_by_shard: Mapping[int, int]) -> None:
    """Write the signal's shards (shard number: how many users it holds); existing ones stay."""
    shards = sorted(users_by_shard)
    params = {"signal_id": signal_id, "shards": shards, "users": [users_by_shard[s] for s in shards]}
    async with db.write(_SERVICE) as conn:
        await conn.execute(_CREATE_SQL, params)


async def exists(db: Database, signal_id: UUID) -> bool:
    """Whether the signal was split into shards."""
    async with db.read(_SERVICE) as conn:
        row = await (
            await conn.execute("select 1 from signal_shards where signal_id = %s limit 1", (signal_id,))
        ).fetchone()
    return row is not None


async def claim(
    db: Database,
    *,
    worker: str,
    lease_s: float,
    market_now: datetime,
    limit: int = 1,
    skip: Sequence[UUID] = (),
    signal_ids: Sequence[UUID] | None = None,
) -> list[ShardClaim]:
    """Claim up to ``limit`` shards that are new or whose lease ran out, oldest signal first, for
    ``lease_s`` seconds. ``skip``: signals not to take shards of; ``signal_ids``: only these signals."""
    params = {
        "worker": worker,
        "lease": lease_s,
        "market": market_now,
        "limit": limit,
        "skip": list(skip),
        "ids": None if signal_ids is None else list(signal_ids),
    }
    async with db.write(_SERVICE) as conn:
        rows = await (await conn.execute(_CLAIM_SQL, params)).fetchall()
    claims = []
    for row in rows:
        shard, users, reclaimed = int(row.pop("shard")), int(row.pop("users")), bool(row.pop("reclaimed"))
        claims.append(ShardClaim(signal=SignalRow(**row), shard=shard, reclaimed=reclaimed, users=users))
    return claims


async def renew(db: Database, *, worker: str, lease_s: float) -> int:
    """Extend the lease of every shard ``worker`` holds to ``lease_s`` from now; how many it holds."""
    params = {"worker": worker, "lease": lease_s}
    async with db.write(_SERVICE) as conn:
        result = await conn.execute(_RENEW_SQL, params)
    return result.rowcount


async def finish(db: Database, signal_id: UUID, shard: int, *, now: datetime) -> str | None:
    """Mark the shard done; if it was the signal's last, mark the signal ``executed`` or ``skipped``
    and return that status (else None)."""
    async with db.write(_SERVICE) as conn:
        await conn.execute(_LOCK_SIGNAL_SQL, (signal_id,))
        await conn.execute(_DONE_SQL, {"signal_id": signal_id, "shard": shard})
        row = await (await conn.execute(_MARK_SIGNAL_SQL, {"signal_id": signal_id, "now": now})).fetchone()
    return None if row is None else str(row["status"])


async def finish_signal(db: Database, signal_id: UUID, *, now: datetime) -> str | None:
    """Mark the signal done if every shard of it is (an executor that died between the two)."""
    async with db.write(_SERVICE) as conn:
        await conn.execute(_LOCK_SIGNAL_SQL, (signal_id,))
        row = await (await conn.execute(_MARK_SIGNAL_SQL, {"signal_id": signal_id, "now": now})).fetchone()
    return None if row is None else str(row["status"])


async def release(db: Database, signal_id: UUID, shard: int, *, worker: str) -> None:
    """Hand a shard ``worker`` holds back (``claimed_at`` stays: its next holder resumes it)."""
    async with db.write(_SERVICE) as conn:
        await conn.execute(_RELEASE_SQL, {"signal_id": signal_id, "shard": shard, "worker": worker})


async def shard_states(db: Database, signal_id: UUID) -> list[dict[str, object]]:
    """The signal's shards: number, users, status, holder (for tests and diagnostics)."""
    async with db.read(_SERVICE) as conn:
        rows = await (
            await conn.execute(
                "select shard, users, status, claimed_by from signal_shards where signal_id = %s "
                "order by shard",
                (signal_id,),
            )
        ).fetchall()
    return [dict(r) for r in rows]
