"""Where the database is, and bringing it up: the embedded server by default, or ``DATABASE_URL``.

This is operations code (CLI, rebuild, test fixtures). The application itself only ever receives the
``authenticator`` URL from here. Every connection opened here gives up after
:data:`lib.db.unreachable.CONNECT_TIMEOUT_S` and fails as one ``DatabaseUnavailable`` sentence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from lib.config import Settings
from lib.db.archive import WAL_DIR
from lib.db.embedded import DEFAULT_PORT, EmbeddedPostgres
from lib.db.session import Database
from lib.db.unreachable import CONNECT_TIMEOUT_S, unreachable
from lib.errors import ConfigError
from lib.local_state import read_stack, update_stack

EMBEDDED = "the embedded PostgreSQL"
EMBEDDED_HINT = "`aitradex db start` starts it"

#: The owner's synchronous connection: migrations, seeds, operator commands, never a request.
OwnerConnection = psycopg.Connection[Any]


@dataclass(frozen=True, slots=True)
class DatabaseTarget:
    """The two ways into one database: the owner's (operations) and ``authenticator``'s (application)."""

    admin_url: str
    app_url: str
    embedded: EmbeddedPostgres | None
    # False when the application's URL is a transaction-mode pooler (``AITRADEX_DB_PREPARED_STATEMENTS``).
    prepared_statements: bool = True

    def database(self, **pool: Any) -> Database:
        """The application's pool on this database (``pool``: :class:`Database`'s sizes and timeouts)."""
        return Database(self.app_url, prepared_statements=self.prepared_statements, **pool)

    @property
    def name(self) -> str:
        """Which database this is, in an error message."""
        return EMBEDDED if self.embedded is not None else "DATABASE_URL"

    @property
    def hint(self) -> str:
        """What to do when this database cannot be reached."""
        return EMBEDDED_HINT if self.embedded is not None else "check the address and that it runs"


def embedded_server(settings: Settings) -> EmbeddedPostgres:
    """The embedded server handle, on the port recorded for this state folder (or a free one)."""
    port = read_stack(settings.state_dir).get("pg_port")
    wal_dir = settings.backups.dir / WAL_DIR if settings.backups.archive_wal else None
    return EmbeddedPostgres.in_state_dir(settings.state_dir, int(port) if port else None, archive_dir=wal_dir)


def database_target(settings: Settings) -> DatabaseTarget:
    """URLs for the configured database, without connecting."""
    db = settings.database
    if not db.embedded:
        assert db.external_admin_url is not None
        assert db.external_app_url is not None
        return DatabaseTarget(
            db.external_admin_url.reveal(),
            db.external_app_url.reveal(),
            None,
            prepared_statements=db.prepared_statements,
        )
    if db.embedded_superuser_password is None:
        raise ConfigError("POSTGRES_SUPERUSER_PASSWORD is not set for the embedded database")
    server = embedded_server(settings)
    return DatabaseTarget(
        admin_url=server.admin_url(db.embedded_superuser_password.reveal(), db.db_name),
        app_url=server.app_url(db.authenticator_password.reveal(), db.db_name),
        embedded=server,
        prepared_statements=db.prepared_statements,
    )


def start_database(settings: Settings) -> tuple[DatabaseTarget, list[str]]:
    """Start (embedded) or reach (external) the database and create it if needed; returns what it did."""
    target = database_target(settings)
    done: list[str] = []
    server = target.embedded
    if server is not None:
        recorded = read_stack(settings.state_dir).get("pg_port")
        password = settings.database.embedded_superuser_password
        assert password is not None
        if not server.is_initialized():
            server.initialize(password.reveal())
            done.append(f"initialized embedded PostgreSQL in {server.data_dir}")
        if not server.is_running():
            server.start()
            busy = "" if server.port == DEFAULT_PORT or recorded else f" (the default {DEFAULT_PORT} is busy)"
            done.append(f"started embedded PostgreSQL on 127.0.0.1:{server.port}{busy}")
        update_stack(settings.state_dir, pg_port=server.port)
        maintenance_url = server.admin_url(password.reveal(), "postgres")
        if _create_database(maintenance_url, settings.database.db_name):
            done.append(f"created database {settings.database.db_name}")
    else:
        _connect(target.admin_url, target.name, target.hint).close()
    return target, done


def _connect(url: str, name: str, hint: str) -> OwnerConnection:
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg.OperationalError as exc:
        raise unreachable(url, exc, name=name, hint=hint) from None


def _create_database(maintenance_url: str, name: str) -> bool:
    with _connect(maintenance_url, EMBEDDED, EMBEDDED_HINT) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
        if exists:
            return False
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        return True


def admin_connection(target: DatabaseTarget) -> OwnerConnection:
    """An owner connection (autocommit; use ``conn.transaction()`` for atomic work).

    Raises DatabaseUnavailable, in one sentence with what to do, when the database does not answer.
    """
    return _connect(target.admin_url, target.name, target.hint)


def check_reachable(target: DatabaseTarget) -> None:
    """Connect once as ``authenticator`` and close: DatabaseUnavailable (one sentence) if that fails.

    Commands that open a pool call this first, so a stopped database is reported at once rather than
    after the pool's retries.
    """
    _connect(target.app_url, target.name, target.hint).close()
