"""The operator kill switch (``trading_halted``): while it is on no executor path places an order, the
tracker goes on (a position still closes at its TP), and resuming trades again. Set by the service role
(``lib.services.execution.halt``) and by ``aitradex trading``; every change is in ``audit_log``.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from lib.config import REPO_ROOT
from lib.crypto import KeyVault
from lib.db.session import Caller, Database
from lib.exchange.access import MarketAccess
from lib.services.diagnostics import check_trading
from lib.services.execution.fanout import execute_pending
from lib.services.execution.halt import set_trading_halted, trading_state
from lib.services.execution.manual import ManualOrder, execute_manual_for_user
from lib.services.tracking import track_orders
from tests.integration.execution_helpers import (
    Prefs,
    Seeder,
    Signals,
    advance_clock,
    entry_orders,
    executor_deps,
    order_rows,
    tracker_deps,
)

MAX_CANDLES = 600
OPERATOR = Caller(
    role="service_role", claims={"role": "service_role"}, headers={"user-agent": "kill-switch-test"}
)


@pytest.fixture
async def resumed(db: Database) -> AsyncIterator[None]:
    """Whatever a test does, trading is enabled again afterwards (the switch is global)."""
    yield
    await set_trading_halted(db, OPERATOR, halted=False, reason=None, by="test", now=datetime.now(UTC))


async def audit_values(db: Database, since: datetime) -> list[dict[str, object]]:
    async with db.read(Caller.service()) as conn:
        rows = await (
            await conn.execute(
                "select actor_role, new_values, user_agent, created_at from audit_log "
                "where table_name = 'app_settings' and record_id = 'trading_halted' and created_at >= %s "
                "order by id",
                (since,),
            )
        ).fetchall()
    return list(rows)


async def test_halted_trading_places_nothing_tracking_goes_on_and_resume_trades_again(
    db: Database, vault: KeyVault, paper_url: str, seeder: Seeder, signals: Signals, resumed: None
) -> None:
    started = datetime.now(UTC) - timedelta(seconds=1)
    user = await seeder.user(Prefs())
    deps = executor_deps(db, vault, paper_url, worker="test-kill-switch")
    # A position open before the halt, with a take-profit close by and a far stop.
    before = await signals.insert(
        "ETHUSDT", direction="LONG", stop_pct=Decimal(10), target_pct=Decimal("0.2")
    )
    await execute_pending(deps, now=datetime.now(UTC), signal_ids=[before])
    tracker = tracker_deps(db, vault, paper_url)
    await track_orders(tracker, now=datetime.now(UTC), user_ids=[user.id])
    [position] = await order_rows(db, user_ids=[user.id])
    assert position["status"] == "filled"
    creates_before = len(await entry_orders(paper_url, user))

    await set_trading_halted(
        db, OPERATOR, halted=True, reason="exchange incident", by="test", now=datetime.now(UTC)
    )
    assert (await trading_state(db)).halted is True
    during = await signals.insert("SOLUSDT", direction="SHORT")

    # Neither the cron path nor a user's own trade places anything.
    report = await execute_pending(deps, now=datetime.now(UTC), signal_ids=[during])
    manual = await execute_manual_for_user(
        deps,
        MarketAccess(paper_url=paper_url),
        user_id=user.id,
        order=ManualOrder(
            symbol="XRPUSDT", side="Buy", amount_usd=Decimal(50), client_order_id=uuid.uuid4().hex
        ),
        now=datetime.now(UTC),
    )
    assert report.claimed == 0
    assert (manual.outcome, manual.reason) == ("skipped", "trading_halted")
    assert len(await entry_orders(paper_url, user)) == creates_before
    assert await signals.status(during) == "new"  # still queued: it trades if resumed before it expires
    assert [r["id"] for r in await order_rows(db, user_ids=[user.id])] == [position["id"]]
    check = await check_trading(db)
    assert check.status == "healthy"
    assert check.details["trading_halted"] is True
    assert check.details["reason"] == "exchange incident"

    # The tracker goes on: the open position still closes at its take-profit.
    for step in range(0, MAX_CANDLES, 3):
        await advance_clock(paper_url, 3)
        await track_orders(tracker, now=datetime.now(UTC) + timedelta(minutes=step * 5), user_ids=[user.id])
        [row] = await order_rows(db, user_ids=[user.id])
        if row["closed_at"] is not None:
            break
    assert row["close_reason"] == "TakeProfit"
    assert row["realized_pnl"] is not None

    # Resumed, the queued signal trades.
    await set_trading_halted(db, OPERATOR, halted=False, reason=None, by="test", now=datetime.now(UTC))
    report = await execute_pending(deps, now=datetime.now(UTC), signal_ids=[during])
    assert report.claimed == 1
    assert len(await entry_orders(paper_url, user)) == creates_before + 1
    assert {r["signal_id"] for r in await order_rows(db, user_ids=[user.id])} == {before, during}

    audit = await audit_values(db, started)
    assert [(a["actor_role"], a["new_values"]["value"]["halted"]) for a in audit] == [  # type: ignore[index]
        ("service_role", True),
        ("service_role", False),
    ]
    assert audit[0]["new_values"]["value"]["reason"] == "exchange incident"  # type: ignore[index]
    assert audit[0]["user_agent"] == "kill-switch-test"


async def test_a_halt_between_claim_and_order_stops_the_next_order_and_requeues_the_signal(
    db: Database, vault: KeyVault, paper_url: str, seeder: Seeder, signals: Signals, resumed: None
) -> None:
    user = await seeder.user(Prefs())
    signal_id = await signals.insert("AVAXUSDT", direction="LONG")
    deps = executor_deps(db, vault, paper_url, worker="test-kill-switch-race")
    original = deps.filters

    async def halt_then_filters(category: str, environment: str) -> dict[str, object]:
        # The executor reads the instruments' filters after its claim and before it reserves any order.
        await set_trading_halted(
            db, OPERATOR, halted=True, reason="mid-run", by="test", now=datetime.now(UTC)
        )
        return await original(category, environment)  # type: ignore[return-value]

    deps.filters = halt_then_filters  # type: ignore[assignment]
    report = await execute_pending(deps, now=datetime.now(UTC), signal_ids=[signal_id])

    assert report.claimed == 1
    assert [(o.outcome, o.reason) for o in report.outcomes] == [("skipped", "trading_halted")]
    assert await entry_orders(paper_url, user) == []
    assert await order_rows(db, user_ids=[user.id]) == []
    assert await signals.status(signal_id) == "new"  # handed back, not skipped


def test_the_cli_halts_resumes_and_shows_the_switch(test_env: dict[str, str], db: Database) -> None:
    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "lib.cli", "trading", *args],
            cwd=REPO_ROOT,
            env=test_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    try:
        halted = cli("halt", "--reason", "maintenance window")
        shown = cli("status")
    finally:
        resumed = cli("resume")
    assert halted.startswith("trading: HALTED since ")
    assert halted.endswith(": maintenance window")
    assert " by cli:" in halted
    assert shown == halted
    assert resumed == "trading: enabled"
    assert cli("status") == "trading: enabled"
