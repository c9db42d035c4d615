"""The command line against a database that is not there: one line on stderr, exit 1, quickly.

Three situations, each in a state folder of the test's own (never the session's):

- the embedded database is stopped: the folder has its secrets, and ``stack.json`` records a port on
  which nothing listens;
- ``DATABASE_URL`` names a local port that is verified closed just before;
- a fresh, empty state folder.

No command may show a traceback, hang, or print more than one line of error.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lib.local_state import ensure_local_secrets, update_stack
from tests.integration.cli_helpers import assert_one_line_failure, clean_env, closed_port, run_cli


@pytest.fixture
def stopped_state(tmp_path: Path) -> Path:
    """A state folder with secrets whose embedded database is not running (its port is closed)."""
    state = tmp_path / "state"
    ensure_local_secrets(state)
    update_stack(state, pg_port=closed_port())
    return state


@pytest.mark.parametrize(
    "args",
    [
        ("user", "create", "someone@test.local"),
        ("migrate",),
        ("scan", "-t", "5"),
        ("keys", "rotate"),
        ("status", "-o", "env"),
    ],
    ids=lambda args: " ".join(args),
)
def test_a_stopped_embedded_database_is_one_line_and_exit_1(
    stopped_state: Path, args: tuple[str, ...]
) -> None:
    secrets_before = (stopped_state / "secrets.json").read_text()

    result, elapsed = run_cli(clean_env(stopped_state), *args)

    line = assert_one_line_failure(result, elapsed)
    assert "the embedded PostgreSQL cannot be reached" in line
    assert "aitradex db start" in line
    if args[0] == "keys":  # nothing is changed before the database is known to answer
        assert json.loads((stopped_state / "secrets.json").read_text()) == json.loads(secrets_before)


@pytest.mark.parametrize(
    "args",
    [
        ("user", "create", "someone@test.local"),
        ("migrate",),
        ("scan", "-t", "5"),
        ("keys", "rotate"),
        ("rebuild", "--dry-run"),
        ("up", "--functions-port", "0", "--paper-port", "0"),
    ],
    ids=lambda args: " ".join(args),
)
def test_an_unreachable_database_url_is_one_line_and_exit_1(
    stopped_state: Path, args: tuple[str, ...]
) -> None:
    url = f"postgresql://postgres:not-the-password@127.0.0.1:{closed_port()}/aitradex"

    result, elapsed = run_cli(clean_env(stopped_state, DATABASE_URL=url), *args)

    line = assert_one_line_failure(result, elapsed)
    assert "DATABASE_URL cannot be reached (127.0.0.1:" in line
    assert "not-the-password" not in result.stderr + result.stdout
    if args[0] == "up":
        assert "functions" not in result.stdout  # no URL is announced that will never answer


@pytest.mark.parametrize("args", [("down",), ("db", "stop")], ids=lambda args: " ".join(args))
def test_stopping_in_a_fresh_state_folder_is_one_line_and_exit_1(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    fresh = tmp_path / "fresh"
    fresh.mkdir()

    result, elapsed = run_cli(clean_env(fresh), *args)

    line = assert_one_line_failure(result, elapsed)
    assert f"no local stack in {fresh}" in line
    assert list(fresh.iterdir()) == []  # nothing was written into it


def test_the_csv_path_is_checked_before_the_backtest_computes(tmp_path: Path) -> None:
    target = tmp_path / "missing-folder" / "table.csv"

    result, elapsed = run_cli(
        clean_env(tmp_path), "backtest", "--algorithm", "unirail_core", "--csv", str(target)
    )

    line = assert_one_line_failure(result, elapsed)
    assert f"cannot write {target}" in line
    assert "TP first" not in result.stdout  # refused before any table was computed
