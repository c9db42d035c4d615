"""The RLS matrix: every table x {anon, user A, user B, service_role} x {select, insert, update, delete}.

Each cell runs on the real database, connected as ``authenticator`` with the subject's role and claims,
and asserts allowed or denied exactly as DESIGN.md section 3 says. User A owns the target row; user B
is another signed-in user trying to read or change A's data. "Denied" means either an error
(no privilege, RLS check) or no row seen/affected; "allowed" means the row was seen or affected.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg.types.json import Jsonb

from lib.db.session import Caller, Database
from lib.errors import AitradexError, Forbidden
from lib.services.auth.users import LocalUser

SUBJECTS = ("anon", "user_a", "user_b", "service")
OPS = ("select", "insert", "update", "delete")

A, S, N = "user_a", "service", "anon"
EVERYONE = frozenset(SUBJECTS)
SERVICE = frozenset({S})
OWNER_AND_SERVICE = frozenset({A, S})
NOBODY: frozenset[str] = frozenset()

# table -> op -> subjects allowed (DESIGN.md section 3)
EXPECTED: dict[str, dict[str, frozenset[str]]] = {
    "markets": {"select": EVERYONE, "insert": SERVICE, "update": SERVICE, "delete": SERVICE},
    "instruments_cache": {"select": SERVICE, "insert": SERVICE, "update": SERVICE, "delete": SERVICE},
    "signals": {"select": EVERYONE, "insert": SERVICE, "update": SERVICE, "delete": SERVICE},
    "scan_runs": {"select": SERVICE, "insert": SERVICE, "update": SERVICE, "delete": SERVICE},
    "app_settings": {"select": SERVICE, "insert": SERVICE, "update": SERVICE, "delete": SERVICE},
    "user_trading_accounts": {
        "select": OWNER_AND_SERVICE,
        "insert": SERVICE,  # writes only through functions, which run as service_role
        "update": SERVICE,
        "delete": OWNER_AND_SERVICE,
    },
    "trading_preferences": {
        "select": OWNER_AND_SERVICE,
        "insert": OWNER_AND_SERVICE,
        "update": OWNER_AND_SERVICE,
        "delete": OWNER_AND_SERVICE,
    },
    "execution_orders": {
        "select": OWNER_AND_SERVICE,
        "insert": SERVICE,
        "update": SERVICE,
        "delete": SERVICE,
    },
    "trade_logs": {"select": OWNER_AND_SERVICE, "insert": SERVICE, "update": SERVICE, "delete": SERVICE},
    "audit_log": {"select": OWNER_AND_SERVICE, "insert": SERVICE, "update": NOBODY, "delete": NOBODY},
}


@dataclass(frozen=True)
class TableCase:
    """How to make a fresh row of a table owned by a user, find it again, and change it harmlessly."""

    key_column: str
    make: Callable[[str], dict[str, Any]]  # owner id -> column values
    update_sql: str  # "set ..." clause


def _symbol() -> str:
    return "T" + secrets.token_hex(5).upper()


def _bar_time() -> datetime:
    return datetime(2030, 1, 1, tzinfo=UTC) + timedelta(minutes=5 * secrets.randbelow(10**6))


def _signal(_owner: str) -> dict[str, Any]:
    bar = _bar_time()
    return {
        "id": str(uuid.uuid4()),
        "symbol": _symbol(),
        "timeframe": "15",
        "direction": "LONG",
        "algorithm": "unirail_core",
        "score": 85,
        "confidence": 0.85,
        "entry_price": 100,
        "stop_loss": 95,
        "take_profit": 110,
        "atr": 2.5,
        "components": Jsonb({"trend": 30}),
        "bar_time": bar,
        "expires_at": bar + timedelta(hours=1),
        "status": "skipped",  # a row for access checks, never work for the executor
    }


CASES: dict[str, TableCase] = {
    "markets": TableCase(
        "symbol",
        lambda _o: {
            "symbol": _symbol(),
            "category": "linear",
            "base": "T",
            "quote": "USDT",
            "tick_size": 0.01,
            "qty_step": 0.001,
            "min_qty": 0.001,
            "max_qty": 100,
        },
        "set enabled = false",
    ),
    "instruments_cache": TableCase(
        "category",
        lambda _o: {
            "category": "inverse",  # the matrix owns the 'inverse' row; other tests use 'linear'
            "payload": Jsonb({"list": []}),
            "fetched_at": datetime.now(UTC),
            "expires_at": datetime.now(UTC) + timedelta(minutes=5),
        },
        "set payload = '{\"list\": [1]}'::jsonb",
    ),
    "signals": TableCase("id", _signal, "set status = 'expired'"),
    "scan_runs": TableCase(
        "id",
        lambda _o: {"id": str(uuid.uuid4()), "timeframe": "15", "algorithm": "unirail_core"},
        "set status = 'failed'",
    ),
    "app_settings": TableCase(
        "key",
        lambda _o: {"key": f"test.{uuid.uuid4().hex}", "value": Jsonb(1)},
        "set description = 'changed'",
    ),
    "user_trading_accounts": TableCase(
        "id",
        lambda owner: {
            "id": str(uuid.uuid4()),
            "user_id": owner,
            "environment": "paper",
            "api_key_encrypted": "v1:not-a-real-ciphertext",
            "api_secret_encrypted": "v1:not-a-real-ciphertext",
            "key_version": 1,
            "key_hint": "abcd",
        },
        "set is_active = false",
    ),
    "trading_preferences": TableCase("user_id", lambda owner: {"user_id": owner}, "set min_score = 70"),
    "execution_orders": TableCase(
        "id",
        lambda owner: {
            "id": str(uuid.uuid4()),
            "user_id": owner,
            "symbol": "ETHUSDT",
            "side": "Buy",
            "qty": 1,
            "order_link_id": f"t-{uuid.uuid4().hex[:30]}",
            "environment": "paper",
        },
        "set status = 'cancelled'",
    ),
    "trade_logs": TableCase(
        "user_id", lambda owner: {"user_id": owner, "event": "test"}, "set message = 'changed'"
    ),
    "audit_log": TableCase(
        "user_id",
        lambda owner: {
            "user_id": owner,
            "actor_role": "service_role",
            "action": "INSERT",
            "table_name": "test",
        },
        "set user_agent = 'changed'",
    ),
}


def _insert_sql(table: str, row: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    columns = ", ".join(row)
    placeholders = ", ".join(["%s"] * len(row))
    conflict = (
        " on conflict (category) do update set payload = excluded.payload"
        if table == "instruments_cache"
        else ""
    )
    return f"insert into public.{table} ({columns}) values ({placeholders}){conflict}", tuple(row.values())


async def _seed(db: Database, table: str, row: dict[str, Any]) -> None:
    sql, params = _insert_sql(table, row)
    async with db.write(Caller.service()) as conn:
        await conn.execute(sql, params)  # type: ignore[arg-type]


def _caller(subject: str, a: LocalUser, b: LocalUser) -> Caller:
    if subject == "anon":
        return Caller.anon()
    if subject == "service":
        return Caller.service()
    user = a if subject == "user_a" else b
    return Caller.from_claims({"role": "authenticated", "sub": user.id})


async def _attempt(db: Database, caller: Caller, table: str, op: str, owner: str) -> bool:
    """Run one cell; True if the operation was allowed (row seen/affected), False if denied."""
    case = CASES[table]
    if op == "insert":
        sql, params = _insert_sql(table, case.make(owner))
        try:
            async with db.write(caller) as conn:
                cur = await conn.execute(sql, params)  # type: ignore[arg-type]
                return cur.rowcount == 1
        except Forbidden:
            return False

    row = case.make(owner)
    await _seed(db, table, row)
    key = row[case.key_column]
    where = f"where {case.key_column} = %s"
    statement = {
        "select": f"select 1 from public.{table} {where}",
        "update": f"update public.{table} {case.update_sql} {where}",
        "delete": f"delete from public.{table} {where}",
    }[op]
    try:
        async with db.transaction(caller, read_only=op == "select") as conn:
            cur = await conn.execute(statement, (key,))  # type: ignore[arg-type]
            return cur.rowcount >= 1
    except Forbidden:
        return False


@pytest.fixture(scope="module", autouse=True)
async def _forget_the_test_settings(db: Database) -> AsyncIterator[None]:
    """The app_settings cells leave ``test.<uuid>`` keys: live settings the versioned file lacks, which
    the rebuild (rightly) reports as drift. Every test removes what it made."""
    yield
    async with db.write(Caller.service()) as conn:
        await conn.execute("delete from public.app_settings where key like 'test.%'")


CELLS = [(table, op, subject) for table in EXPECTED for op in OPS for subject in SUBJECTS]


@pytest.mark.parametrize(("table", "op", "subject"), CELLS, ids=["-".join(c) for c in CELLS])
async def test_rls_cell_matches_the_design(
    db: Database, make_user: Callable[[], LocalUser], table: str, op: str, subject: str
) -> None:
    a, b = make_user(), make_user()
    allowed = await _attempt(db, _caller(subject, a, b), table, op, owner=a.id)
    expected = subject in EXPECTED[table][op]
    assert allowed is expected, f"{subject} {op} on {table}: expected {'allowed' if expected else 'denied'}"


async def test_a_user_cannot_read_the_encrypted_key_columns_even_in_their_own_row(
    db: Database, make_user: Callable[[], LocalUser]
) -> None:
    a = make_user()
    row = CASES["user_trading_accounts"].make(a.id)
    await _seed(db, "user_trading_accounts", row)
    owner = Caller.from_claims({"role": "authenticated", "sub": a.id})

    async with db.read(owner) as conn:
        visible = await (
            await conn.execute("select key_hint from user_trading_accounts where id = %s", (row["id"],))
        ).fetchone()
    assert visible == {"key_hint": "abcd"}
    for column in ("api_key_encrypted", "api_secret_encrypted", "*"):
        with pytest.raises(Forbidden):
            async with db.read(owner) as conn:
                await conn.execute(f"select {column} from user_trading_accounts where id = %s", (row["id"],))  # type: ignore[arg-type]


async def test_a_user_cannot_write_preferences_in_another_users_name(
    db: Database, make_user: Callable[[], LocalUser]
) -> None:
    a, b = make_user(), make_user()
    intruder = Caller.from_claims({"role": "authenticated", "sub": b.id})
    with pytest.raises(Forbidden):
        async with db.write(intruder) as conn:
            await conn.execute("insert into trading_preferences (user_id) values (%s)", (a.id,))
    # and cannot move their own row onto someone else
    async with db.write(intruder) as conn:
        await conn.execute("insert into trading_preferences (user_id) values (%s)", (b.id,))
    with pytest.raises(Forbidden):
        async with db.write(intruder) as conn:
            await conn.execute("update trading_preferences set user_id = %s where user_id = %s", (a.id, b.id))


async def test_nobody_can_update_or_delete_audit_log_not_even_the_table_owner(
    db: Database, make_user: Callable[[], LocalUser], owner_conn: Any
) -> None:
    a = make_user()
    await _seed(db, "trading_preferences", {"user_id": a.id})
    import psycopg

    for statement in (
        "update audit_log set user_agent = 'x' where user_id = %s",
        "delete from audit_log where user_id = %s",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege), owner_conn.transaction():
            owner_conn.execute(statement, (a.id,))
        with pytest.raises(AitradexError):
            async with db.write(Caller.service()) as conn:
                await conn.execute(statement, (a.id,))  # type: ignore[arg-type]


async def test_account_changes_are_audited_with_secrets_redacted_and_the_callers_ip(
    db: Database, make_user: Callable[[], LocalUser]
) -> None:
    a = make_user()
    row = CASES["user_trading_accounts"].make(a.id)
    service = Caller(
        role="service_role",
        claims={"role": "service_role"},
        headers={"X-Forwarded-For": "203.0.113.7", "User-Agent": "pytest"},
    )
    sql, params = _insert_sql("user_trading_accounts", row)
    async with db.write(service) as conn:
        await conn.execute(sql, params)  # type: ignore[arg-type]

    owner = Caller.from_claims({"role": "authenticated", "sub": a.id})
    async with db.read(owner) as conn:
        entries = await (
            await conn.execute(
                "select action, actor_role, new_values, host(ip) as ip, user_agent from audit_log "
                "where table_name = 'user_trading_accounts' and record_id = %s",
                (row["id"],),
            )
        ).fetchall()
    assert len(entries) == 1
    entry = entries[0]
    assert entry["action"] == "INSERT"
    assert entry["actor_role"] == "service_role"
    assert entry["new_values"]["api_key_encrypted"] == "[redacted]"
    assert entry["new_values"]["api_secret_encrypted"] == "[redacted]"
    assert entry["new_values"]["key_hint"] == "abcd"
    assert (entry["ip"], entry["user_agent"]) == ("203.0.113.7", "pytest")
