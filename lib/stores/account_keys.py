"""``user_trading_accounts``' ciphertexts by master key version: the key rotation's queries, and which
versions the stored keys use (the key-health check). Service only: nobody else may read a ciphertext.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg import sql

from lib.db.session import Caller, Connection, Database

# A NULL user_ids array means every account.
_USERS_FILTER = sql.SQL("(%(user_ids)s::uuid[] is null or user_id = any(%(user_ids)s::uuid[]))")


@dataclass(frozen=True, slots=True)
class KeyVersionCounts:
    """Accounts on a version older than the current one, on it (or newer), and the newest in use."""

    pending: int
    up_to_date: int
    newest: int | None


@dataclass(frozen=True, slots=True)
class SealedRow:
    """An account's two ciphertexts, as a rotation reads them."""

    id: UUID
    user_id: UUID
    api_key_encrypted: str
    api_secret_encrypted: str


def _users(user_ids: Collection[str] | None) -> list[str] | None:
    return None if user_ids is None else [str(u) for u in user_ids]


async def key_version_counts(
    db: Database, caller: Caller, *, current: int, user_ids: Collection[str] | None
) -> KeyVersionCounts:
    """How many of the accounts (``user_ids``' only, if given) are behind ``current``, and the newest."""
    params: dict[str, Any] = {"current": current, "user_ids": _users(user_ids)}
    async with db.read(caller) as conn:
        row = await (
            await conn.execute(
                sql.SQL(
                    "select count(*) filter (where key_version < %(current)s) as pending, "
                    "count(*) filter (where key_version >= %(current)s) as up_to_date, "
                    "max(key_version) as newest from public.user_trading_accounts where {users}"
                ).format(users=_USERS_FILTER),
                params,
            )
        ).fetchone()
    assert row is not None  # an aggregate always returns one row
    return KeyVersionCounts(pending=row["pending"], up_to_date=row["up_to_date"], newest=row["newest"])


async def lock_behind(
    conn: Connection, *, current: int, skip: Sequence[str], user_ids: Collection[str] | None, limit: int
) -> list[SealedRow]:
    """Up to ``limit`` accounts behind ``current`` (not in ``skip``), locked for the transaction; rows
    another transaction holds are skipped, not waited for."""
    rows = await (
        await conn.execute(
            sql.SQL(
                "select id, user_id, api_key_encrypted, api_secret_encrypted "
                "from public.user_trading_accounts "
                "where key_version < %(current)s and id <> all(%(skip)s::uuid[]) and {users} "
                "order by id limit %(limit)s for update skip locked"
            ).format(users=_USERS_FILTER),
            {"current": current, "skip": list(skip), "user_ids": _users(user_ids), "limit": limit},
        )
    ).fetchall()
    return [SealedRow(**row) for row in rows]


async def replace_keys(
    conn: Connection, *, version: int, ids: Sequence[str], keys: Sequence[str], secrets: Sequence[str]
) -> None:
    """Give each account ``ids[i]`` its new ciphertexts and ``version``, in one statement (both columns
    and the version change together per row)."""
    await conn.execute(
        "update public.user_trading_accounts as t "
        "set api_key_encrypted = v.k, api_secret_encrypted = v.s, key_version = %(version)s "
        "from unnest(%(ids)s::uuid[], %(keys)s::text[], %(secrets)s::text[]) as v(id, k, s) "
        "where t.id = v.id",
        {"version": version, "ids": list(ids), "keys": list(keys), "secrets": list(secrets)},
    )


async def count_behind(
    db: Database, caller: Caller, *, current: int, skip: Sequence[str], user_ids: Collection[str] | None
) -> int:
    """Accounts still behind ``current``, not counting ``skip``."""
    async with db.read(caller) as conn:
        row = await (
            await conn.execute(
                sql.SQL(
                    "select count(*) as n from public.user_trading_accounts "
                    "where key_version < %(current)s and id <> all(%(skip)s::uuid[]) and {users}"
                ).format(users=_USERS_FILTER),
                {"current": current, "skip": list(skip), "user_ids": _users(user_ids)},
            )
        ).fetchone()
    assert row is not None
    return int(row["n"])


# -- key health -------------------------------------------------------------------------------------


async def accounts_by_version(db: Database) -> dict[int, int]:
    """How many accounts each master key version encrypts (the key-health check), as ``service_role``."""
    async with db.read(Caller.service()) as conn:
        rows = await (
            await conn.execute(
                "select key_version, count(*) as n from public.user_trading_accounts group by key_version"
            )
        ).fetchall()
    return {int(row["key_version"]): int(row["n"]) for row in rows}
