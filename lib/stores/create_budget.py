"""``exchange_create_budget``: each account's order-create token bucket, shared across hosts. Service only.

One row per account; :func:`take` books one order create in one statement on the database clock. The
bucket refills at ``rate`` tokens per second up to ``burst``; a take always spends one token, and may
leave the bucket in debt: the taker then waits ``-tokens / rate`` seconds for its slot. So takers are
served in the order their statements ran, whatever process or host they are in, and the row never
holds more than ``max_wait_s`` seconds of booked slots: a take that would wait longer books nothing.
"""

from __future__ import annotations

from uuid import UUID

from lib.db.session import Caller, Database

_SERVICE = Caller.service()

# clock_timestamp() is read once, in the CTE. Concurrent takers serialise on the row lock; one that read
# the clock before the row's last take counts no elapsed time (greatest), never negative. The refilled
# level is written out twice (the SET and the WHERE): a query string is never assembled from parts.
_TAKE = """
with c as (select clock_timestamp() as now)
insert into exchange_create_budget as b (account_id, tokens, refilled_at)
select %(account_id)s, %(burst)s::float8 - 1, c.now from c
on conflict (account_id) do update set
  tokens = least(%(burst)s::float8, b.tokens + %(rate)s::float8
    * greatest(0, extract(epoch from excluded.refilled_at - b.refilled_at)::float8)) - 1,
  refilled_at = greatest(excluded.refilled_at, b.refilled_at)
where least(%(burst)s::float8, b.tokens + %(rate)s::float8
    * greatest(0, extract(epoch from excluded.refilled_at - b.refilled_at)::float8)) - 1
  >= -%(max_debt)s::float8
returning greatest(0, -tokens) / %(rate)s::float8 as wait_s
"""


async def take(
    db: Database, account_id: UUID, *, burst: float, rate: float, max_wait_s: float
) -> float | None:
    """Book one order create for ``account_id``: the seconds to wait before sending it (0: now).

    None when the next free slot is more than ``max_wait_s`` away; nothing is booked then.
    """
    params = {
        "account_id": account_id,
        "burst": burst,
        "rate": rate,
        "max_debt": max_wait_s * rate,
    }
    async with db.write(_SERVICE) as conn:
        row = await (await conn.execute(_TAKE, params)).fetchone()
    return None if row is None else float(row["wait_s"])
