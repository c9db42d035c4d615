"""make demo's main job, shortened: users, paper accounts, a replay through the scheduler, a summary."""

from __future__ import annotations

from lib.db.session import Caller, Database
from lib.ops.demo import demo


async def _scanned_bars(db: Database) -> int:
    async with db.read(Caller.service()) as conn:
        row = await (
            await conn.execute(
                "select count(distinct bar_time) as n from scan_runs "
                "where timeframe = '5' and bar_time is not null and not dry_run"
            )
        ).fetchone()
    return int(row["n"]) if row else 0


async def test_the_demo_replays_through_the_stacks_scheduler_and_reports(
    db: Database, test_env: dict[str, str]
) -> None:
    before = await _scanned_bars(db)

    report = await demo(hours=1, env=test_env)

    # Twelve 5-minute candles replayed: the stack's own scheduler scanned each new bar once.
    assert await _scanned_bars(db) - before == 12
    assert "Signals stored this run" in report
    assert "Orders this run, by user and status" in report
    assert "Positions closed by their take-profit or stop-loss" in report
    async with db.read(Caller.service()) as conn:
        accounts = await (
            await conn.execute(
                "select count(*) as n from user_trading_accounts a "
                "join trading_preferences p using (user_id) "
                "where a.environment = 'paper' and a.is_active and p.auto_trade_enabled"
            )
        ).fetchone()
    assert accounts is not None
    assert accounts["n"] >= 2
