"""Each account's order-create budget, shared by every executor on every host (issue 12, item 3).

Bybit allows ``executor.orders_per_second_per_account`` (10) order creates per account in any rolling
second, counted where the orders *arrive*. Before each create (first send and every retry) the executor
books a slot in the account's token bucket in Postgres (:mod:`lib.stores.create_budget`, one statement
on the database clock) and waits for it, so executors in any number of processes and hosts keep to one
budget together.

The bucket is not "rate N, burst N": a bucket allows ``burst + rate * t`` takes in any span of ``t``
seconds, so rate 10 with burst 10 lets 19 creates into one second and earns 10006. It is burst 1 at
:data:`RATE_SHARE` of N per second: any span of 1.25 s then holds at most N takes, so sends that reach
the exchange up to 250 ms more bunched than they were booked (scheduling, the HTTP round trip) still keep
to N per rolling second there. The cost is a steady 8 creates per second per account instead of 10; one
order per account per signal, the common case, never waits.

The takes of concurrent orders (a fan-out's, for different accounts) share one statement, a batch per
:data:`BATCH_WAIT_S`: one round trip per order would hold a pool connection for every order in flight
(``bench/fanout.py --trace`` measured 250 ms per take at 128 orders in flight on a 10-connection pool).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from lib.db.session import Database
from lib.log import log_event
from lib.services.execution.batching import Batcher
from lib.stores import create_budget
from lib.stores import settings as settings_store

logger = logging.getLogger(__name__)

SETTING = "executor.orders_per_second_per_account"
#: Bybit's order-create limit per account per second, used when the setting is absent or invalid.
DEFAULT_PER_SECOND = 10
#: The setting's bounds (the ones ``aitradex settings set`` enforces).
MAX_PER_SECOND = 100
#: The bucket refills at this share of the per-second limit (see the module docstring).
RATE_SHARE = 0.8
#: No create waits longer than this for its slot (the order window, 40 s, bounds it further).
MAX_WAIT_S = 30.0
#: How long a read of the setting stands (seconds).
SETTING_TTL_S = 30.0
#: How long the first take of a batch waits for company (seconds), and the most a batch holds.
BATCH_WAIT_S = 0.005
BATCH_MAX = 128


def parse_per_second(value: Any) -> int:
    """The setting's value: an integer 1..100, else the default (logged)."""
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_PER_SECOND:
        return value
    log_event(
        logger, "create_budget_setting_invalid", level=logging.ERROR, key=SETTING, value=repr(value)[:80]
    )
    return DEFAULT_PER_SECOND


def bucket_for(per_second: int) -> tuple[float, float]:
    """``(burst, rate)`` of a bucket that keeps to ``per_second`` creates in any rolling second."""
    return 1.0, RATE_SHARE * per_second


class CreateSlots(Protocol):
    """What placing an order asks before each create (:class:`CreateBudget`; tests pass fakes)."""

    async def take(self, account_id: UUID, *, deadline: float | None = None) -> bool:
        """Wait for the account's next create slot; False when none comes before ``deadline``."""
        ...


@dataclass(kw_only=True)
class CreateBudget:
    """Books order creates in the shared buckets; ``per_second`` None reads it from ``app_settings``."""

    db: Database
    per_second: int | None = None
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    _setting: tuple[float, int] | None = field(default=None, repr=False)
    _batches: Batcher[tuple[UUID, float], float | None] | None = field(default=None, repr=False)

    async def limit(self) -> int:
        """Creates per account per second (the setting, re-read every :data:`SETTING_TTL_S`)."""
        if self.per_second is not None:
            return self.per_second
        now = self.clock()
        if self._setting is None or now - self._setting[0] >= SETTING_TTL_S:
            values = await settings_store.read_values(self.db, [SETTING])
            self._setting = (now, parse_per_second(values.get(SETTING, DEFAULT_PER_SECOND)))
        return self._setting[1]

    async def take(self, account_id: UUID, *, deadline: float | None = None) -> bool:
        """Wait for the account's next create slot; False (nothing booked) if none comes in time.

        ``deadline`` (``clock()`` seconds): the slot must come before it, and within :data:`MAX_WAIT_S`.
        """
        max_wait = MAX_WAIT_S if deadline is None else min(MAX_WAIT_S, deadline - self.clock())
        if max_wait < 0:
            return False
        if self._batches is None:
            # One account at most once per batch: a statement updates a row once.
            self._batches = Batcher(
                self._take_batch, max_items=BATCH_MAX, max_wait_s=BATCH_WAIT_S, key=lambda r: r[0]
            )
        wait = await self._batches.submit((account_id, max_wait))
        if wait is None:
            return False
        if wait > 0:
            await self.sleep(wait)
        return True

    async def _take_batch(self, requests: list[tuple[UUID, float]]) -> list[float | None]:
        burst, rate = bucket_for(await self.limit())
        return await create_budget.take_many(self.db, requests, burst=burst, rate=rate)
