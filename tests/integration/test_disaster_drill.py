"""The disaster drill (issue 13): trade, back up, trade on, lose the disk, ``rebuild --restore latest``.

On a database server of its own (:mod:`tests.integration.backup_drill`), with the drill's stack
running (its paper exchange keeps its own state file, so the exchange survives the database's loss):

1. two users with paper accounts; the real executor places their orders for signal A;
2. a base backup;
3. trading goes on: signal B's orders, then a WAL switch that archives them (and signal C, not yet
   executed); then signal C's orders, which are committed but never archived (the loss window: the
   last segment switch was moments ago, and ``archive_timeout`` is 60 s);
4. PostgreSQL is SIGKILLed and its data folder deleted;
5. ``rebuild --restore latest`` (which restores, starts the stack with trading halted, reconciles).

Then: every row committed up to the last archived segment is back (A's and B's orders, unchanged);
every order on the exchange is in the database, C's through reconciliation (``recovered_from_exchange``
events, signal C marked executed); the exchange's book holds one order per ``orderLinkId``; and the
book is exactly what it was at the crash, so nothing traded between the restore and the end of the
reconciliation (the restore's halt, then the reconciliation's resume, are both in the audit log).
The test prints RPO (seconds of commits lost) and RTO (seconds to a healthy, reconciled stack).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from lib.crypto import KeyVault
from lib.db.session import Caller, Database
from lib.db.target import database_target
from lib.ops import backup, stack_runner
from lib.ops.rebuild import rebuild
from lib.services.execution.fanout import execute_pending
from tests.integration.backup_drill import Drill, drill_server
from tests.integration.cli_helpers import run_cli
from tests.integration.execution_helpers import (
    PaperUser,
    Prefs,
    Seeder,
    Signals,
    exchange_orders_sync,
    executor_deps,
    order_rows,
)

LOSS_WINDOW_S = 60.0  # archive_timeout: the last segment is switched at most this long after a commit
#: min_score 100: only the drill's own signals (score 100) reach these users, never a scan's.
PREFS = Prefs(min_score=100)


@pytest.fixture(scope="module")
def drill() -> Iterator[Drill]:
    yield from drill_server()


def _db_url(drill: Drill) -> str:
    return database_target(drill.settings).app_url


def _vault(drill: Drill) -> KeyVault:
    return KeyVault(drill.settings.master_keys)


async def _seed_users(drill: Drill, paper_url: str, n: int) -> list[PaperUser]:
    settings = drill.settings
    async with Database(_db_url(drill)) as db:
        seeder = Seeder(drill.connect(), settings.jwt_secret.reveal(), db, _vault(drill), paper_url)
        return [await seeder.user(PREFS) for _ in range(n)]


async def _signal(drill: Drill, paper_url: str, symbol: str) -> UUID:
    async with Database(_db_url(drill)) as db:
        return await Signals(db, paper_url).insert(symbol, score=PREFS.min_score)


async def _execute(
    drill: Drill, paper_url: str, signal_id: UUID, users: list[PaperUser]
) -> list[dict[str, Any]]:
    async with Database(_db_url(drill)) as db:
        deps = executor_deps(db, _vault(drill), paper_url, worker="disaster-drill")
        await execute_pending(deps, now=datetime.now(UTC), signal_ids=[signal_id])
        rows = await order_rows(db, signal_id=signal_id)
    assert len(rows) == len(users), "every user's order of the signal is placed"
    return rows


async def _rows(drill: Drill) -> dict[str, dict[str, Any]]:
    async with Database(_db_url(drill)) as db:
        return {r["order_link_id"]: r for r in await order_rows(db)}


async def _recovered(drill: Drill) -> set[UUID]:
    async with Database(_db_url(drill)) as db, db.read(Caller.service()) as conn:
        rows = await (
            await conn.execute("select order_id from trade_logs where event = 'recovered_from_exchange'")
        ).fetchall()
    return {r["order_id"] for r in rows}


async def _signal_status(drill: Drill, signal_id: UUID) -> str:
    async with Database(_db_url(drill)) as db, db.read(Caller.service()) as conn:
        row = await (await conn.execute("select status from signals where id = %s", (signal_id,))).fetchone()
    assert row is not None
    return str(row["status"])


def _book(paper_url: str, users: list[PaperUser]) -> list[dict[str, Any]]:
    return [order for user in users for order in exchange_orders_sync(paper_url, user)]


def test_disaster_drill_loses_nothing_and_sends_nothing_twice(drill: Drill) -> None:
    _, _, facts = stack_runner.ensure_running(drill.settings, drill.env)
    paper_url = str(facts["paper_exchange_url"])

    # 1. Trading: signal A.
    users = asyncio.run(_seed_users(drill, paper_url, 2))
    signal_a = asyncio.run(_signal(drill, paper_url, "ETHUSDT"))
    asyncio.run(_execute(drill, paper_url, signal_a, users))
    # 2. A base backup.
    backup.take_backup(drill.settings)
    # 3. Trading goes on: B's orders (archived), then C's (the loss window).
    signal_b = asyncio.run(_signal(drill, paper_url, "SOLUSDT"))
    asyncio.run(_execute(drill, paper_url, signal_b, users))
    signal_c = asyncio.run(_signal(drill, paper_url, "XRPUSDT"))
    drill.switch_and_wait_archived()
    switched = time.time()
    archived = asyncio.run(_rows(drill))
    lost = {r["order_link_id"] for r in asyncio.run(_execute(drill, paper_url, signal_c, users))}
    time.time()
    # 4. The disk is lost.
    postmaster = int((drill.state_dir / "pgdata" / "postmaster.pid").read_text().splitlines()[0])
    os.kill(postmaster, signal.SIGKILL)
    crashed = time.time()
    assert crashed - switched < LOSS_WINDOW_S, "C's commits must still be in the loss window"
    shutil.rmtree(drill.state_dir / "pgdata")
    book_at_crash = _book(paper_url, users)

    # 5. The disaster rebuild.
    started = time.monotonic()
    report = rebuild(env=drill.env, restore="latest")
    rto = time.monotonic() - started

    steps = {s.name: s for s in report.steps}
    assert "reconcile" in steps
    assert "functions" in steps
    facts = stack_runner.recorded_running(drill.state_dir, "drill")
    assert facts is not None
    paper_url = str(facts["paper_exchange_url"])
    rows = asyncio.run(_rows(drill))
    # Every committed row up to the last archived segment is back, as it was (the tracker, run by the
    # reconciliation, may have moved a placed order on to filled since).
    kept = ("id", "signal_id", "user_id", "qty", "side", "exchange_order_id", "requested_at")
    for link, before in archived.items():
        assert link in rows
        assert {k: rows[link][k] for k in kept} == {k: before[k] for k in kept}
        assert rows[link]["status"] == before["status"] or (before["status"], rows[link]["status"]) == (
            "placed",
            "filled",
        )
    # Every order on the exchange is in the database; the lost ones through reconciliation.
    book = _book(paper_url, users)
    ours = {str(o["orderLinkId"]) for o in book if str(o["orderLinkId"]).startswith("ax-")}
    assert ours == set(rows)
    assert lost <= set(rows)
    assert not lost & set(archived)
    recovered = asyncio.run(_recovered(drill))
    assert {rows[link]["id"] for link in lost} == recovered
    assert all(rows[link]["signal_id"] == signal_c for link in lost)
    assert asyncio.run(_signal_status(drill, signal_c)) == "executed"
    # No order was sent twice, and nothing traded between the restore and the reconciliation's end.
    assert set(Counter(str(o["orderLinkId"]) for o in book).values()) == {1}
    assert sorted(o["orderId"] for o in book) == sorted(o["orderId"] for o in book_at_crash)
    assert drill.halt_history()[-2:] == [(True, "aitradex restore"), (False, "aitradex reconcile")]

    # By hand, the command says the same: nothing left to import, foreign nothing, not halted.
    again, _ = run_cli(drill.env, "reconcile", "--dry-run")
    assert again.returncode == 0, again.stderr
    assert "would import 0 order(s)" in again.stdout
    assert "trading was not halted" in again.stdout
    since = datetime.now(UTC).isoformat()
    later, _ = run_cli(drill.env, "reconcile", "--since", since)
    assert later.returncode == 0, later.stderr
    assert f"since {since}" in later.stdout
    assert "imported 0 order(s)" in later.stdout

    rpo = crashed - switched  # every commit after the last archived segment switch is lost
    print(
        f"\ndisaster drill: RPO {rpo:.2f} s of commits lost (bound: {LOSS_WINDOW_S:.0f} s, archive_timeout; "
        f"{len(lost)} lost orders recovered from the exchange), RTO {rto:.1f} s to a healthy reconciled stack"
    )
