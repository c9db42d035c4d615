"""On the paper exchange, signals live in replay time: the executor judges expiry by the market clock."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from lib.db.session import Caller, Database
from lib.services.execution.queue import claim_signals


async def _replayed_signal(db: Database, bar: datetime) -> uuid.UUID:
    async with db.write(Caller.service()) as conn:
        row = await (
            await conn.execute(
                "insert into signals (symbol, timeframe, direction, algorithm, score, confidence, "
                "entry_price, stop_loss, take_profit, atr, bar_time, expires_at) "
                "values (%s, '5', 'LONG', 'unirail_core', 90, 0.9, 10, 9, 12, 0.5, %s, %s) returning id",
                ("R" + uuid.uuid4().hex[:8].upper(), bar, bar + timedelta(minutes=15)),
            )
        ).fetchone()
    assert row is not None
    return row["id"]


async def test_a_replayed_signal_is_claimed_in_replay_time_though_long_expired_by_the_wall_clock(
    db: Database,
) -> None:
    bar = datetime(2018, 1, 20, 12, 0, tzinfo=UTC)
    signal_id = await _replayed_signal(db, bar)
    try:
        claimed, expired = await claim_signals(
            db,
            worker="test",
            now=datetime.now(UTC),
            limit=5,
            signal_ids=[signal_id],
            market_now=bar + timedelta(minutes=5),
        )
        assert [s.id for s in claimed] == [signal_id]
        assert expired == 0
    finally:
        async with db.write(Caller.service()) as conn:
            await conn.execute("update signals set status = 'skipped' where id = %s", (signal_id,))


async def test_without_a_market_clock_the_same_signal_expires_by_the_wall_clock(db: Database) -> None:
    bar = datetime(2018, 1, 20, 12, 0, tzinfo=UTC)
    signal_id = await _replayed_signal(db, bar)
    claimed, expired = await claim_signals(
        db, worker="test", now=datetime.now(UTC), limit=5, signal_ids=[signal_id]
    )
    assert claimed == []
    assert expired == 1
    async with db.read(Caller.service()) as conn:
        row = await (await conn.execute("select status from signals where id = %s", (signal_id,))).fetchone()
    assert row == {"status": "expired"}
