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


# The same bucket for many accounts in one statement (distinct accounts: a row is updated once per
# statement). Rows are taken in account order, so two such statements lock shared rows in one order.
_TAKE_MANY = """
with c as (select clock_timestamp() as now),
req as (
  select r.account_id, r.max_debt
  from unnest(%(ids)s::uuid[], %(max_debt)s::float8[]) as r(account_id, max_debt)
)
insert into exchange_create_budget as b (account_id, tokens, refilled_at)
select req.account_id, %(burst)s::float8 - 1, c.now from req, c
order by req.account_id
on conflict (account_id) do update set
  tokens = least(%(burst)s::float8, b.tokens + %(rate)s::float8
    * greatest(0, extract(epoch from excluded.refilled_at - b.refilled_at)::float8)) - 1,
  refilled_at = greatest(excluded.refilled_at, b.refilled_at)
where least(%(burst)s::float8, b.tokens + %(rate)s::float8
    * greatest(0, extract(epoch from excluded.refilled_at - b.refilled_at)::float8)) - 1
  >= -(select max_debt from req where req.account_id = b.account_id)
returning b.account_id, greatest(0, -b.tokens) / %(rate)s::float8 as wait_s
"""


async def take_many(
    db: Database, requests: list[tuple[UUID, float]], *, burst: float, rate: float
) -> list[float | None]:
    """:func:`take` for several distinct accounts at once: ``(account_id, max_wait_s)`` each; the
    waits in the same order (None: nothing booked for that account)."""
    params = {
        "ids": [account_id for account_id, _ in requests],
        "max_debt": [max_wait_s * rate for _, max_wait_s in requests],
        "burst": burst,
        "rate": rate,
    }
    async with db.write(_SERVICE) as conn:
        rows = await (await conn.execute(_TAKE_MANY, params)).fetchall()
    waits = {row["account_id"]: float(row["wait_s"]) for row in rows}
    return [waits.get(account_id) for account_id, _ in requests]
