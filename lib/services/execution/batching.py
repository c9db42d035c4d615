"""The executor's grouped writes: reservations, results and log lines, a batch per statement.

One transaction per write cost more CPU than the exchange calls themselves (``bench/fanout.py``).
Batching never changes the order of effects that matter: a reservation is committed before its order
is sent, and a result is written only after the exchange answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from lib.db.session import Database
from lib.stores import order_batches, trade_logs
from lib.stores.order_batches import OrderResult, Reservation, Reserved
from lib.stores.trade_logs import LogLine

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """Collects items from concurrent tasks and hands them to ``flush`` a batch at a time.

    ``submit`` returns what ``flush`` returned for that item once the batch is written (committed), or
    raises what ``flush`` raised. A batch goes out when ``max_items`` are waiting, or ``max_wait_s`` after
    the first one arrived. ``key``, when given, keeps items with equal keys out of one batch (the later
    ones wait for the next): a statement cannot see its own other rows, so per-user rules need that.
    """

    def __init__(
        self,
        flush: Callable[[list[T]], Awaitable[list[R]]],
        *,
        max_items: int,
        max_wait_s: float,
        key: Callable[[T], Hashable] | None = None,
    ) -> None:
        self._flush = flush
        self._max_items = max(1, max_items)
        self._max_wait_s = max_wait_s
        self._key = key
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        """Queue ``item`` and wait until its batch is written."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if len(self._pending) >= self._max_items:
            self._start()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._max_wait_s, self._start)
        return await future

    def _take(self) -> list[tuple[T, asyncio.Future[R]]]:
        if self._key is None:
            batch, self._pending = self._pending[: self._max_items], self._pending[self._max_items :]
            return batch
        batch, rest, seen = [], [], set()
        for entry in self._pending:
            k = self._key(entry[0])
            if k in seen or len(batch) >= self._max_items:
                rest.append(entry)
            else:
                seen.add(k)
                batch.append(entry)
        self._pending = rest
        return batch

    def _start(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch = self._take()
        if batch:
            task = asyncio.get_running_loop().create_task(self._write(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if self._pending:
            self._timer = asyncio.get_running_loop().call_later(self._max_wait_s, self._start)

    async def _write(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._flush([item for item, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def drain(self) -> None:
        """Write everything queued and wait for every batch in flight."""
        while self._pending or self._tasks:
            if self._pending:
                self._start()
            if self._tasks:
                await asyncio.wait(set(self._tasks))


class Writer:
    """The executor's grouped writes: reservations, results and log lines."""

    def __init__(self, db: Database, *, max_items: int, max_wait_s: float, behind_wait_s: float) -> None:
        self.db = db
        self._reserve = Batcher(
            self._write_reservations, max_items=max_items, max_wait_s=max_wait_s, key=lambda r: r.user_id
        )
        self._results: Batcher[OrderResult, None] = Batcher(
            self._write_results, max_items=max_items, max_wait_s=behind_wait_s
        )
        self._logs: Batcher[LogLine, None] = Batcher(
            self._write_logs, max_items=max_items, max_wait_s=behind_wait_s
        )
        self._behind: set[asyncio.Future[None]] = set()

    async def reserve(self, item: Reservation) -> Reserved:
        """Insert the ``requested`` row (rules permitting) and wait for the commit."""
        return await self._reserve.submit(item)

    def result(self, item: OrderResult) -> None:
        """Record an order's result; written behind, :meth:`drain` waits for it."""
        self._behind.add(asyncio.ensure_future(self._results.submit(item)))

    def log(self, item: LogLine) -> None:
        """Append a ``trade_logs`` line; written behind, :meth:`drain` waits for it."""
        self._behind.add(asyncio.ensure_future(self._logs.submit(item)))

    async def drain(self) -> None:
        """Wait until every write so far is committed; raises the first failure."""
        await self._reserve.drain()
        await self._results.drain()
        await self._logs.drain()
        behind, self._behind = self._behind, set()
        failures = [r for r in await asyncio.gather(*behind, return_exceptions=True) if r is not None]
        if failures:
            raise failures[0]

    async def _write_reservations(self, items: list[Reservation]) -> list[Reserved]:
        return await order_batches.reserve(self.db, items)

    async def _write_results(self, items: list[OrderResult]) -> list[None]:
        await order_batches.record_results(self.db, items)
        return [None] * len(items)

    async def _write_logs(self, items: list[LogLine]) -> list[None]:
        await trade_logs.append_many(self.db, items)
        return [None] * len(items)
