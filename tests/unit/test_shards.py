"""A signal's shards: the shard of a user is stable and spreads users evenly; a run takes another shard
only while its queue of pairs beyond its free IP budget is short (fakes, no database)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from lib.services.execution import shards
from lib.services.execution.shards import SHARDS, ShardWork, shard_of


def test_the_shard_of_a_user_is_a_stable_hash_of_their_id_mod_64() -> None:
    user = uuid.UUID("6f1c1f5e-1b2a-4c3d-9e8f-0a1b2c3d4e5f")
    # The same in every process and every release: hosts agree on it without asking.
    assert shard_of(user) == shard_of(uuid.UUID(str(user)))
    assert shard_of(user) == 24
    assert {shard_of(uuid.uuid4()) for _ in range(2000)} == set(range(SHARDS))


def test_1000_users_spread_over_the_64_shards_evenly_enough_to_balance_4_hosts() -> None:
    draw = random.Random(20261202)
    counts = Counter(shard_of(uuid.UUID(int=draw.getrandbits(128), version=4)) for _ in range(1000))
    assert len(counts) == SHARDS
    # 15.6 on average; no shard holds more than a quarter second of one host's steady budget.
    assert max(counts.values()) <= 30


class FakeDeps:
    """The parts of ExecutorDeps the budget wait reads: ``wait[0]`` seconds until the budget could send
    any number of requests; the numbers asked are kept."""

    def __init__(self, wait: list[float]) -> None:
        self.wait = wait
        self.asked: list[int] = []
        self.concurrency = 8

    def ip_wait(self, requests: int) -> float:
        self.asked.append(requests)
        return self.wait[0]


def work_with(wait: list[float], pending: int) -> tuple[ShardWork, FakeDeps]:
    deps = FakeDeps(wait)

    class FakeRun:
        def __init__(self) -> None:
            self.deps: Any = deps

        def now(self) -> datetime:
            return datetime.now(UTC)

    work = ShardWork(FakeRun())  # type: ignore[arg-type]
    work.pending = pending
    return work, deps


async def test_a_run_whose_pairs_go_out_now_takes_the_next_shard_at_once() -> None:
    work, deps = work_with([0.0], pending=200)
    await asyncio.wait_for(shards._budget(work), timeout=0.5)
    # It asks for its pending pairs and a shard more.
    assert deps.asked == [200 + shards.LOOKAHEAD_PAIRS]


async def test_a_run_past_its_budget_leaves_the_shard_until_its_pairs_would_go_out_soon() -> None:
    wait = [4.0]
    work, _ = work_with(wait, pending=100)
    waiting = asyncio.ensure_future(shards._budget(work))
    await asyncio.sleep(0.1)
    assert not waiting.done()  # its window frees in 4 s: left to a host that can send it now
    wait[0] = 0.1  # the window slides
    await asyncio.wait_for(waiting, timeout=1.0)


async def test_a_run_past_its_budget_takes_the_shard_after_the_bounded_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shards, "BUDGET_WAIT_S", 0.2)
    work, _ = work_with([4.0], pending=500)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(shards._budget(work), timeout=2.0)
    assert loop.time() - started >= 0.2
