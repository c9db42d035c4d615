"""Scanner leases, per-bar universes and bucket claims (``scanner_hosts``, ``scan_universes``,
``scan_claims``). Service only (RLS).

Everything is per ``scope``, the market the hosts share (the exchange environment, or one paper
exchange). Every time judgement is the database's (``clock_timestamp()``), so no host's clock matters:

- a host is live while its lease row's ``expires_at`` is in the future (:func:`renew_lease`);
- the universe of a (scope, timeframe, bar) is written once, by whichever host gets there first, and
  every other host reads that row (:func:`put_universe`, :func:`shared_universe`);
- a bucket of a bar is scanned by the host whose ``insert ... on conflict do nothing`` inserted its claim
  row, or by the live host whose ``update`` took over an unfinished claim of a host whose lease had
  expired (:func:`claim`). Concurrent takeovers of one row serialise on its row lock, and the loser's
  ``where`` is evaluated again on the winner's row (a live host now), so it gets nothing;
- ``finished_at`` is set only by the claim's current host (:func:`finish`): a host whose claim was taken
  over learns it there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from lib.db.session import Caller, Database

_SERVICE = Caller.service()
#: Universes (and their claims, by cascade) older than this are deleted when a new bar's is written.
RETENTION_DAYS = 2

# The CTE reads the row as it was before this statement: whether the previous lease had lapsed.
_RENEW = """
with previous as (
  select expires_at <= clock_timestamp() or scope <> %(scope)s as lapsed
  from scanner_hosts where host_id = %(host)s
)
insert into scanner_hosts as h (host_id, scope, source_address, expires_at)
values (%(host)s, %(scope)s, %(address)s, clock_timestamp() + %(ttl)s * interval '1 second')
on conflict (host_id) do update set
  renewed_at = clock_timestamp(), expires_at = excluded.expires_at, scope = excluded.scope,
  source_address = excluded.source_address
returning (select lapsed from previous) as lapsed
"""

_DROP = "delete from scanner_hosts where host_id = %s"

_LIVE = (
    "select host_id from scanner_hosts where scope = %s and expires_at > clock_timestamp() order by host_id"
)

_PRUNE = "delete from scan_universes where created_at < clock_timestamp() - %s * interval '1 day'"
# Leases of hosts that died long ago (a clean stop deletes its own): they own nothing, only take room.
_PRUNE_HOSTS = "delete from scanner_hosts where expires_at < clock_timestamp() - %s * interval '1 day'"

_PUT_UNIVERSE = """
insert into scan_universes (scope, timeframe, bar_time, buckets, symbols, created_by)
values (%s, %s, %s, %s, %s, %s) on conflict (scope, timeframe, bar_time) do nothing
"""

_GET_UNIVERSE = (
    "select buckets, symbols from scan_universes where scope = %s and timeframe = %s and bar_time = %s"
)

_INSERT_CLAIMS = """
insert into scan_claims (scope, timeframe, bar_time, bucket, host_id, symbols)
select %(scope)s, %(tf)s, %(bar)s, b.bucket, %(host)s, b.symbols
from jsonb_to_recordset(%(rows)s::jsonb) as b(bucket smallint, symbols text[])
on conflict (scope, timeframe, bar_time, bucket) do nothing
returning bucket
"""

# An unfinished claim of a host whose lease has expired (or was dropped) is taken over.
_TAKE_OVER = """
update scan_claims c set host_id = %(host)s, takeovers = c.takeovers + 1, claimed_at = clock_timestamp()
where c.scope = %(scope)s and c.timeframe = %(tf)s and c.bar_time = %(bar)s and c.bucket = any(%(buckets)s)
  and c.finished_at is null and c.host_id <> %(host)s
  and not exists (
    select 1 from scanner_hosts h where h.host_id = c.host_id and h.expires_at > clock_timestamp()
  )
returning c.bucket
"""

_FINISH = """
update scan_claims set finished_at = clock_timestamp()
where scope = %s and timeframe = %s and bar_time = %s and bucket = any(%s) and host_id = %s
  and finished_at is null
returning bucket
"""

_RELEASE = """
delete from scan_claims
where scope = %s and timeframe = %s and bar_time = %s and bucket = any(%s) and host_id = %s
  and finished_at is null
"""

_PROGRESS = """
select count(*) as claimed, count(finished_at) as finished
from scan_claims where scope = %s and timeframe = %s and bar_time = %s
"""


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar of one timeframe in one scope: what universes and claims are keyed by."""

    scope: str
    timeframe: str
    bar_time: datetime

    def key(self) -> tuple[str, str, datetime]:
        """The key's columns, in the tables' order."""
        return (self.scope, self.timeframe, self.bar_time)


@dataclass(frozen=True, slots=True)
class BarUniverse:
    """The symbols of one bar and how many buckets they are hashed into."""

    buckets: int
    symbols: tuple[str, ...]


async def renew_lease(
    db: Database, host_id: str, scope: str, source_address: str | None, ttl_s: float
) -> bool:
    """Hold (or take) ``host_id``'s lease in ``scope`` for ``ttl_s`` more seconds of database time.

    True when the host was live (in that scope) until now, False when its lease had lapsed or it had
    none: its unfinished claims may have been taken over meanwhile.
    """
    params = {"host": host_id, "scope": scope, "address": source_address, "ttl": ttl_s}
    async with db.write(_SERVICE) as conn:
        row = await (await conn.execute(_RENEW, params)).fetchone()
    assert row is not None  # an upsert ... returning always answers its row
    return row["lapsed"] is False


async def drop_lease(db: Database, host_id: str) -> None:
    """End ``host_id``'s lease now (a clean stop): the other hosts take its share at once."""
    async with db.write(_SERVICE) as conn:
        await conn.execute(_DROP, (host_id,))


async def live_hosts(db: Database, scope: str) -> list[str]:
    """The hosts of ``scope`` whose lease has not expired, by id."""
    async with db.read(_SERVICE) as conn:
        rows = await (await conn.execute(_LIVE, (scope,))).fetchall()
    return [str(r["host_id"]) for r in rows]


async def shared_universe(db: Database, bar: Bar) -> BarUniverse | None:
    """The universe recorded for ``bar``, or None when no host has recorded it yet."""
    async with db.read(_SERVICE) as conn:
        row = await (await conn.execute(_GET_UNIVERSE, bar.key())).fetchone()
    return None if row is None else BarUniverse(int(row["buckets"]), tuple(row["symbols"]))


async def put_universe(db: Database, bar: Bar, universe: BarUniverse, host_id: str) -> BarUniverse:
    """Record ``universe`` for ``bar`` unless a host did first; answers the one recorded (first wins).

    Writing a new bar's universe also deletes those older than ``RETENTION_DAYS`` (claims go with them),
    and the leases that expired that long ago.
    """
    params = (*bar.key(), universe.buckets, list(universe.symbols), host_id)
    async with db.write(_SERVICE) as conn:
        await conn.execute(_PRUNE, (RETENTION_DAYS,))
        await conn.execute(_PRUNE_HOSTS, (RETENTION_DAYS,))
        await conn.execute(_PUT_UNIVERSE, params)
        row = await (await conn.execute(_GET_UNIVERSE, bar.key())).fetchone()
    assert row is not None  # inserted above, or there before
    return BarUniverse(int(row["buckets"]), tuple(row["symbols"]))


async def claim(
    db: Database, bar: Bar, host_id: str, symbols_by_bucket: Mapping[int, Sequence[str]]
) -> list[int]:
    """Claim these buckets of ``bar`` for ``host_id``: the ones no host had claimed, and the unfinished
    ones of hosts whose lease has expired. Answers the buckets won, sorted; only those may be scanned."""
    if not symbols_by_bucket:
        return []
    rows = json.dumps([{"bucket": b, "symbols": list(s)} for b, s in symbols_by_bucket.items()])
    params = {"scope": bar.scope, "tf": bar.timeframe, "bar": bar.bar_time, "host": host_id}
    async with db.write(_SERVICE) as conn:
        inserted = await (await conn.execute(_INSERT_CLAIMS, {**params, "rows": rows})).fetchall()
        taken = await (
            await conn.execute(_TAKE_OVER, {**params, "buckets": sorted(symbols_by_bucket)})
        ).fetchall()
    return sorted({int(r["bucket"]) for r in inserted} | {int(r["bucket"]) for r in taken})


async def finish(db: Database, bar: Bar, buckets: Sequence[int], host_id: str) -> list[int]:
    """Mark ``host_id``'s claims on these buckets finished; answers those it still held (sorted)."""
    async with db.write(_SERVICE) as conn:
        rows = await (await conn.execute(_FINISH, (*bar.key(), list(buckets), host_id))).fetchall()
    return sorted(int(r["bucket"]) for r in rows)


async def release(db: Database, bar: Bar, buckets: Sequence[int], host_id: str) -> None:
    """Give back ``host_id``'s unfinished claims (its scan failed as a whole): claimable again."""
    async with db.write(_SERVICE) as conn:
        await conn.execute(_RELEASE, (*bar.key(), list(buckets), host_id))


async def progress(db: Database, bar: Bar) -> tuple[int, int]:
    """``(claimed, finished)`` buckets of ``bar``."""
    async with db.read(_SERVICE) as conn:
        row = await (await conn.execute(_PROGRESS, bar.key())).fetchone()
    assert row is not None  # an aggregate always answers one row
    return int(row["claimed"]), int(row["finished"])
