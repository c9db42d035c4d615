"""The preference defaults have one Python home, and the migration's column DEFAULTs agree with it.

The migration cannot import Python, so it spells the defaults out too; this test reads them from the
database (``information_schema.columns``, as the application's ``service_role``), evaluates each
default expression, and compares it with :data:`lib.core.preferences.DEFAULT_PREFERENCES`. Changing
either side alone fails here.
"""

from __future__ import annotations

from typing import Any

from lib.core.preferences import DEFAULT_PREFERENCES, PREFERENCE_FIELDS
from lib.db.session import Caller, Database

# Columns of the table that are bookkeeping, not preferences.
NOT_PREFERENCES = {"user_id", "created_at", "updated_at"}


async def _column_defaults(db: Database) -> dict[str, str | None]:
    async with db.read(Caller.service()) as conn:
        rows = await (
            await conn.execute(
                "select column_name, column_default from information_schema.columns "
                "where table_schema = 'public' and table_name = 'trading_preferences'"
            )
        ).fetchall()
    return {r["column_name"]: r["column_default"] for r in rows if r["column_name"] not in NOT_PREFERENCES}


async def _evaluate(db: Database, expression: str) -> Any:
    # The expression is the catalog's own text of a migration's DEFAULT, not anything a user sent.
    async with db.read(Caller.service()) as conn:
        row = await (await conn.execute(f"select {expression} as value")).fetchone()
    assert row is not None
    value = row["value"]
    return tuple(value) if isinstance(value, list) else value


async def test_the_tables_preference_columns_are_exactly_the_python_preference_fields(db: Database) -> None:
    assert set(await _column_defaults(db)) == set(PREFERENCE_FIELDS)


async def test_every_column_default_in_the_migration_equals_the_python_default(db: Database) -> None:
    defaults = await _column_defaults(db)
    in_database = {name: await _evaluate(db, expr) for name, expr in defaults.items() if expr is not None}
    in_python = {name: getattr(DEFAULT_PREFERENCES, name) for name in PREFERENCE_FIELDS}

    assert set(in_database) == set(PREFERENCE_FIELDS), "every preference column has a DEFAULT"
    assert in_database == in_python
