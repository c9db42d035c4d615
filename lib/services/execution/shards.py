"""One signal fanned out by executors on several hosts: its users split into shards (issue 12, item 2).

Each host has its own IP budget, so one signal for many users goes out as fast as the hosts together
allow only if they share its users. The executor that claims a signal with at least
``shard_min_users`` eligible users does not fan it out alone: it writes a row per non-empty shard
(``signal_shards``), and every executor on every host, itself included, claims shards
(``FOR UPDATE SKIP LOCKED``), one at a time per shard worker, ``shard_workers`` of them per run:

- **The shard of a user** is a stable hash of their id mod :data:`SHARDS` (64), so every executor agrees
  on it without asking. 64 balances 4 hosts of 8 shard workers: the first wave takes half the shards,
  and each host takes more as it finishes, so a slower host takes fewer (about 16 users each for 1,000).
  Fixed shards rather than claims of user batches: a claim then names its users by a number, no list
  of users is written or read per signal, and a resumed shard is exactly the users it was.
- **Exactly once**: a shard is held by one executor at a time, under a lease on the database clock
  (``shard_lease_s``, 30 s by default) that a heartbeat renews every third of it while the run works.
  A host that dies stops renewing; once its lease has run out another executor takes the shard over as
  ``reclaimed`` and resumes it as a reclaimed signal is resumed (``targets.resume``: its ``requested``
  rows re-sent with their own orderLinkId, found by 110072 if they had gone out), then the users of the
  shard that have no order yet. The unique (user, signal) order row and the orderLinkId
  still make a second order impossible even if a slow holder and its successor overlap.
- **Done**: a shard whose pairs all ended is marked done; one the exchange left unanswered is handed
  back (the run does not take that signal's shards again, the next run or another host does). Whoever
  finishes the signal's last shard marks the signal ``executed`` or ``skipped`` in the same transaction.

A smaller signal takes the one-executor path, unchanged: shards would only add statements to it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from uuid import UUID

from lib.errors import AitradexError
from lib.log import log_event
from lib.services.execution.deps import ExecutorDeps, OrderOutcome
from lib.services.execution.eligibility import eligible_targets
from lib.services.execution.run import Run
from lib.services.execution.targets import Plan, execute_targets, make_plan, resume, unfinished
from lib.stores import signal_shards
from lib.stores.accounts import Target
from lib.stores.signal_queue import SignalRow
from lib.stores.signal_shards import ShardClaim

logger = logging.getLogger("aitradex.executor")

#: A signal's users fall into this many shards (see the module docstring).
SHARDS = 64
#: A run takes another shard while its pairs, with a shard more (about 16 of 1,000 users; 32 allows
#: for a larger one), could all be sent within this many seconds at its IP budget: a host that would
#: have to queue them leaves the shard to one that can send it now. A sliding window frees slots in
#: bursts, 5 s after they were taken, so a host past its window's budget would otherwise hold a
#: shard's last orders for seconds while another host sat idle.
LOOKAHEAD_PAIRS = 32
MAX_QUEUE_S = 0.25
#: ...or once it has waited this long (no other host took the shard meanwhile).
BUDGET_WAIT_S = 2.0
_BUDGET_POLL_S = 0.02


def shard_of(user_id: UUID) -> int:
    """The user's shard: a stable hash of their id mod :data:`SHARDS` (the same in every process)."""
    digest = hashlib.blake2b(user_id.bytes, digest_size=8).digest()
    return int.from_bytes(digest, "big") % SHARDS


class ShardWork:
    """One executor run's part in the shards of split signals.

    ``plans``: each split signal's users and what their pairs need, read once per run (or handed over by
    the split); ``skip``: signals this run handed a shard of back, not taken again in this run.
    """

    def __init__(self, parent: Run, *, signal_ids: Sequence[UUID] | None = None) -> None:
        self.parent = parent
        self.deps: ExecutorDeps = parent.deps
        self.signal_ids = None if signal_ids is None else list(signal_ids)
        self.semaphore = asyncio.Semaphore(self.deps.concurrency)
        self.skip: set[UUID] = set()
        self.signals: set[UUID] = set()
        self.shards = 0
        #: Pairs of the shards this run holds that have not ended yet.
        self.pending = 0
        self._targets: dict[UUID, list[Target]] = {}
        self._plans: dict[UUID, asyncio.Future[dict[int, Plan]]] = {}

    async def split(self, signal: SignalRow, targets: Sequence[Target]) -> None:
        """Write the signal's shards; this run's shard workers then take their share of them."""
        counts = Counter(shard_of(t.user_id) for t in targets)
        await signal_shards.create(self.deps.db, signal.id, counts)
        self._targets[signal.id] = list(targets)
        log_event(
            logger, "executor_signal_split", signal_id=str(signal.id), users=len(targets), shards=len(counts)
        )

    async def plan(self, signal: SignalRow, shard: int) -> Plan:
        """The plan of the shard's users, the signal's read on the first shard of it this run works on."""
        future = self._plans.get(signal.id)
        if future is None:
            future = asyncio.ensure_future(self._read_plans(signal))
            self._plans[signal.id] = future
        plans = await asyncio.shield(future)
        return plans.get(shard) or Plan([], {}, {})

    async def _read_plans(self, signal: SignalRow) -> dict[int, Plan]:
        targets = self._targets.pop(signal.id, None)
        if targets is None:
            targets = await eligible_targets(self.deps.db, signal)
        plan = await make_plan(self.parent, targets)
        by_shard: dict[int, list[Target]] = {}
        for target in plan.targets:
            by_shard.setdefault(shard_of(target.user_id), []).append(target)
        return {s: Plan(t, plan.filters_by_env, plan.allowances) for s, t in by_shard.items()}


async def work_shards(work: ShardWork) -> list[OrderOutcome]:
    """Claim and execute shards until none is left that this run may take; the pairs' outcomes."""
    deps = work.deps
    market_now = await deps.market_time(work.parent.now())
    outcomes: list[OrderOutcome] = []
    heartbeat = asyncio.ensure_future(_heartbeat(deps))
    try:
        results = await asyncio.gather(
            *(_worker(work, market_now, outcomes) for _ in range(max(1, deps.shard_workers))),
            return_exceptions=True,
        )
    finally:
        heartbeat.cancel()
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return outcomes


async def _heartbeat(deps: ExecutorDeps) -> None:
    """Renew this worker's shard leases every third of a lease while the run works."""
    while True:
        await asyncio.sleep(deps.shard_lease_s / 3)
        try:
            await signal_shards.renew(deps.db, worker=deps.worker, lease_s=deps.shard_lease_s)
        except AitradexError as exc:  # the next beat tries again; a lease that runs out is taken over
            log_event(logger, "executor_lease_renew_failed", level=logging.WARNING, error=exc.code)


class _Pending:
    """A claimed shard's pairs in the run's count of pairs not ended yet (its ``users`` at first)."""

    def __init__(self, work: ShardWork, users: int) -> None:
        self._work = work
        self._left = users
        work.pending += users

    def one(self) -> None:
        if self._left > 0:
            self._left -= 1
            self._work.pending -= 1

    def close(self) -> None:
        self._work.pending -= self._left
        self._left = 0


async def _budget(work: ShardWork) -> None:
    """Wait (bounded) until this run's pairs and a shard more could go out soon at its IP budget: a host
    that could not send a shard's orders soon leaves the shard to one that can (each host its budget)."""
    seconds_until = work.deps.ip_wait
    if seconds_until is None:
        return
    deadline = time.monotonic() + BUDGET_WAIT_S
    while time.monotonic() < deadline:
        wait = seconds_until(work.pending + LOOKAHEAD_PAIRS)
        if wait is None or wait <= MAX_QUEUE_S:
            return
        await asyncio.sleep(_BUDGET_POLL_S)


async def _worker(work: ShardWork, market_now: datetime, outcomes: list[OrderOutcome]) -> None:
    deps = work.deps
    while True:
        await _budget(work)
        claims = await signal_shards.claim(
            deps.db,
            worker=deps.worker,
            lease_s=deps.shard_lease_s,
            market_now=market_now,
            skip=sorted(work.skip),
            signal_ids=work.signal_ids,
        )
        if not claims:
            return
        claim = claims[0]
        work.shards += 1
        work.signals.add(claim.signal.id)
        pending = _Pending(work, claim.users)
        try:
            done = await _run_shard(work, claim, pending.one)
        except AitradexError as exc:
            log_event(
                logger,
                "executor_shard_failed",
                level=logging.ERROR,
                signal_id=str(claim.signal.id),
                shard=claim.shard,
                error=exc.code,
            )
            await _hand_back(work, claim)
            continue
        finally:
            pending.close()
        outcomes.extend(done)
        if left := unfinished(done):
            log_event(
                logger,
                "executor_shard_unfinished",
                level=logging.WARNING,
                signal_id=str(claim.signal.id),
                shard=claim.shard,
                pairs=len(left),
            )
            await _hand_back(work, claim)
            continue
        status = await signal_shards.finish(deps.db, claim.signal.id, claim.shard, now=work.parent.now())
        if status is not None:
            log_event(logger, "executor_signal_done", signal_id=str(claim.signal.id), status=status)


async def _hand_back(work: ShardWork, claim: ShardClaim) -> None:
    work.skip.add(claim.signal.id)
    await signal_shards.release(work.deps.db, claim.signal.id, claim.shard, worker=work.deps.worker)


async def _run_shard(work: ShardWork, claim: ShardClaim, pair_done: Callable[[], None]) -> list[OrderOutcome]:
    """Execute the signal for the users of one shard (resuming it first if it was held before)."""
    run = Run(work.deps, work.parent.now())  # its own writes: drained before the shard is marked done
    signal, shard = claim.signal, claim.shard

    def mine(user_id: UUID) -> bool:
        return shard_of(user_id) == shard

    outcomes: list[OrderOutcome] = []
    if claim.reclaimed:
        outcomes.extend(await resume(run, signal, work.semaphore, only=mine))
        # Fresh: the users of the shard still without an order for the signal.
        plan = await make_plan(
            run, [t for t in await eligible_targets(work.deps.db, signal) if mine(t.user_id)]
        )
    else:
        plan = await work.plan(signal, shard)
    outcomes.extend(await execute_targets(run, signal, plan, work.semaphore, pair_done=pair_done))
    return outcomes
