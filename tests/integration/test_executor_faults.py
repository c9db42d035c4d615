"""The executor against an exchange that fails one signed call in five: nothing lost, nothing doubled.

The paper exchange's ``order`` fault group covers every signed call (wallet, leverage, order create,
order and position queries). Here 20 % of them fail, in equal parts: a timeout after the order was
accepted (order create only), a plain timeout, a 5xx and Bybit's 10006, from a fixed seed. The client
gives up on a call after 1 s and the exchange holds a "timed out" request for 1.5 s. The executor runs
until it has nothing left to claim (a signal with unanswered pairs goes back to the queue), then the
faults are reset and the order tracker runs once. The verdict comes from the rows and from each user's
own order book on the exchange.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from lib.config import Settings
from lib.core.order_ids import order_link_id
from lib.crypto import KeyVault
from lib.db.session import Caller, Database
from lib.services.execution.deps import OrderOutcome
from lib.services.execution.fanout import execute_pending
from lib.services.tracking import REQUESTED_GRACE, track_orders
from tests.integration.execution_helpers import (
    PaperUser,
    Prefs,
    Seeder,
    Signals,
    entry_orders,
    exchange_for,
    executor_deps,
    order_rows,
    set_faults,
    tracker_deps,
)

USERS = 30
SYMBOLS = ("DOGEUSDT", "XRPUSDT")
FAULTS = {
    "seed": 20261124,
    "order": {
        "accepted_timeout_probability": 0.05,
        "timeout_probability": 0.05,
        "http_5xx_probability": 0.05,
        "rate_limit_probability": 0.05,
        "hang_ms": 1500,
    },
}
MAX_RUNS = 8


@pytest.fixture
async def users(
    db: Database, settings: Settings, owner_conn: psycopg.Connection, paper_url: str
) -> AsyncIterator[list[PaperUser]]:
    seeder = Seeder(owner_conn, settings.jwt_secret.reveal(), db, KeyVault(settings.master_keys), paper_url)
    try:
        yield await seeder.users(USERS, Prefs())
    finally:
        seeder.close()


async def test_with_a_fifth_of_exchange_calls_failing_every_order_ends_placed_or_failed_once(
    db: Database, settings: Settings, paper_url: str, users: list[PaperUser], signals: Signals
) -> None:
    vault = KeyVault(settings.master_keys)
    signal_ids = [await signals.insert(symbol) for symbol in SYMBOLS]
    deps = executor_deps(
        db, vault, paper_url, worker="test-faults", exchange=exchange_for(paper_url, timeout_s=1)
    )
    t0 = datetime.now(UTC)
    outcomes: list[OrderOutcome] = []
    runs = 0
    await set_faults(paper_url, FAULTS)
    try:
        while runs < MAX_RUNS:
            report = await execute_pending(deps, now=t0, signal_ids=signal_ids)
            if report.claimed == 0:
                break
            runs += 1
            outcomes.extend(report.outcomes)
    finally:
        await set_faults(paper_url, {"seed": 0})
    assert runs < MAX_RUNS, "the signals were still unfinished after every run"
    tracked = await track_orders(
        tracker_deps(db, vault, paper_url),
        now=t0 + REQUESTED_GRACE + timedelta(seconds=1),
        user_ids=[u.id for u in users],
    )
    assert tracked.errors == []

    # The faults happened: sends were retried.
    rows = await order_rows(db, user_ids=[u.id for u in users])
    assert sum(r["attempts"] for r in rows) > len(rows), Counter(o.outcome for o in outcomes)

    # Nothing lost: every pair has its row; every row ended placed, filled, or failed/rejected with a reason.
    assert sorted((r["signal_id"], r["user_id"]) for r in rows) == sorted(
        (s, u.id) for s in signal_ids for u in users
    )
    for row in rows:
        assert row["status"] in ("placed", "filled", "failed", "rejected")
        if row["status"] in ("failed", "rejected"):
            assert row["status_reason"]

    # Nothing doubled: on each user's book, one order per pair at most, and exactly one for every row
    # that says placed or filled (with the same exchange order id), none for the others.
    for user in users:
        orders = await entry_orders(paper_url, user)
        links = Counter(o["orderLinkId"] for o in orders)
        assert set(links) <= {order_link_id(s, user.id) for s in signal_ids}
        assert all(count == 1 for count in links.values())
        for row in (r for r in rows if r["user_id"] == user.id):
            on_exchange = [o for o in orders if o["orderLinkId"] == row["order_link_id"]]
            if row["status"] in ("placed", "filled"):
                assert [o["orderId"] for o in on_exchange] == [row["exchange_order_id"]]
            else:
                assert on_exchange == []

    async with db.read(Caller.service()) as conn:
        statuses = await (
            await conn.execute("select status from signals where id = any(%s)", (signal_ids,))
        ).fetchall()
    assert [s["status"] for s in statuses] == ["executed"] * len(signal_ids)
