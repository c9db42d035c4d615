"""``trade_logs``: one row per execution event of a user's (the owner reads their own; service writes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from lib.db.session import Caller, Database

_SERVICE = Caller.service()

_APPEND_MANY_SQL = """
insert into trade_logs (user_id, order_id, level, event, message, context)
select * from unnest(%s::uuid[], %s::uuid[], %s::text[], %s::text[], %s::text[], %s::jsonb[])
"""


@dataclass(frozen=True, slots=True)
class LogLine:
    """One ``trade_logs`` event: what happened to a user's order (or to the user, without one)."""

    user_id: UUID
    event: str
    message: str
    order_id: UUID | None = None
    level: str = "info"
    context: dict[str, Any] = field(default_factory=dict)


async def append(db: Database, line: LogLine) -> None:
    """Append one event, in a transaction of its own."""
    async with db.write(_SERVICE) as conn:
        await conn.execute(
            "insert into trade_logs (user_id, order_id, level, event, message, context) "
            "values (%s, %s, %s, %s, %s, %s)",
            (line.user_id, line.order_id, line.level, line.event, line.message, Jsonb(line.context)),
        )


async def append_many(db: Database, lines: Sequence[LogLine]) -> None:
    """Append ``lines`` in one statement (the executor's grouped writes)."""
    async with db.write(_SERVICE) as conn:
        await conn.execute(
            _APPEND_MANY_SQL,
            (
                [i.user_id for i in lines],
                [i.order_id for i in lines],
                [i.level for i in lines],
                [i.event for i in lines],
                [i.message for i in lines],
                [Jsonb(i.context) for i in lines],
            ),
        )
