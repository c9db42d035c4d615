"""Shared fixtures: a real PostgreSQL (the embedded one, or ``DATABASE_URL``) in its own test database.

The stack is rebuilt once per session exactly as ``make demo`` does it, into the database
``aitradex_test`` so tests never touch the demo's data. Tests reach it as ``authenticator`` plus a role
through ``lib.db.session.Database``; the owner connection exists only to create ``auth.users`` rows,
which is the auth server's job in Supabase, and never to assert anything about access.
Tests use unique ids instead of wiping tables.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import psycopg
import pytest

from lib.config import Settings, load_settings
from lib.db.session import Database
from lib.db.target import DatabaseTarget, admin_connection, database_target, start_database
from lib.errors import ConfigError
from lib.ops import stack_runner
from lib.ops.rebuild import rebuild
from lib.services.auth.users import LocalUser, create_local_user

TEST_DB_NAME = "aitradex_test"


@pytest.fixture(scope="session")
def test_env() -> dict[str, str]:
    """The environment every test-side component is built from: the normal one, on the test database."""
    # No scheduled base backups of the shared test server (tests/integration/test_backup*.py use their own).
    return {
        **os.environ,
        "AITRADEX_DB_NAME": TEST_DB_NAME,
        "AITRADEX_BACKUP_INTERVAL_HOURS": "0",
        # The shared test server's WAL is needed by nobody; the backup tests run servers of their own.
        "AITRADEX_WAL_ARCHIVE": "off",
    }


@pytest.fixture(scope="session")
def stack(test_env: dict[str, str]) -> Iterator[DatabaseTarget]:
    """The stack rebuilt as `make demo` does it (database, migrations, seeds, functions server, verified).

    The background functions server it starts for the test database is stopped at the end.
    """
    _forget_test_users_on_unknown_key_versions(test_env)
    # reset_settings: the tests start from the versioned settings, whatever an interrupted run left.
    rebuild(env=test_env, reset_settings=True)
    settings = load_settings(test_env)
    yield database_target(settings)
    stack_runner.stop(settings)


def _forget_test_users_on_unknown_key_versions(test_env: dict[str, str]) -> None:
    """Delete the test users an earlier session left with API keys under master key versions this stack
    does not hold (key-rotation tests encrypt with throwaway versions), before the rebuild verifies the
    stack: diagnostics would rightly say ``down`` for them (``key_versions``). Test users only.
    """
    try:
        settings = load_settings(test_env)
    except ConfigError:
        return  # a fresh state folder: no earlier session left anything
    target, _ = start_database(settings)
    with admin_connection(target) as conn:
        row = conn.execute("select to_regclass('public.user_trading_accounts') is not null").fetchone()
        if row is None or not row[0]:
            return
        conn.execute(
            "delete from auth.users u where u.email like %s and exists (select 1 from "
            "public.user_trading_accounts a where a.user_id = u.id and a.key_version <> all(%s))",
            ("%@test.local", sorted(settings.master_keys)),
        )


@pytest.fixture(scope="session")
def settings(stack: DatabaseTarget, test_env: dict[str, str]) -> Settings:
    return load_settings(test_env)


@pytest.fixture(scope="session")
async def db(stack: DatabaseTarget) -> AsyncIterator[Database]:
    """The application's pool: connects as ``authenticator``, every transaction runs as a role."""
    database = Database(stack.app_url, max_size=8)
    await database.open()
    yield database
    await database.close()


@pytest.fixture(scope="session")
def owner_conn(stack: DatabaseTarget) -> Iterator[psycopg.Connection]:
    """The owner's connection: only for creating auth users, as GoTrue would."""
    with admin_connection(stack) as conn:
        yield conn


@pytest.fixture
def make_user(owner_conn: psycopg.Connection, settings: Settings) -> Callable[[], LocalUser]:
    """A factory of fresh local users with unique emails and valid access tokens."""

    def factory() -> LocalUser:
        return create_local_user(
            owner_conn, f"user-{uuid.uuid4().hex[:12]}@test.local", settings.jwt_secret.reveal()
        )

    return factory


@pytest.fixture(scope="session")
def paper_exchange_url() -> Iterator[str]:
    """A paper exchange over real HTTP on 127.0.0.1 (state in memory, clock frozen unless advanced).

    It replays what the stack's does, from where the stack's starts: scans made against it land in the
    shared test database beside the stack's own, and scan freshness is judged against the stack's
    replay clock.
    """
    from lib.ops.stack_replay import replay_start_ms, stack_symbols
    from lib.paper_exchange.config import PaperExchangeConfig
    from lib.paper_exchange.server import running_paper_exchange

    config = PaperExchangeConfig(
        symbols=stack_symbols(), state_path=None, port=0, start_time_ms=replay_start_ms()
    )
    with running_paper_exchange(config) as url:
        yield url
