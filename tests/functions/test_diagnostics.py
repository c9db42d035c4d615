"""diagnostics: a health summary for anyone, every check for the service role."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from lib.db import migrate
from lib.db.session import Caller, Database
from lib.exchange.access import MarketAccess
from lib.services import diagnostics
from tests.functions.conftest import bearer

URL = "/functions/v1/diagnostics"
CHECKS = [
    "database",
    "exchange",
    "functions",
    "scans",
    "instruments_cache",
    "queue",
    "key_versions",
    "trading",
]


async def test_anyone_gets_only_the_summary(http: httpx.AsyncClient) -> None:
    response = await http.post(URL)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] in ("healthy", "degraded", "down")
    assert body["checks"] is None
    datetime.fromisoformat(body["checked_at"])


async def test_anonymous_callers_share_one_recent_run_while_the_service_role_always_gets_a_fresh_one(
    http: httpx.AsyncClient, service_key: str
) -> None:
    first, second = await http.post(URL), await http.post(URL)
    fresh_a = await http.post(URL, headers=bearer(service_key))
    fresh_b = await http.post(URL, headers=bearer(service_key))
    assert first.json()["checked_at"] == second.json()["checked_at"]
    assert fresh_a.json()["checked_at"] != fresh_b.json()["checked_at"]


async def test_the_service_role_gets_every_check_with_status_latency_and_message(
    http: httpx.AsyncClient, service_key: str
) -> None:
    response = await http.post(URL, json={"action": "check"}, headers=bearer(service_key))
    body = response.json()
    checks = {c["name"]: c for c in body["checks"]}

    assert list(checks) == CHECKS
    assert all(c["latency_ms"] >= 0 and c["message"] for c in checks.values())
    assert checks["database"]["status"] == "healthy"
    assert checks["trading"]["status"] == "healthy"
    assert checks["trading"]["details"]["trading_halted"] is body["trading_halted"] is False
    assert checks["database"]["message"] == f"connected; {len(migrate.discover())} migrations applied"
    assert checks["exchange"]["status"] == "healthy"
    assert checks["exchange"]["details"]["environment"] == "paper"
    assert checks["functions"]["status"] == "healthy"
    assert "trading-preferences" in checks["functions"]["details"]["functions"]
    ranks = {"healthy": 0, "degraded": 1, "down": 2}
    assert body["status"] == max((c["status"] for c in checks.values()), key=ranks.__getitem__)


async def test_an_unreachable_exchange_is_reported_down_not_raised() -> None:
    dead = MarketAccess(paper_url="http://127.0.0.1:9")  # discard port: nothing listens
    result = await diagnostics._timed("exchange", diagnostics.check_exchange(dead, "paper", lambda: 0))
    assert result.status == "down"
    assert result.message


async def test_scan_freshness_follows_each_timeframes_period_in_market_time(db: Database) -> None:
    # Each timeframe's latest bar closes at the same instant ``closed``: later than any real or
    # earlier test scan, so these rows are the newest per timeframe.
    closed = datetime(2050, 1, 1, tzinfo=UTC) + timedelta(hours=int(time.time()) // 3600)
    wall = datetime.now(UTC)
    ids = []
    async with db.write(Caller.service()) as conn:
        for timeframe in ("5", "15", "60"):
            bar = closed - timedelta(minutes=int(timeframe))
            row = await (
                await conn.execute(
                    "insert into scan_runs (timeframe, algorithm, status, started_at, finished_at, bar_time) "
                    "values (%s, 'unirail_core', 'succeeded', %s, %s, %s) returning id",
                    (timeframe, wall, wall, bar),
                )
            ).fetchone()
            ids.append(row["id"])
    try:
        fresh = await diagnostics.check_scans(db, wall, closed + timedelta(minutes=1))
        late = await diagnostics.check_scans(db, wall, closed + timedelta(minutes=15))
        very_late = await diagnostics.check_scans(db, wall, closed + timedelta(hours=3))
        # A replay standing still: hours of wall time pass, market time does not.
        standing = await diagnostics.check_scans(db, wall + timedelta(hours=5), closed + timedelta(minutes=1))
    finally:
        async with db.write(Caller.service()) as conn:
            await conn.execute("delete from scan_runs where id = any(%s)", (ids,))

    assert fresh.status == "healthy"
    assert (late.status, late.details["stale"]) == ("degraded", ["5"])
    assert very_late.details["stale"] == ["5", "15", "60"]
    assert not very_late.cold
    assert standing.status == "healthy"


async def test_an_expired_instruments_cache_is_reported_but_healthy_because_it_refreshes_on_use(
    db: Database,
) -> None:
    now = datetime.now(UTC)
    result = await diagnostics.check_instruments_cache(db, now + timedelta(days=365))
    if result.cold:  # nothing cached yet in this database: the other branch is what this test is about
        assert result.message == "never filled yet"
    else:
        assert result.status == "healthy"
        assert result.details["expired"]
        assert "refreshed on next use" in result.message


async def test_a_signal_waiting_too_long_degrades_the_queue(db: Database) -> None:
    now = datetime.now(UTC)
    bar = now - timedelta(minutes=5)
    symbol = "Q" + uuid.uuid4().hex[:8].upper()
    async with db.write(Caller.service()) as conn:
        await conn.execute(
            "insert into signals (symbol, timeframe, direction, algorithm, score, confidence, entry_price, "
            "stop_loss, take_profit, atr, bar_time, expires_at) "
            "values (%s, '5', 'LONG', 'unirail_core', 90, 0.9, 10, 9, 12, 0.5, %s, %s)",
            (symbol, bar, now + timedelta(hours=1)),
        )
    try:
        later = await diagnostics.check_queue(db, now + timedelta(minutes=30))
    finally:  # it is not real work: take it off the queue so the test database stays healthy
        async with db.write(Caller.service()) as conn:
            await conn.execute("update signals set status = 'skipped' where symbol = %s", (symbol,))
    assert later.status == "degraded"
    assert later.details["depth"] >= 1
    assert later.details["oldest_wait_s"] >= 30 * 60


def test_the_overall_status_is_the_worst_check() -> None:
    assert diagnostics.worst([]) == "healthy"
    assert diagnostics.worst(["healthy", "degraded"]) == "degraded"
    assert diagnostics.worst(["degraded", "down", "healthy"]) == "down"
