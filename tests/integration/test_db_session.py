"""Every query runs as its caller: role, claims, read-only and the role's statement timeout."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC

import pytest

from lib.db.session import Caller, Database
from lib.errors import Conflict, DatabaseError, Forbidden
from lib.services.auth.users import LocalUser
from tests.integration.pooler_proxy import POOLS, pool_for


@pytest.fixture(params=POOLS)
def db(request: pytest.FixtureRequest, db: Database) -> Database:
    """Every test twice: directly, and through a transaction-mode pooler (prepared statements off)."""
    return pool_for(request, db)


async def test_each_transaction_runs_as_the_callers_role_with_its_claims(
    db: Database, make_user: Callable[[], LocalUser]
) -> None:
    user = make_user()
    caller = Caller.from_claims({"role": "authenticated", "sub": user.id, "email": user.email})

    async with db.read(caller) as conn:
        row = await (
            await conn.execute(
                "select session_user as login, current_user as role, auth.uid()::text as uid, "
                "auth.role() as jwt_role, auth.jwt() ->> 'email' as email"
            )
        ).fetchone()

    assert row == {
        "login": "authenticator",
        "role": "authenticated",
        "uid": user.id,
        "jwt_role": "authenticated",
        "email": user.email,
    }


async def test_the_application_login_is_not_a_superuser_and_owns_nothing(db: Database) -> None:
    async with db.read(Caller.service()) as conn:
        row = await (
            await conn.execute(
                "select rolsuper, rolbypassrls, "
                "(select count(*) from pg_tables "
                " where schemaname = 'public' and tableowner = 'authenticator') as owned "
                "from pg_roles where rolname = session_user"
            )
        ).fetchone()
    assert row == {"rolsuper": False, "rolbypassrls": False, "owned": 0}


@pytest.mark.parametrize(("caller", "timeout"), [(Caller.anon(), "3s"), (Caller.service(), "0")])
async def test_the_roles_own_statement_timeout_applies(db: Database, caller: Caller, timeout: str) -> None:
    async with db.read(caller) as conn:
        row = await (await conn.execute("select current_setting('statement_timeout') as t")).fetchone()
    assert row == {"t": timeout}


async def test_a_statement_over_the_roles_timeout_is_cancelled(db: Database) -> None:
    with pytest.raises(DatabaseError, match="statement timeout"):
        async with db.read(Caller.anon()) as conn:
            await conn.execute("select pg_sleep(4)")


async def test_a_read_transaction_refuses_writes(db: Database) -> None:
    with pytest.raises(DatabaseError, match="read-only"):
        async with db.read(Caller.service()) as conn:
            await conn.execute(
                "insert into app_settings (key, value) values (%s, '1')", (f"test.{uuid.uuid4().hex}",)
            )


async def test_claims_and_role_do_not_outlive_their_transaction(stack: object, db: Database) -> None:
    single = Database(db._pool.conninfo, min_size=1, max_size=1)  # one connection: reuse is certain
    await single.open()
    try:
        async with single.read(Caller.from_claims({"role": "authenticated", "sub": str(uuid.uuid4())})):
            pass
        async with single.read(Caller.anon()) as conn:
            row = await (await conn.execute("select current_user as role, auth.uid() as uid")).fetchone()
        assert row == {"role": "anon", "uid": None}
    finally:
        await single.close()


def test_a_token_with_an_unserved_role_is_refused() -> None:
    with pytest.raises(Forbidden):
        Caller.from_claims({"role": "postgres"})
    with pytest.raises(Forbidden):
        Caller.from_claims({"role": "authenticated"})  # no sub


async def test_a_failed_transaction_is_rolled_back(db: Database) -> None:
    key = f"test.{uuid.uuid4().hex}"
    with pytest.raises(Conflict):
        async with db.write(Caller.service()) as conn:
            await conn.execute("insert into app_settings (key, value) values (%s, '1')", (key,))
            await conn.execute("insert into app_settings (key, value) values (%s, '2')", (key,))
    async with db.read(Caller.service()) as conn:
        row = await (
            await conn.execute("select count(*) as n from app_settings where key = %s", (key,))
        ).fetchone()
    assert row == {"n": 0}


async def test_times_come_back_in_utc_as_timezone_utc(db: Database) -> None:
    """The embedded server runs with timezone=UTC (as hosted Supabase does), so psycopg hands out
    ``timezone.utc`` datetimes: the ones pydantic-core encodes fastest."""
    async with db.read(Caller.anon()) as conn:
        row = await (await conn.execute("select current_setting('TimeZone') as tz, now() as now")).fetchone()
    assert row is not None
    assert row["tz"] == "UTC"
    assert row["now"].tzinfo is UTC
