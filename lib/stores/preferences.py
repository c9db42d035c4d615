"""``trading_preferences``: a user's preferences, read and updated as the caller (RLS enforces "own")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import sql

from lib.core.preferences import DEFAULT_PREFERENCES, PREFERENCE_FIELDS, TradingPreferences
from lib.db.session import Caller, Database

#: The preference columns (the fields of :class:`~lib.core.preferences.TradingPreferences`).
COLUMNS = PREFERENCE_FIELDS


@dataclass(frozen=True, slots=True)
class PreferencesRecord:
    """The caller's preferences; ``saved`` is False when these are the defaults, never stored."""

    user_id: str
    preferences: TradingPreferences
    saved: bool
    updated_at: str | None


def _preferences(row: dict[str, Any]) -> TradingPreferences:
    # Arrays come back as lists; the record holds tuples, like the defaults.
    values: dict[str, Any] = {}
    for name in COLUMNS:
        values[name] = tuple(row[name]) if isinstance(row[name], list) else row[name]
    return TradingPreferences(**values)


async def get_preferences(db: Database, caller: Caller, user_id: str) -> PreferencesRecord:
    """The caller's row, or the defaults if there is none yet (reading never writes)."""
    query = sql.SQL("select {}, updated_at from trading_preferences where user_id = %s").format(
        sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
    )
    async with db.read(caller) as conn:
        row = await (await conn.execute(query, (user_id,))).fetchone()
    if row is None:
        return PreferencesRecord(user_id, DEFAULT_PREFERENCES, saved=False, updated_at=None)
    return PreferencesRecord(user_id, _preferences(row), saved=True, updated_at=row["updated_at"].isoformat())


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
