"""The migration runner: tracked, checksummed, idempotent, and refusing edited migrations."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from lib.db import migrate
from lib.db.target import DatabaseTarget
from lib.errors import MigrationError


@pytest.fixture
def scratch_db(stack: DatabaseTarget) -> Iterator[psycopg.Connection]:
    """A brand-new database with the compatibility layer, dropped afterwards."""
    name = f"mig_{uuid.uuid4().hex[:10]}"
    maintenance = stack.admin_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(maintenance, autocommit=True) as root:
        root.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        with psycopg.connect(maintenance.rsplit("/", 1)[0] + f"/{name}", autocommit=True) as conn:
            migrate.apply_compat_layer(conn)
            yield conn
    finally:
        with psycopg.connect(maintenance, autocommit=True) as root:
            root.execute(sql.SQL("drop database {} with (force)").format(sql.Identifier(name)))


@pytest.fixture
def migrations_copy(tmp_path: Path) -> Path:
    target = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, target)
    return target


def test_migrations_apply_once_and_a_second_run_applies_nothing(
    scratch_db: psycopg.Connection, migrations_copy: Path
) -> None:
    first = migrate.migrate(scratch_db, migrations_copy)
    second = migrate.migrate(scratch_db, migrations_copy)

    assert first == [p.name for p in sorted(migrations_copy.glob("*.sql"))]
    assert second == []
    recorded = scratch_db.execute("select count(*) from aitradex_meta.schema_migrations").fetchone()
    assert recorded == (len(first),)


def test_editing_an_applied_migration_makes_the_runner_refuse_with_a_clear_message(
    scratch_db: psycopg.Connection, migrations_copy: Path
) -> None:
    migrate.migrate(scratch_db, migrations_copy)
    edited = sorted(migrations_copy.glob("*.sql"))[0]
    edited.write_text(edited.read_text() + "\n-- a harmless-looking edit\n")

    with pytest.raises(MigrationError) as info:
        migrate.migrate(scratch_db, migrations_copy)

    assert f"migration {edited.name} was edited after it was applied" in info.value.message
    assert "add a new migration instead" in info.value.message


def test_a_deleted_applied_migration_makes_the_runner_refuse(
    scratch_db: psycopg.Connection, migrations_copy: Path
) -> None:
    migrate.migrate(scratch_db, migrations_copy)
    sorted(migrations_copy.glob("*.sql"))[-1].unlink()

    with pytest.raises(MigrationError, match="its file is gone"):
        migrate.migrate(scratch_db, migrations_copy)


def test_a_new_migration_older_than_the_newest_applied_is_refused(
    scratch_db: psycopg.Connection, migrations_copy: Path
) -> None:
    migrate.migrate(scratch_db, migrations_copy)
    (migrations_copy / "20000101000000_too_old.sql").write_text("select 1;")

    with pytest.raises(MigrationError, match="sort before the newest applied one"):
        migrate.migrate(scratch_db, migrations_copy)


def test_a_failing_migration_is_rolled_back_and_not_recorded(
    scratch_db: psycopg.Connection, migrations_copy: Path
) -> None:
    migrate.migrate(scratch_db, migrations_copy)
    (migrations_copy / "29991231000000_broken.sql").write_text("create table ok_part (id int);\nselect 1/0;")

    with pytest.raises(MigrationError, match=r"29991231000000_broken\.sql failed and was rolled back"):
        migrate.migrate(scratch_db, migrations_copy)

    assert scratch_db.execute("select to_regclass('public.ok_part')").fetchone() == (None,)
    assert scratch_db.execute(
        "select count(*) from aitradex_meta.schema_migrations where version = '29991231000000'"
    ).fetchone() == (0,)


def test_a_badly_named_migration_file_is_refused(migrations_copy: Path) -> None:
    (migrations_copy / "add_things.sql").write_text("select 1;")

    with pytest.raises(MigrationError, match=r"is not named <14-digit timestamp>_<snake_name>\.sql"):
        migrate.discover(migrations_copy)
