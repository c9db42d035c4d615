"""The signals table as the queue: claims, their renewal and release, expiry, and marking a signal done.

A run expires signals past ``expires_at`` and claims a batch of ``new`` ones (or ``processing`` ones
whose claim is stale because their executor died): ``FOR UPDATE SKIP LOCKED``, so executors on several
machines never take the same signal. Before fanning a claimed signal out, the run renews its claim, and
gives the signal up if another executor has since taken it over.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from uuid import UUID

from lib.db.session import Database
from lib.stores import signal_queue
from lib.stores.signal_queue import SignalRow

#: A claim older than this is presumed dead: another executor may take the signal over.
CLAIM_STALE_AFTER = timedelta(minutes=5)


async def claim_signals(
    db: Database,
    *,
    worker: str,
    now: datetime,
    limit: int,
    signal_ids: Sequence[UUID] | None = None,
    market_now: datetime | None = None,
) -> tuple[list[SignalRow], int]:
    """Expire old signals, then claim up to ``limit`` (returns the claimed ones and how many expired).

    Expiry is judged at ``market_now`` (default ``now``); claims are stamped and judged stale in wall time.

    ``signal_ids`` narrows both steps to those signals (an operator re-running chosen signals, or a
    test that must not touch anyone else's queue).
    """
    return await signal_queue.expire_and_claim(
        db,
        worker=worker,
        now=now,
        market_now=market_now or now,
        stale_before=now - CLAIM_STALE_AFTER,
        limit=limit,
        signal_ids=signal_ids,
    )


async def renew_claim(db: Database, signal_id: UUID, worker: str, now: datetime) -> bool:
    """Refresh this worker's claim before working on it; False if another executor has taken it over."""
    return await signal_queue.renew_claim(db, signal_id, worker, now)


async def release_claim(db: Database, signal_id: UUID, worker: str) -> None:
    """Hand a signal back to the queue after a failure, so the next run tries again at once.

    ``claimed_at`` stays: the next claim then knows the signal was worked on (``reclaimed``).
    """
    await signal_queue.release_claim(db, signal_id, worker)


async def mark_done(db: Database, signal: SignalRow, *, live: bool, now: datetime) -> None:
    """Mark a worked-through signal ``executed`` (some order is live) or ``skipped``.

    A reclaimed one is judged by all its orders, whoever placed them, so an executor that took over and
    found nothing left to do does not call an executed signal skipped.
    """
    if signal.reclaimed:
        await signal_queue.mark_reclaimed_done(db, signal.id, now=now)
    else:
        await signal_queue.mark_done(db, signal.id, status="executed" if live else "skipped", now=now)
