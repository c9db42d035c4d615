"""scripts/rebuild_system.py rebuilds from nothing and is safe to run again."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from lib.config import REPO_ROOT
from lib.db.session import Caller, Database
from lib.ops.rebuild import rebuild

# What the rebuild writes: settings (and their audit trail) and markets. Other tables are left out so
# that tests running at the same time elsewhere cannot change the fingerprint.
FINGERPRINT_SQL = """
select
  (select count(*) from audit_log where table_name = 'app_settings') as settings_audit_rows,
  (select count(*) from app_settings) as settings,
  (select max(updated_at) from app_settings) as settings_updated,
  (select count(*) from markets) as markets,
  (select max(updated_at) from markets) as markets_updated,
  (select md5(string_agg(key || value::text, ',' order by key)) from app_settings) as settings_digest
"""


async def _fingerprint(db: Database) -> dict[str, Any]:
    async with db.read(Caller.service()) as conn:
        row = await (await conn.execute(FINGERPRINT_SQL)).fetchone()
    assert row is not None
    return row


async def test_a_second_rebuild_reports_no_change_and_changes_nothing(
    db: Database, test_env: dict[str, str]
) -> None:
    rebuild(env=test_env)  # whatever earlier tests did, the stack is now rebuilt
    before = await _fingerprint(db)

    report = rebuild(env=test_env)

    assert not report.changed, [s for s in report.steps if s.changed]
    assert [s.name for s in report.steps] == [
        "secrets",
        "database",
        "compat",
        "authenticator",
        "migrations",
        "app_settings",
        "markets",
        "schedules",
        "functions",
        "verify",
    ]
    assert await _fingerprint(db) == before


async def _threshold(db: Database) -> Any:
    async with db.read(Caller.service()) as conn:
        row = await (
            await conn.execute("select value from app_settings where key = 'scanner.threshold'")
        ).fetchone()
    return None if row is None else row["value"]


async def test_rebuild_keeps_a_live_setting_that_differs_from_the_file_and_reports_it(
    db: Database, test_env: dict[str, str]
) -> None:
    async with db.write(Caller.service()) as conn:
        await conn.execute("update app_settings set value = '50'::jsonb where key = 'scanner.threshold'")
    try:
        report = rebuild(env=test_env)

        step = next(s for s in report.steps if s.name == "app_settings")
        assert not step.changed
        assert step.detail.startswith(
            "kept the live value of scanner.threshold, which differs from app_settings.json"
        )
        assert "--reset-settings" in step.detail
        assert await _threshold(db) == 50
    finally:
        rebuild(env=test_env, reset_settings=True)


async def test_rebuild_with_reset_settings_restores_a_changed_setting_from_the_versioned_backup(
    db: Database, test_env: dict[str, str]
) -> None:
    async with db.write(Caller.service()) as conn:
        await conn.execute("update app_settings set value = '50'::jsonb where key = 'scanner.threshold'")

    report = rebuild(env=test_env, reset_settings=True)

    step = next(s for s in report.steps if s.name == "app_settings")
    assert step.changed
    assert step.detail == "reset scanner.threshold to app_settings.json"
    assert await _threshold(db) == 80


async def test_rebuild_restores_a_setting_missing_from_the_table(
    db: Database, test_env: dict[str, str]
) -> None:
    async with db.write(Caller.service()) as conn:
        await conn.execute("delete from app_settings where key = 'scanner.threshold'")

    report = rebuild(env=test_env)

    step = next(s for s in report.steps if s.name == "app_settings")
    assert (step.changed, step.detail) == (True, "1 setting(s) restored")
    assert await _threshold(db) == 80


async def test_the_script_dry_run_prints_the_plan_and_changes_nothing(
    db: Database, test_env: dict[str, str]
) -> None:
    async with db.write(Caller.service()) as conn:
        await conn.execute("update app_settings set value = 'true'::jsonb where key = 'live_trading_enabled'")
    before = await _fingerprint(db)

    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "rebuild_system.py"), "--dry-run"],
        env=test_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "dry run: nothing will change" in result.stdout
    assert "would keep the live value of live_trading_enabled" in result.stdout
    assert await _fingerprint(db) == before

    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "rebuild_system.py"), "--dry-run", "--reset-settings"],
        env=test_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "would reset live_trading_enabled to app_settings.json" in result.stdout
    assert await _fingerprint(db) == before
    rebuild(env=test_env, reset_settings=True)  # put the backup back for the tests that follow


def test_the_script_exits_non_zero_with_the_reason_when_the_database_is_unreachable(
    test_env: dict[str, str],
) -> None:
    env = {**test_env, "DATABASE_URL": "postgresql://postgres:x@127.0.0.1:1/postgres"}

    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "rebuild_system.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 1
    assert "DATABASE_URL cannot be reached" in result.stderr
    assert "Traceback" not in result.stderr
