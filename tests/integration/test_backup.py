"""Base backups of the embedded server: taken and verified, listed, checked in a scratch copy, pruned,
scheduled, and never holding a secret."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from lib.app.scheduler import Every
from lib.db import migrate
from lib.errors import AitradexError
from lib.ops import backup, schedules
from tests.integration.backup_drill import DRILL_DB, Drill, drill_server
from tests.integration.cli_helpers import run_cli


@pytest.fixture(scope="module")
def drill() -> Iterator[Drill]:
    yield from drill_server()


def test_the_server_archives_wal_into_the_backup_folder(drill: Drill) -> None:
    drill.insert("archived")
    drill.switch_and_wait_archived()

    with drill.connect() as conn:
        mode, command = backup.archive.archiving_status(conn)
    assert mode == "on"
    assert str(drill.backup_dir / "wal") in command
    assert backup.archive.archived_segments(drill.backup_dir / "wal")


def test_a_backup_is_verified_catalogued_and_listed_with_its_time_range_and_size(drill: Drill) -> None:
    result, _ = run_cli(drill.env, "backup")

    assert result.returncode == 0, result.stderr
    assert "pg_verifybackup: every file matches the manifest" in result.stdout
    entries = backup.catalogue(drill.settings.backups)
    info = entries[-1]
    assert info.label in result.stdout
    assert "MiB" in result.stdout
    assert info.size_bytes > 1_000_000
    assert info.start_time <= info.end_time
    assert (Path(info.path) / "backup_manifest").exists()
    assert (
        json.loads((drill.backup_dir / "base" / f"{info.label}.json").read_text())["end_lsn"] == info.end_lsn
    )

    listed, _ = run_cli(drill.env, "backup", "list")

    assert listed.returncode == 0, listed.stderr
    line = next(line for line in listed.stdout.splitlines() if line.startswith(info.label))
    assert info.end_time in line
    assert f"{info.size_bytes / 1024 / 1024:.1f} MiB" in line
    assert "restorable from" in listed.stdout


def test_backup_verify_starts_a_scratch_copy_and_reads_its_migrations_and_row_counts(drill: Drill) -> None:
    backup.take_backup(drill.settings)
    before = set(drill.backup_dir.iterdir())

    report = backup.verify_backup(drill.settings)

    facts = report.databases[DRILL_DB]
    assert facts["schema_migrations"] == len(migrate.discover())
    assert facts["app_settings"] > 0
    assert set(drill.backup_dir.iterdir()) == before  # the scratch copy is gone
    result, _ = run_cli(drill.env, "backup", "verify")
    assert result.returncode == 0, result.stderr
    assert f"{DRILL_DB}: schema_migrations {len(migrate.discover())}" in result.stdout


def test_pg_verifybackup_refuses_a_changed_backup(drill: Drill) -> None:
    info = backup.take_backup(drill.settings)
    target = Path(info.path) / "PG_VERSION"
    target.write_text(target.read_text() + "x")

    with pytest.raises(AitradexError, match="pg_verifybackup refused"):
        backup.verify_files(Path(info.path), drill.backup_dir / ".tools")
    with pytest.raises(AitradexError, match="pg_verifybackup refused"):
        backup.verify_backup(drill.settings, info.label)
    target.write_text(target.read_text()[:-1])
    backup.verify_files(Path(info.path), drill.backup_dir / ".tools")


def test_the_backup_holds_no_master_key_jwt_secret_or_database_password(drill: Drill) -> None:
    info = backup.take_backup(drill.settings)
    secrets = json.loads((drill.state_dir / "secrets.json").read_text())
    keys = [part.split(":", 1)[1] for part in secrets["AITRADEX_MASTER_KEYS"].split(",")]
    needles = [k.encode() for k in keys] + [base64.b64decode(k) for k in keys]
    needles += [secrets[n].encode() for n in ("JWT_SECRET", "POSTGRES_SUPERUSER_PASSWORD")]
    needles += [secrets["AITRADEX_AUTHENTICATOR_PASSWORD"].encode()]

    files = [p for p in Path(info.path).rglob("*") if p.is_file()]
    assert len(files) > 100
    for path in files:
        data = path.read_bytes()
        assert not [n for n in needles if n in data], path


def test_retention_keeps_the_newest_backups_and_the_wal_they_need(drill: Drill) -> None:
    backup.take_backup(drill.settings)
    drill.insert("between")
    drill.switch_and_wait_archived()
    keep_one = dataclasses.replace(drill.settings, backup=dataclasses.replace(drill.settings.backups, keep=1))
    assert len(backup.catalogue(keep_one.backups)) >= 2

    newest = backup.take_backup(keep_one)

    assert [e.label for e in backup.catalogue(keep_one.backups)] == [newest.label]
    remaining = backup.archive.archived_segments(drill.backup_dir / "wal")
    assert min(min(numbers) for numbers in remaining.values()) == newest.start_segment.number
    assert sorted(p.name for p in (drill.backup_dir / "base").iterdir()) == [
        newest.label,
        f"{newest.label}.json",
    ]


def test_the_scheduler_takes_a_backup_when_the_newest_is_older_than_the_interval(drill: Drill) -> None:
    settings = drill.settings
    assert schedules.backup_scheduler(settings) is None  # AITRADEX_BACKUP_INTERVAL_HOURS=0: off
    daily = dataclasses.replace(settings, backup=dataclasses.replace(settings.backups, interval_hours=24))
    job = schedules.backup_job(daily)
    assert isinstance(job.schedule, Every)
    assert job.schedule.seconds == schedules.BACKUP_CHECK_S
    backup.take_backup(settings)
    count = len(backup.catalogue(settings.backups))

    assert backup.backup_if_due(daily) is None  # the newest is minutes old
    assert len(backup.catalogue(settings.backups)) == count

    due = dataclasses.replace(settings, backup=dataclasses.replace(settings.backups, interval_hours=1e-9))
    scheduler = schedules.backup_scheduler(due)
    assert scheduler is not None

    import asyncio

    report = asyncio.run(scheduler.tick())

    assert report.outcomes == {"backup": "ok"}
    assert len(backup.catalogue(settings.backups)) == count + 1
