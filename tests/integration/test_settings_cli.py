"""``aitradex settings get|set|diff|export`` against the real test database, run as a user would.

The test database's settings are the versioned file's when the session starts (the session's rebuild
resets them); a test that changes one puts the file's value back before it ends.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lib.db.session import Caller, Database
from lib.ops.rebuild import APP_SETTINGS_FILE, load_seed
from tests.integration.cli_helpers import assert_one_line_failure, run_cli

KEY = "scanner.signal_ttl_bars"  # seeded 3; nothing in the other tests depends on it changing
SEED = {row["key"]: row for row in load_seed(APP_SETTINGS_FILE)}


def _settings(test_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result, _ = run_cli(test_env, "settings", *args)
    return result


async def _live(db: Database) -> dict[str, Any]:
    async with db.read(Caller.service()) as conn:
        rows = await (await conn.execute("select key, value, description from app_settings")).fetchall()
    return {row["key"]: (row["value"], row["description"]) for row in rows}


async def _audit_rows_after(db: Database, last_id: int) -> list[dict[str, Any]]:
    async with db.read(Caller.service()) as conn:
        return await (
            await conn.execute(
                "select action, record_id, actor_role, user_agent, old_values, new_values from audit_log "
                "where table_name = 'app_settings' and id > %s order by id",
                (last_id,),
            )
        ).fetchall()


async def _last_audit_id(db: Database) -> int:
    async with db.read(Caller.service()) as conn:
        row = await (await conn.execute("select coalesce(max(id), 0) as id from audit_log")).fetchone()
    assert row is not None
    return int(row["id"])


@pytest.fixture
def restore_key(test_env: dict[str, str]) -> Iterator[None]:
    """Put the file's value of KEY back after the test, through the command itself."""
    yield
    result = _settings(test_env, "set", KEY, json.dumps(SEED[KEY]["value"]))
    assert result.returncode == 0, result.stderr


async def test_set_writes_the_value_with_an_audit_row_naming_the_operator_and_the_old_and_new_values(
    db: Database, test_env: dict[str, str], restore_key: None
) -> None:
    last = await _last_audit_id(db)

    result = _settings(test_env, "set", KEY, "4")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"{KEY}: 3 -> 4"
    assert "note:" not in result.stdout  # read at each scan: no restart needed
    assert (await _live(db))[KEY][0] == 4
    (entry,) = await _audit_rows_after(db, last)
    assert (entry["action"], entry["record_id"], entry["actor_role"]) == ("UPDATE", KEY, "service_role")
    assert entry["user_agent"].startswith("aitradex-settings-set (operator ")
    assert (entry["old_values"]["value"], entry["new_values"]["value"]) == (3, 4)


async def test_setting_the_same_value_again_writes_nothing(db: Database, test_env: dict[str, str]) -> None:
    last = await _last_audit_id(db)

    result = _settings(test_env, "set", KEY, "3")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{KEY}: unchanged (3)"
    assert await _audit_rows_after(db, last) == []


async def test_set_takes_a_plain_word_as_a_string(db: Database, test_env: dict[str, str]) -> None:
    key = "exchange.environment"
    try:
        result = _settings(test_env, "set", key, "testnet")

        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[0] == f'{key}: "paper" -> "testnet"'
        assert "note: a running stack read exchange.environment when it started" in result.stdout
        assert (await _live(db))[key][0] == "testnet"
    finally:
        assert _settings(test_env, "set", key, "paper").returncode == 0


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [  # one of each kind of refusal; tests/unit/test_settings_rules.py has the rest
        ("scanner.threshold", "101", "scanner.threshold must be 0..100"),
        ("scanner.kline_limit", "300.5", "scanner.kline_limit would be read as 300"),
        ("live_trading_enabled", "1", "live_trading_enabled must be a JSON boolean, got number"),
        ("scanner.universe", '{"category": "options"}', "scanner.universe.category must be one of"),
        ("no.such.key", "1", "unknown setting 'no.such.key'"),
    ],
)
async def test_an_unknown_key_or_a_bad_value_is_refused_and_nothing_is_written(
    db: Database, test_env: dict[str, str], key: str, value: str, says: str
) -> None:
    before, last = await _live(db), await _last_audit_id(db)

    result, elapsed = run_cli(test_env, "settings", "set", key, value)

    line = assert_one_line_failure(result, elapsed)
    assert says in line
    assert await _live(db) == before
    assert await _audit_rows_after(db, last) == []


def test_get_prints_one_value_or_every_value_as_json(test_env: dict[str, str]) -> None:
    one = _settings(test_env, "get", "scanner.timeframes")
    every = _settings(test_env, "get")

    assert one.returncode == every.returncode == 0, one.stderr + every.stderr
    assert json.loads(one.stdout) == SEED["scanner.timeframes"]["value"]
    values = json.loads(every.stdout)
    assert set(values) >= set(SEED)
    assert values["scanner.threshold"] == SEED["scanner.threshold"]["value"]


def test_get_of_an_absent_key_fails_in_one_line(test_env: dict[str, str]) -> None:
    result, elapsed = run_cli(test_env, "settings", "get", "no.such.key")

    assert "no setting 'no.such.key'" in assert_one_line_failure(result, elapsed)


def test_diff_compares_with_the_versioned_file_by_default_and_exits_1_naming_the_difference(
    test_env: dict[str, str], restore_key: None
) -> None:
    before = _settings(test_env, "diff")
    assert f"{KEY}:" not in before.stdout

    assert _settings(test_env, "set", KEY, "5").returncode == 0
    differ = _settings(test_env, "diff")

    assert differ.returncode == 1, differ.stderr
    assert differ.stdout.splitlines()[0] == f"live settings differ from {APP_SETTINGS_FILE}:"
    assert f"  ~ {KEY}: file 3 -> live 5" in differ.stdout.splitlines()


def test_export_then_diff_is_equal_and_a_changed_file_differs_key_by_key(
    test_env: dict[str, str], tmp_path: Path
) -> None:
    exported = tmp_path / "app_settings.json"

    result = _settings(test_env, "export", "--out", str(exported))

    assert result.returncode == 0, result.stderr
    equal = _settings(test_env, "diff", "--file", str(exported))
    assert (equal.returncode, equal.stdout.strip()) == (0, f"live settings match {exported}")
    rows = json.loads(exported.read_text())
    assert [row["key"] for row in rows] == sorted(row["key"] for row in rows)
    assert {row["key"]: row["description"] for row in rows if row["key"] in SEED} == {
        k: r["description"] for k, r in SEED.items()
    }
    assert len(exported.read_text().splitlines()) == len(rows) + 2  # one setting a line, between [ and ]

    edited = [row for row in rows if row["key"] != "executor.batch_size"]
    edited += [{"key": "file.only", "value": 1, "description": ""}]
    for row in edited:
        if row["key"] == "scanner.threshold":
            row["value"] = 75
    exported.write_text(json.dumps(edited))
    differ = _settings(test_env, "diff", "--file", str(exported))

    assert differ.returncode == 1
    assert differ.stdout.splitlines()[1:] == [
        "  + executor.batch_size: 50 (live only)",
        "  - file.only: 1 (file only)",
        "  ~ scanner.threshold: file 75 -> live 80",
    ]


def test_export_is_stable_byte_for_byte(test_env: dict[str, str], tmp_path: Path) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"

    assert _settings(test_env, "export", "--out", str(first)).returncode == 0
    assert _settings(test_env, "export", "--out", str(second)).returncode == 0

    assert first.read_bytes() == second.read_bytes()
    assert load_seed(first) == json.loads(first.read_text())  # the rebuild can read what it writes
