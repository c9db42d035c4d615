"""A user's trading preferences: read and update the caller's own row (RLS enforces "own")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import sql

from lib.db.session import Caller, Database

COLUMNS = (
    "auto_trade_enabled",
    "algorithms",
    "timeframes",
    "min_score",
    "risk_per_trade_pct",
    "max_position_usd",
    "leverage",
    "max_open_positions",
    "daily_loss_limit_pct",
    "symbol_allowlist",
    "symbol_blocklist",
)

# The table's defaults, for a user who has never saved preferences (reading must not write).
DEFAULTS: dict[str, Any] = {
    "auto_trade_enabled": False,
    "algorithms": ["unirail_core"],
    "timeframes": ["15", "60"],
    "min_score": 80.0,
    "risk_per_trade_pct": 1.0,
    "max_position_usd": 1000.0,
    "leverage": 1,
    "max_open_positions": 5,
    "daily_loss_limit_pct": 5.0,
    "symbol_allowlist": [],
    "symbol_blocklist": [],
}


@dataclass(frozen=True, slots=True)
class PreferencesRecord:
    """The caller's preferences; ``saved`` is False when these are the defaults, never stored."""

    user_id: str
    values: dict[str, Any]
    saved: bool
    updated_at: str | None


async def get_preferences(db: Database, caller: Caller, user_id: str) -> PreferencesRecord:
    """The caller's row, or the defaults if there is none yet."""
    query = sql.SQL("select {}, updated_at from trading_preferences where user_id = %s").format(
        sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
    )
    async with db.read(caller) as conn:
        row = await (await conn.execute(query, (user_id,))).fetchone()
    if row is None:
        return PreferencesRecord(user_id, dict(DEFAULTS), saved=False, updated_at=None)
    updated_at = row.pop("updated_at")
    return PreferencesRecord(user_id, row, saved=True, updated_at=updated_at.isoformat())


async def update_preferences(
    db: Database, caller: Caller, user_id: str, changes: dict[str, Any]
) -> PreferencesRecord:
    """Apply ``changes`` (validated by the caller) to the caller's row, creating it if needed."""
    unknown = set(changes) - set(COLUMNS)
    if unknown:
        raise ValueError(f"unknown preference columns: {sorted(unknown)}")
    if changes:
        names = list(changes)
        query = sql.SQL(
            "insert into trading_preferences (user_id, {cols}) values (%s, {vals}) "
            "on conflict (user_id) do update set {sets}"
        ).format(
            cols=sql.SQL(", ").join(map(sql.Identifier, names)),
            vals=sql.SQL(", ").join(sql.Placeholder() * len(names)),
            sets=sql.SQL(", ").join(sql.SQL("{0} = excluded.{0}").format(sql.Identifier(n)) for n in names),
        )
        async with db.write(caller) as conn:
            await conn.execute(query, (user_id, *changes.values()))
    return await get_preferences(db, caller, user_id)
