"""The executor's state at a glance: signals waiting and being processed, orders not yet final."""

from __future__ import annotations

from datetime import datetime

from lib.db.session import Database
from lib.stores import orders as orders_store
from lib.stores import signal_queue


async def queue_status(db: Database, now: datetime) -> dict[str, int]:
    """``pending`` and ``processing`` signals, ``requested`` and ``open_orders`` (placed or partially
    filled) orders."""
    return {**await signal_queue.queue_depth(db, now), **await orders_store.unfinished_counts(db)}
