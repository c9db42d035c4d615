"""``app_settings``: the system's live configuration, read in one place. Service only (RLS).

Every reader of a setting comes here; nothing else writes ``select ... from app_settings``. The keys
are named once below. Values are JSON; a missing or malformed value falls back to the seed's default
(``supabase/seed/app_settings.json``), except where the typed reader says otherwise. The scanner's
group of keys is parsed and validated by ``lib.services.scanning`` (``ScanSettings.from_values``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from lib.core.vocabulary import ENVIRONMENTS
from lib.db.session import Caller, Connection, Database
from lib.log import log_event

logger = logging.getLogger("aitradex.settings")

ENVIRONMENT = "exchange.environment"
LIVE_TRADING_ENABLED = "live_trading_enabled"
INSTRUMENTS_CACHE_TTL = "instruments_cache.ttl_seconds"
TRADING_HALTED = "trading_halted"
#: Operator state, not configuration: the seed inserts these when absent but never overwrites them, so
#: a rebuild (``make demo`` again) does not silently resume a halted system.
OPERATOR_STATE_KEYS = frozenset({TRADING_HALTED})

DEFAULT_ENVIRONMENT = "paper"
DEFAULT_INSTRUMENTS_CACHE_TTL_S = 300
MAX_INSTRUMENTS_CACHE_TTL_S = 7 * 24 * 3600

#: The live-trading switch as a SQL boolean (NULL when unset), for a query that filters on it in place.
LIVE_TRADING_ENABLED_SQL: sql.Composable = sql.SQL(
    "(select value = 'true'::jsonb from app_settings where key = {})"
).format(sql.Literal(LIVE_TRADING_ENABLED))

#: The kill switch as a SQL boolean (false when unset), for the executor's claim and reservation
#: statements: checked in the very transaction that claims a signal or reserves an order.
TRADING_HALTED_SQL: sql.Composable = sql.SQL(
    "coalesce((select value = 'true'::jsonb or value @> '{{\"halted\": true}}'::jsonb "
    "from app_settings where key = {}), false)"
).format(sql.Literal(TRADING_HALTED))

_SELECT = "select key, value from public.app_settings where key = any(%s)"


async def values_in(conn: Connection, keys: Sequence[str]) -> dict[str, Any]:
    """``{key: value}`` for the keys present, inside the caller's own transaction."""
    rows = await (await conn.execute(_SELECT, (list(keys),))).fetchall()
    return {row["key"]: row["value"] for row in rows}


async def read_values(db: Database, keys: Sequence[str]) -> dict[str, Any]:
    """``{key: value}`` for the keys present, read as ``service_role`` in a transaction of its own."""
    async with db.read(Caller.service()) as conn:
        return await values_in(conn, keys)


def read_values_sync(conn: psycopg.Connection[Any], keys: Sequence[str]) -> dict[str, Any]:
    """The same from an operator's synchronous connection (the rebuild's owner connection)."""
    return dict(conn.execute(_SELECT, (list(keys),)).fetchall())


def parse_environment(value: Any) -> str:
    """``exchange.environment``: one of the four environments, else the default (paper)."""
    return value if isinstance(value, str) and value in ENVIRONMENTS else DEFAULT_ENVIRONMENT


def parse_live_trading_enabled(value: Any) -> bool:
    """``live_trading_enabled``: off unless the setting is exactly JSON ``true``."""
    return value is True


def parse_instruments_cache_ttl(value: Any) -> timedelta:
    """``instruments_cache.ttl_seconds`` in 1 s .. 7 days; anything else logs an error and gives 300 s."""
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and 1 <= value <= MAX_INSTRUMENTS_CACHE_TTL_S
    ):
        return timedelta(seconds=value)
    log_event(
        logger,
        "instruments_cache_ttl_invalid",
        level=logging.ERROR,
        key=INSTRUMENTS_CACHE_TTL,
        value=repr(value)[:80],
    )
    return timedelta(seconds=DEFAULT_INSTRUMENTS_CACHE_TTL_S)


async def environment(db: Database) -> str:
    """The exchange environment this deployment trades and reads market data on."""
    return parse_environment((await read_values(db, [ENVIRONMENT])).get(ENVIRONMENT))


async def live_trading_enabled(db: Database) -> bool:
    """The system-wide switch that lets orders reach mainnet."""
    return parse_live_trading_enabled(
        (await read_values(db, [LIVE_TRADING_ENABLED])).get(LIVE_TRADING_ENABLED)
    )


@dataclass(frozen=True, slots=True)
class HaltState:
    """The kill switch: halted or not, and (once an operator set it) why, by whom and when."""

    halted: bool
    reason: str | None = None
    by: str | None = None
    at: datetime | None = None


def parse_trading_halted(value: Any) -> HaltState:
    """``trading_halted``: JSON ``true``/``false`` (the seed), or ``{"halted", "reason", "by", "at"}``.

    Anything else is not halted: a malformed value must not stop trading unnoticed, and diagnostics
    shows the parsed state.
    """
    if isinstance(value, bool):
        return HaltState(halted=value)
    if not isinstance(value, dict):
        return HaltState(halted=False)
    at = value.get("at")
    try:
        when = datetime.fromisoformat(at) if isinstance(at, str) else None
    except ValueError:
        when = None
    reason, by = value.get("reason"), value.get("by")
    return HaltState(
        halted=value.get("halted") is True,
        reason=reason if isinstance(reason, str) else None,
        by=by if isinstance(by, str) else None,
        at=when,
    )


async def trading_halted(db: Database) -> HaltState:
    """The kill switch as stored (read as ``service_role``)."""
    return parse_trading_halted((await read_values(db, [TRADING_HALTED])).get(TRADING_HALTED))


async def set_trading_halted(db: Database, caller: Caller, state: HaltState) -> HaltState:
    """Store the kill switch (as ``caller``, a service-role caller whose request headers the audit
    trigger records); app_settings' audit trigger writes who, when and the value with its reason."""
    value = {
        "halted": state.halted,
        "reason": state.reason,
        "by": state.by,
        "at": state.at.isoformat() if state.at is not None else None,
    }
    async with db.write(caller) as conn:
        await conn.execute(
            "insert into public.app_settings (key, value, description) values (%s, %s, %s) "
            "on conflict (key) do update set value = excluded.value",
            (TRADING_HALTED, Jsonb(value), "Operator kill switch"),
        )
    return state


async def instruments_cache_ttl(conn: Connection) -> timedelta:
    """How long a cached instruments list is fresh, read inside the cache's own transaction."""
    return parse_instruments_cache_ttl(
        (await values_in(conn, [INSTRUMENTS_CACHE_TTL])).get(INSTRUMENTS_CACHE_TTL)
    )


def restore_seed(conn: psycopg.Connection, rows: list[dict[str, Any]]) -> int:
    """Upsert each seeded setting whose value or description differs; returns how many rows changed.

    Operator state (:data:`OPERATOR_STATE_KEYS`) is only inserted when absent, never reset.
    """
    changed = 0
    with conn.transaction():
        for row in rows:
            if row["key"] in OPERATOR_STATE_KEYS:
                cur = conn.execute(
                    "insert into public.app_settings (key, value, description) values (%s, %s, %s) "
                    "on conflict (key) do nothing",
                    (row["key"], Jsonb(row["value"]), row.get("description", "")),
                )
                changed += cur.rowcount
                continue
            cur = conn.execute(
                "insert into public.app_settings (key, value, description) values (%s, %s, %s) "
                "on conflict (key) do update set value = excluded.value, description = excluded.description "
                "where (app_settings.value, app_settings.description) "
                "is distinct from (excluded.value, excluded.description)",
                (row["key"], Jsonb(row["value"]), row.get("description", "")),
            )
            changed += cur.rowcount
    return changed


# --- The operator's view of app_settings: every row, validated single writes, the seed kept beside live
# values (``aitradex settings``, the rebuild's drift report). Values change only through
# :func:`write_setting` (an audited UPDATE or INSERT) or :func:`restore_seed`; the rebuild's
# :func:`seed_missing_sync` never touches a live value.


@dataclass(frozen=True, slots=True)
class StoredSetting:
    """One ``app_settings`` row as the operator sees it."""

    key: str
    value: Any
    description: str


_SELECT_ALL = "select key, value, description from public.app_settings order by key"


async def all_settings(conn: Connection) -> list[StoredSetting]:
    """Every row, ordered by key, inside the caller's transaction."""
    rows = await (await conn.execute(_SELECT_ALL)).fetchall()
    return [StoredSetting(row["key"], row["value"], row["description"]) for row in rows]


def all_settings_sync(conn: psycopg.Connection[Any]) -> list[StoredSetting]:
    """Every row, ordered by key, from an operator's synchronous connection."""
    return [StoredSetting(*row) for row in conn.execute(_SELECT_ALL).fetchall()]


async def lock_setting(conn: Connection, key: str) -> StoredSetting | None:
    """The row of ``key``, locked until the caller's transaction ends (None when it is absent)."""
    row = await (
        await conn.execute(
            "select key, value, description from public.app_settings where key = %s for update", (key,)
        )
    ).fetchone()
    return None if row is None else StoredSetting(row["key"], row["value"], row["description"])


async def write_setting(conn: Connection, key: str, value: Any, description: str) -> None:
    """Set ``key`` to ``value`` (inserting it with ``description`` if absent); the trigger audits it."""
    await conn.execute(
        "insert into public.app_settings (key, value, description) values (%s, %s, %s) "
        "on conflict (key) do update set value = excluded.value",
        (key, Jsonb(value), description),
    )


def seed_missing_sync(conn: psycopg.Connection[Any], rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert each seeded key the table lacks, and bring descriptions up to the seed's; never change a
    live value. Returns how many rows changed.
    """
    changed = 0
    with conn.transaction():
        for row in rows:
            cur = conn.execute(
                "insert into public.app_settings (key, value, description) values (%s, %s, %s) "
                "on conflict (key) do update set description = excluded.description "
                "where app_settings.description is distinct from excluded.description",
                (row["key"], Jsonb(row["value"]), row.get("description", "")),
            )
            changed += cur.rowcount
    return changed


# --- The kill switch a restore sets (issue 13): a restored database is older than the exchange, so no
# executor may place an order until reconciliation has imported what the exchange has. The key and its
# value's shape are the executor's (``trading_halted``: ``{"halted", "reason", "by", "at"}``, or plain
# JSON true/false); ``aitradex trading resume`` clears it.

TRADING_HALTED_KEY = "trading_halted"


def set_trading_halted_sync(
    conn: psycopg.Connection[Any], *, halted: bool, reason: str, by: str, at: datetime
) -> bool:
    """Set ``trading_halted`` from an operator's owner connection (inserting it when absent; the trigger
    audits it). False, writing nothing, when the database has no ``app_settings`` table."""
    row = conn.execute("select to_regclass('public.app_settings') is not null").fetchone()
    if row is None or not row[0]:
        return False
    value = {"halted": halted, "reason": reason, "by": by, "at": at.isoformat()}
    conn.execute(
        "insert into public.app_settings (key, value, description) values (%s, %s, %s) "
        "on conflict (key) do update set value = excluded.value",
        (TRADING_HALTED_KEY, Jsonb(value), "Operator kill switch"),
    )
    return True
