"""An executor killed mid-order: nothing is executed twice, nothing stays ``requested``, nobody is forgotten.

The executor runs in a process of its own with a failpoint armed in its environment
(``AITRADEX_FAILPOINTS``, see ``lib/failpoints.py``): SIGKILL right after the exchange acknowledged an
order (before the database heard of it), or right after a reservation was committed (before anything
was sent). It works one user at a time (concurrency 1), so exactly one order is caught in the crash and
the other users are still waiting. Time is passed explicitly: the tracker runs past its grace period,
the next executor past the claim's staleness.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import psycopg
import pytest

from lib.config import Settings
from lib.core.order_ids import order_link_id
from lib.crypto import KeyVault
from lib.db.session import Caller, Database
from lib.services.execution.fanout import execute_pending
from lib.services.execution.queue import CLAIM_STALE_AFTER
from lib.services.tracking import REQUESTED_GRACE, track_orders
from tests.integration.execution_helpers import (
    PaperUser,
    Prefs,
    Seeder,
    Signals,
    entry_orders,
    executor_deps,
    order_rows,
    tracker_deps,
)

USERS = 5
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def users(
    db: Database, settings: Settings, owner_conn: psycopg.Connection, vault: KeyVault, paper_url: str
) -> AsyncIterator[list[PaperUser]]:
    seeder = Seeder(owner_conn, settings.jwt_secret.reveal(), db, vault, paper_url)
    try:
        yield await seeder.users(USERS, Prefs())
    finally:
        seeder.close()


async def crashing_executor(
    env: dict[str, str], paper_url: str, failpoint: str, signal_id: UUID, now: datetime
) -> int:
    """Run one executor process with ``failpoint`` armed; its exit code (negative: killed by a signal)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.execution_helpers",
        "execute",
        "--paper-url",
        paper_url,
        "--worker",
        f"test-crash-{failpoint}",
        "--now",
        now.isoformat(),
        "--signal-ids",
        str(signal_id),
        "--concurrency",
        "1",
        cwd=ROOT,
        env={**env, "AITRADEX_FAILPOINTS": f"{failpoint}=kill"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode


async def orders_on_exchange(paper_url: str, users: list[PaperUser]) -> dict[UUID, list[str]]:
    books = await asyncio.gather(*(entry_orders(paper_url, u) for u in users))
    return {u.id: [o["orderLinkId"] for o in book] for u, book in zip(users, books, strict=True)}


async def logged_events(db: Database, order_id: UUID) -> list[str]:
    async with db.read(Caller.service()) as conn:
        rows = await (
            await conn.execute("select event from trade_logs where order_id = %s order by id", (order_id,))
        ).fetchall()
    return [r["event"] for r in rows]


async def test_an_order_accepted_just_before_a_crash_is_recorded_from_the_exchange_and_never_sent_twice(
    db: Database,
    test_env: dict[str, str],
    paper_url: str,
    vault: KeyVault,
    users: list[PaperUser],
    signals: Signals,
) -> None:
    signal_id = await signals.insert("SOLUSDT")
    t0 = datetime.now(UTC)

    code = await crashing_executor(test_env, paper_url, "executor.after_exchange_ack", signal_id, t0)
    assert code == -signal.SIGKILL

    # The crash left: the signal claimed, one row reserved but unrecorded, and that order on the exchange.
    assert await signals.status(signal_id) == "processing"
    [crashed] = await order_rows(db, signal_id=signal_id)
    assert crashed["status"] == "requested"
    assert crashed["exchange_order_id"] is None
    on_exchange = await orders_on_exchange(paper_url, users)
    assert on_exchange[crashed["user_id"]] == [crashed["order_link_id"]]
    assert sum(len(links) for links in on_exchange.values()) == 1

    # The tracker, once the grace period is over, records it from the exchange.
    tracker = tracker_deps(db, vault, paper_url)
    report = await track_orders(
        tracker, now=t0 + REQUESTED_GRACE + timedelta(seconds=1), user_ids=[u.id for u in users]
    )
    assert report.errors == []
    [reconciled] = await order_rows(db, signal_id=signal_id)
    assert reconciled["status"] == "filled"
    [exchange_order] = await entry_orders(paper_url, next(u for u in users if u.id == crashed["user_id"]))
    assert reconciled["exchange_order_id"] == exchange_order["orderId"]
    assert await logged_events(db, reconciled["id"]) == ["order_requested", "order_reconciled"]

    # The next executor takes the stale claim over: everyone else gets their order, that user no second one.
    deps = executor_deps(db, vault, paper_url, worker="test-crash-successor")
    successor = await execute_pending(
        deps, now=t0 + CLAIM_STALE_AFTER + timedelta(seconds=1), signal_ids=[signal_id]
    )
    assert successor.claimed == 1
    assert sorted(o.user_id for o in successor.outcomes) == sorted(
        u.id for u in users if u.id != crashed["user_id"]
    )
    assert {o.outcome for o in successor.outcomes} == {"placed"}
    assert await orders_on_exchange(paper_url, users) == {
        u.id: [order_link_id(signal_id, u.id)] for u in users
    }
    rows = await order_rows(db, signal_id=signal_id)
    assert sorted(r["user_id"] for r in rows) == sorted(u.id for u in users)
    assert "requested" not in {r["status"] for r in rows}
    assert await signals.status(signal_id) == "executed"


async def test_an_order_reserved_but_never_sent_before_a_crash_is_sent_by_the_executor_that_takes_over(
    db: Database,
    test_env: dict[str, str],
    paper_url: str,
    vault: KeyVault,
    users: list[PaperUser],
    signals: Signals,
) -> None:
    signal_id = await signals.insert("LINKUSDT")
    t0 = datetime.now(UTC)

    code = await crashing_executor(test_env, paper_url, "executor.after_reserve", signal_id, t0)
    assert code == -signal.SIGKILL
    [reserved] = await order_rows(db, signal_id=signal_id)
    assert reserved["status"] == "requested"
    assert sum(len(links) for links in (await orders_on_exchange(paper_url, users)).values()) == 0

    # Not on the exchange, but its signal is still claimed: the tracker leaves it to the executor.
    tracker = tracker_deps(db, vault, paper_url)
    late = t0 + REQUESTED_GRACE + timedelta(seconds=1)
    report = await track_orders(tracker, now=late, user_ids=[u.id for u in users])
    assert report.transitions == {}
    assert [r["status"] for r in await order_rows(db, signal_id=signal_id)] == ["requested"]

    deps = executor_deps(db, vault, paper_url, worker="test-crash-successor")
    successor = await execute_pending(
        deps, now=t0 + CLAIM_STALE_AFTER + timedelta(seconds=1), signal_ids=[signal_id]
    )
    assert successor.claimed == 1
    assert sorted(o.user_id for o in successor.outcomes) == sorted(u.id for u in users)
    assert await orders_on_exchange(paper_url, users) == {
        u.id: [order_link_id(signal_id, u.id)] for u in users
    }
    rows = {r["user_id"]: r for r in await order_rows(db, signal_id=signal_id)}
    assert {r["status"] for r in rows.values()} == {"placed"}
    assert rows[reserved["user_id"]]["id"] == reserved["id"]  # the reserved row itself, not a new one
    assert await signals.status(signal_id) == "executed"


async def test_an_order_reserved_but_never_sent_is_marked_failed_once_its_signal_is_no_longer_claimed(
    db: Database,
    test_env: dict[str, str],
    paper_url: str,
    vault: KeyVault,
    users: list[PaperUser],
    signals: Signals,
) -> None:
    signal_id = await signals.insert("AVAXUSDT", ttl=timedelta(minutes=10))
    t0 = datetime.now(UTC)
    assert (
        await crashing_executor(test_env, paper_url, "executor.after_reserve", signal_id, t0)
        == -signal.SIGKILL
    )

    # Before anyone took the claim over, the signal expired: no executor will send that row any more.
    deps = executor_deps(db, vault, paper_url, worker="test-crash-expiry")
    expiry = await execute_pending(deps, now=t0 + timedelta(minutes=11), signal_ids=[signal_id])
    assert (expiry.claimed, expiry.expired) == (0, 1)
    assert await signals.status(signal_id) == "expired"

    report = await track_orders(
        tracker_deps(db, vault, paper_url), now=t0 + timedelta(minutes=11), user_ids=[u.id for u in users]
    )
    assert report.transitions == {"failed": 1}
    [row] = await order_rows(db, signal_id=signal_id)
    assert row["status"] == "failed"
    assert "never accepted" in row["status_reason"]
    assert sum(len(links) for links in (await orders_on_exchange(paper_url, users)).values()) == 0
    assert await logged_events(db, row["id"]) == ["order_requested", "order_failed"]
