"""The signals table as the executor's queue: expire, claim (``FOR UPDATE SKIP LOCKED``), renew,
release and mark done. Service only.

A claim is ``status = 'processing'`` with ``claimed_at``/``claimed_by``; a claim older than the stale
bound may be taken over by another executor. ``claimed_at`` survives a release, so the next claim knows
the signal was worked on before (``reclaimed``). The signals aggregate itself (what a signal is, how
the scanner writes it) has its own store; this module only moves signals through the queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal
from uuid import UUID

from psycopg import sql

from lib.db.session import Caller, Database
from lib.stores.settings import TRADING_HALTED_SQL

_SERVICE = Caller.service()


@dataclass(frozen=True, slots=True)
class SignalRow:
    """A claimed signal: the executor's projection of :class:`lib.core.signal.Signal`, with the prices
    as ``Decimal`` because orders are sized and rounded to the instrument's steps from them (the stored
    ``Signal`` keeps floats for display). ``reclaimed``: some executor had claimed it before (it died,
    or failed and handed it back), so rows it reserved may be waiting to be sent."""

    id: UUID
    symbol: str
    category: str
    timeframe: str
    direction: str
    algorithm: str
    score: Decimal
    entry_price: Decimal
    stop_loss: Decimal
    take_profit: Decimal
    reclaimed: bool = False

    @property
    def side(self) -> str:
        return "Buy" if self.direction == "LONG" else "Sell"


_EXPIRE_SQL = """
update signals set status = 'expired', processed_at = %(now)s
where status in ('new', 'processing') and expires_at <= %(market)s
  and (%(ids)s::uuid[] is null or id = any(%(ids)s::uuid[]))
"""

# Nothing is claimed while the operator kill switch is on (checked in the claim's own statement): the
# signals stay queued, and expire on time, rather than being marked skipped by a halted executor.
_CLAIM_SQL = sql.SQL("""
with picked as (
  select id, claimed_at is not null as reclaimed from signals
  where not {halted} and expires_at > %(market)s
    and (status = 'new' or (status = 'processing' and claimed_at < %(stale)s))
    and (%(ids)s::uuid[] is null or id = any(%(ids)s::uuid[]))
  order by created_at
  limit %(limit)s
  for update skip locked
)
update signals s set status = 'processing', claimed_at = %(now)s, claimed_by = %(worker)s
from picked
where s.id = picked.id
returning s.id, s.symbol, s.category, s.timeframe, s.direction, s.algorithm, s.score, s.entry_price,
  s.stop_loss, s.take_profit, picked.reclaimed
""").format(halted=TRADING_HALTED_SQL)

_MARK_SQL = """
update signals s set status = %(status)s, processed_at = %(now)s
where s.id = %(id)s and s.status = 'processing'
"""

# A signal claimed before: executed when some order of it is live or filled, whoever placed it, so an
# executor that took over and found nothing left to do does not call an executed signal skipped.
_MARK_RECLAIMED_SQL = """
update signals s set
  status = case when exists (select 1 from execution_orders o where o.signal_id = s.id
                             and o.status in ('requested', 'placed', 'partially_filled', 'filled'))
                then 'executed' else 'skipped' end,
  processed_at = %(now)s
where s.id = %(id)s and s.status = 'processing'
"""


async def expire_and_claim(
    db: Database,
    *,
    worker: str,
    now: datetime,
    market_now: datetime,
    stale_before: datetime,
    limit: int,
    signal_ids: Sequence[UUID] | None = None,
) -> tuple[list[SignalRow], int]:
    """In one transaction: expire signals past ``expires_at`` (judged at ``market_now``), then claim up
    to ``limit`` ``new`` ones, or ``processing`` ones claimed before ``stale_before``, oldest first.
    Returns the claimed signals and how many expired. ``signal_ids`` narrows both steps to those."""
    ids = None if signal_ids is None else list(signal_ids)
    async with db.write(_SERVICE) as conn:
        expired = await conn.execute(_EXPIRE_SQL, {"now": now, "market": market_now, "ids": ids})
        rows = await (
            await conn.execute(
                _CLAIM_SQL,
                {
                    "now": now,
                    "market": market_now,
                    "worker": worker,
                    "stale": stale_before,
                    "limit": limit,
                    "ids": ids,
                },
            )
        ).fetchall()
    return [SignalRow(**row) for row in rows], expired.rowcount


async def renew_claim(db: Database, signal_id: UUID, worker: str, now: datetime) -> bool:
    """Stamp ``worker``'s claim with ``now``; False if the signal is no longer claimed by it."""
    async with db.write(_SERVICE) as conn:
        row = await (
            await conn.execute(
                "update signals set claimed_at = %s where id = %s and status = 'processing' "
                "and claimed_by = %s returning id",
                (now, signal_id, worker),
            )
        ).fetchone()
    return row is not None


async def release_claim(db: Database, signal_id: UUID, worker: str) -> None:
    """Put a signal ``worker`` claimed back to ``new`` (``claimed_at`` stays: see the module docstring)."""
    async with db.write(_SERVICE) as conn:
        await conn.execute(
            "update signals set status = 'new', claimed_by = null "
            "where id = %s and status = 'processing' and claimed_by = %s",
            (signal_id, worker),
        )


async def mark_done(
    db: Database, signal_id: UUID, *, status: Literal["executed", "skipped"], now: datetime
) -> None:
    """Mark a signal claimed once and now worked through ``executed`` or ``skipped``."""
    async with db.write(_SERVICE) as conn:
        await conn.execute(_MARK_SQL, {"status": status, "now": now, "id": signal_id})


async def mark_reclaimed_done(db: Database, signal_id: UUID, *, now: datetime) -> None:
    """Mark a reclaimed signal done: ``executed`` if any order of it is live or filled, else ``skipped``."""
    async with db.write(_SERVICE) as conn:
        await conn.execute(_MARK_RECLAIMED_SQL, {"now": now, "id": signal_id})


async def open_signal(db: Database, signal_id: UUID, *, market_now: datetime) -> SignalRow | None:
    """The signal if it exists, has not expired at ``market_now`` and is not marked expired."""
    async with db.read(_SERVICE) as conn:
        row = await (
            await conn.execute(
                "select id, symbol, category, timeframe, direction, algorithm, score, entry_price, "
                "stop_loss, take_profit from signals "
                "where id = %s and expires_at > %s and status <> 'expired'",
                (signal_id, market_now),
            )
        ).fetchone()
    return None if row is None else SignalRow(**row)


async def queue_depth(db: Database, now: datetime) -> dict[str, int]:
    """Signals ``pending`` (new, not expired at ``now``) and ``processing`` (claimed)."""
    async with db.read(_SERVICE) as conn:
        row = await (
            await conn.execute(
                "select "
                "(select count(*) from signals where status = 'new' and expires_at > %(now)s) as pending, "
                "(select count(*) from signals where status = 'processing') as processing",
                {"now": now},
            )
        ).fetchone()
    return {k: int(v) for k, v in (row or {}).items()}
