"""Four executor processes on the same eight signals for fifty users: each pair is executed exactly once.

The processes are real OS processes (``python -m tests.integration.execution_helpers execute``), each
with its own database pool and exchange client, started together and each claiming one signal at a time
until none is left. Two of them run with a clock six minutes ahead, so to them every claim of the other
two is stale: they also take over signals the others are still fanning out, which is the race the
reservation row and the orderLinkId exist for. The verdict comes from the paper exchange's own book,
read per user with their keys, and from the database.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest

from lib.core.order_ids import order_link_id
from lib.db.session import Database
from lib.ops.stack_replay import stack_symbols
from lib.paper_exchange import PaperExchangeConfig, running_paper_exchange
from lib.paper_exchange.ratelimit import ExchangeLimits
from lib.services.execution.queue import CLAIM_STALE_AFTER
from tests.integration.execution_helpers import (
    PAPER_SYMBOLS,
    PaperUser,
    Prefs,
    Seeder,
    Signals,
    entry_orders,
    order_rows,
)

USERS = 50
PROCESSES = 4
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def paper_url() -> Iterator[str]:
    """This module's paper exchange, its IP limit raised explicitly: four executor processes on one
    address, none sharing another's IP budget, hammer it on purpose (that is the race under test). The
    per-account limit (10 creates per second, 10006) stays Bybit's."""
    limits = ExchangeLimits(ip_requests=1_000_000)
    config = PaperExchangeConfig(symbols=stack_symbols(), state_path=None, port=0, limits=limits)
    with running_paper_exchange(config) as url:
        yield url


async def run_executor(
    env: dict[str, str], paper_url: str, worker: str, now: datetime, signal_ids: list[UUID]
) -> dict[str, object]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.execution_helpers",
        "execute",
        "--paper-url",
        paper_url,
        "--worker",
        worker,
        "--now",
        now.isoformat(),
        "--signal-ids",
        ",".join(map(str, signal_ids)),
        "--batch-size",
        "1",
        "--loop",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=180)
    assert process.returncode == 0, stderr.decode()[-2000:]
    summary: dict[str, object] = json.loads(stdout.decode().strip().splitlines()[-1])
    return summary


async def test_four_executor_processes_execute_every_signal_user_pair_exactly_once(
    db: Database, test_env: dict[str, str], paper_url: str, seeder: Seeder, signals: Signals
) -> None:
    users: list[PaperUser] = await seeder.users(USERS, Prefs(max_open_positions=len(PAPER_SYMBOLS)))
    signal_ids = [await signals.insert(symbol) for symbol in PAPER_SYMBOLS]
    t0 = datetime.now(UTC)
    ahead = t0 + CLAIM_STALE_AFTER + timedelta(minutes=1)

    summaries = await asyncio.gather(
        *(
            run_executor(test_env, paper_url, f"test-concurrency-{i}", t0 if i < 2 else ahead, signal_ids)
            for i in range(PROCESSES)
        )
    )

    # Every process worked, and together they claimed every signal (some more than once: take-overs).
    claims = [int(str(s["claimed"])) for s in summaries]
    assert all(isinstance(s["outcomes"], dict) for s in summaries)
    assert sum(claims) >= len(signal_ids), summaries

    # The database: one row per pair, every one of them placed, every signal executed.
    rows = await order_rows(db, user_ids=[u.id for u in users])
    assert sorted((r["signal_id"], r["user_id"]) for r in rows) == sorted(
        (s, u.id) for s in signal_ids for u in users
    )
    # (filled: an order a take-over re-sent met 110072 and was looked up, fill and all)
    assert {r["status"] for r in rows} <= {"placed", "filled"}, summaries
    assert [await signals.status(s) for s in signal_ids] == ["executed"] * len(signal_ids)

    # The exchange: each user's account holds exactly one order per signal, with the pair's orderLinkId.
    books = await asyncio.gather(*(entry_orders(paper_url, user) for user in users))
    for user, orders in zip(users, books, strict=True):
        links = sorted(o["orderLinkId"] for o in orders)
        assert links == sorted(order_link_id(s, user.id) for s in signal_ids)
        by_link = {r["order_link_id"]: r["exchange_order_id"] for r in rows if r["user_id"] == user.id}
        assert {o["orderLinkId"]: o["orderId"] for o in orders} == by_link
