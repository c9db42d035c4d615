"""Migrations: the Supabase compatibility layer, then ``supabase/migrations/*.sql`` in order, tracked.

Each applied migration is recorded in ``aitradex_meta.schema_migrations`` with the SHA-256 of its file.
The runner is idempotent (applied files are skipped) and refuses to go on when:

- an applied migration's file was edited (checksum differs) or deleted;
- a new file sorts before the newest applied one (it would run out of order).

Each migration runs in its own transaction with its record, under an advisory lock so two runners
never interleave. This module is operations code: it connects as the database owner, never as a caller.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from lib.config import REPO_ROOT
from lib.errors import MigrationError

MIGRATIONS_DIR = REPO_ROOT / "supabase" / "migrations"
COMPAT_SQL = Path(__file__).resolve().parent / "sql" / "compat.sql"
_NAME = re.compile(r"^(?P<version>\d{14})_(?P<name>[a-z0-9_]+)\.sql$")
_LOCK_KEY = 7_447_011_001  # arbitrary, stable: "aitradex migrations"

_META_SQL = """
create schema if not exists aitradex_meta;
revoke all on schema aitradex_meta from public;
create table if not exists aitradex_meta.schema_migrations (
  version text primary key,
  name text not null,
  checksum text not null,
  applied_at timestamptz not null default now(),
  execution_ms integer not null
);
"""


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file."""

    version: str
    name: str
    path: Path
    checksum: str

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class MigrationPlan:
    """What a run would do: the migrations already applied and the ones still pending."""

    applied: tuple[str, ...]
    pending: tuple[Migration, ...]


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Migration files in version order. Raises MigrationError on a badly named ``.sql`` file."""
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(
                f"migration file {path.name!r} is not named <14-digit timestamp>_<snake_name>.sql"
            )
        found.append(
            Migration(
                version=match["version"],
                name=match["name"],
                path=path,
                checksum=hashlib.sha256(path.read_bytes()).hexdigest(),
            )
        )
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version")
    return found


def compat_layer_present(conn: psycopg.Connection) -> bool:
    """Whether the Supabase roles and ``auth.users`` exist already (a hosted project, or a rebuild)."""
    row = conn.execute(
        "select (select count(*) from pg_roles "
        "where rolname in ('anon', 'authenticated', 'service_role', 'authenticator')) = 4 "
        "and to_regclass('auth.users') is not null"
    ).fetchone()
    return bool(row and row[0])


def is_tracked(conn: psycopg.Connection) -> bool:
    """Whether this database has the migration ledger yet (a database never migrated has not)."""
    row = conn.execute("select to_regclass('aitradex_meta.schema_migrations') is not null").fetchone()
    return bool(row and row[0])


def apply_compat_layer(conn: psycopg.Connection) -> None:
    """Create the Supabase roles, ``auth`` schema and functions where the database lacks them."""
    with conn.transaction():
        conn.execute(COMPAT_SQL.read_text(encoding="utf-8"))


def ensure_authenticator_password(conn: psycopg.Connection, app_url: str, password: str) -> bool:
    """Make ``authenticator`` log in with ``password``; returns True if the password had to be set.

    It first tries to log in, so a rebuild that finds a working password changes nothing. Only for
    databases whose ``authenticator`` this project manages (the embedded server, a plain Postgres);
    on hosted Supabase the platform owns that role, and ``AITRADEX_APP_DB_URL`` is given instead.
    """
    try:
        psycopg.connect(app_url, connect_timeout=5).close()
        return False
    except psycopg.OperationalError:
        pass
    conn.execute(sql.SQL("alter role authenticator with login password {}").format(sql.Literal(password)))
    return True


def _applied(conn: psycopg.Connection) -> dict[str, str]:
    rows = conn.execute("select version, checksum from aitradex_meta.schema_migrations").fetchall()
    return {version: checksum for version, checksum in rows}


def check(conn: psycopg.Connection, migrations: list[Migration]) -> MigrationPlan:
    """Compare files to what was applied; raise MigrationError on any edited, missing or out-of-order file."""
    conn.execute(_META_SQL)
    applied = _applied(conn)
    on_disk = {m.version: m for m in migrations}
    for version, checksum in sorted(applied.items()):
        migration = on_disk.get(version)
        if migration is None:
            raise MigrationError(
                f"migration {version} was applied but its file is gone from supabase/migrations",
                details={"version": version},
            )
        if migration.checksum != checksum:
            raise MigrationError(
                f"migration {migration.path.name} was edited after it was applied "
                f"(recorded sha256 {checksum[:12]}…, file now {migration.checksum[:12]}…). "
                "Applied migrations are never edited: restore the file and add a new migration instead.",
                details={"version": version, "recorded": checksum, "current": migration.checksum},
            )
    newest = max(applied, default="")
    pending = tuple(m for m in migrations if m.version not in applied)
    late = [m.path.name for m in pending if m.version < newest]
    if late:
        raise MigrationError(
            f"new migration(s) {', '.join(late)} sort before the newest applied one ({newest}); "
            "rename them with a later timestamp",
            details={"files": late, "newest_applied": newest},
        )
    return MigrationPlan(applied=tuple(sorted(applied)), pending=pending)


def plan(conn: psycopg.Connection, directory: Path = MIGRATIONS_DIR) -> MigrationPlan:
    """What :func:`migrate` would do, without applying anything (read-only apart from the meta table)."""
    return check(conn, discover(directory))


def migrate(conn: psycopg.Connection, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply every pending migration in order; returns the file names applied (empty when up to date)."""
    migrations = discover(directory)
    conn.execute("select pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        pending = check(conn, migrations).pending
        applied: list[str] = []
        for migration in pending:
            started = time.perf_counter()
            try:
                with conn.transaction():
                    conn.execute(migration.sql)  # file text from the repo, never user input
                    conn.execute(
                        "insert into aitradex_meta.schema_migrations (version, name, checksum, execution_ms) "
                        "values (%s, %s, %s, %s)",
                        (
                            migration.version,
                            migration.name,
                            migration.checksum,
                            int((time.perf_counter() - started) * 1000),
                        ),
                    )
            except psycopg.Error as exc:
                raise MigrationError(
                    f"migration {migration.path.name} failed and was rolled back: {exc}",
                    details={"version": migration.version},
                ) from exc
            applied.append(migration.path.name)
        return applied
    finally:
        conn.execute("select pg_advisory_unlock(%s)", (_LOCK_KEY,))
