"""``status``, ``up`` and ``clean-state`` against stacks of the test's own.

Each stack here runs in its own state folder (a copy of the session's secrets, so the same JWT secret)
on free ports, against the session's test database through ``DATABASE_URL``, and is stopped by the
test. The session's own stack is never touched.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lib.config import REPO_ROOT, Settings
from lib.db.embedded import EmbeddedPostgres
from lib.db.target import DatabaseTarget
from lib.local_state import ensure_local_secrets, read_local_secret, update_stack
from lib.ops.stack_runner import DEFAULT_FUNCTIONS_PORT, DEFAULT_PAPER_PORT, _pid_alive
from lib.services.auth import tokens
from tests.integration.cli_helpers import (
    assert_one_line_failure,
    clean_env,
    closed_port,
    copy_secrets,
    run_cli,
    start_up,
    stop_process,
)

DB_NAME = "aitradex_test"


def env_lines(stdout: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in stdout.splitlines())


@pytest.fixture
def own_env(tmp_path: Path, stack: DatabaseTarget, settings: Settings) -> dict[str, str]:
    """A state folder of the test's own, with the session's secrets, on the test database."""
    state = copy_secrets(settings.state_dir, tmp_path / "state")
    return clean_env(state, DATABASE_URL=stack.admin_url, AITRADEX_DB_NAME=DB_NAME)


@pytest.fixture
def own_stack(own_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, Any]]:
    """``aitradex up --functions-port 0 --paper-port 0`` in the test's own folder; stopped afterwards."""
    process, facts = start_up(own_env, tmp_path / "up.log", "--functions-port", "0", "--paper-port", "0")
    try:
        yield facts
    finally:
        stop_process(process)


def test_port_0_means_any_free_port_and_status_env_tells_which(
    own_env: dict[str, str], own_stack: dict[str, Any]
) -> None:
    result, _ = run_cli(own_env, "status", "-o", "env")

    assert result.returncode == 0, result.stderr
    values = env_lines(result.stdout)
    assert values["API_URL"] == own_stack["api_url"]
    assert values["FUNCTIONS_URL"] == f"{own_stack['api_url']}/functions/v1"
    assert values["PAPER_EXCHANGE_URL"] == own_stack["paper_exchange_url"]
    assert not values["API_URL"].endswith(f":{DEFAULT_FUNCTIONS_PORT}")
    assert not values["PAPER_EXCHANGE_URL"].endswith(f":{DEFAULT_PAPER_PORT}")
    assert httpx.get(f"{values['API_URL']}/health", timeout=5).status_code == 200
    assert httpx.get(f"{values['PAPER_EXCHANGE_URL']}/v5/market/time", timeout=5).json()["retCode"] == 0


def test_status_says_the_database_is_down_when_only_the_database_is_down(
    own_env: dict[str, str], own_stack: dict[str, Any]
) -> None:
    down = {**own_env, "DATABASE_URL": f"postgresql://postgres:x@127.0.0.1:{closed_port()}/{DB_NAME}"}

    result, elapsed = run_cli(down, "status", "-o", "env")

    line = assert_one_line_failure(result, elapsed)
    assert "DATABASE_URL cannot be reached" in line
    assert "not running" not in line
    values = env_lines(result.stdout)
    assert values["API_URL"] == own_stack["api_url"]  # what is known is still printed
    assert {"DB_URL", "ANON_KEY", "SERVICE_ROLE_KEY", "JWT_SECRET"} <= set(values)


def test_status_prints_what_it_knows_and_exits_1_when_the_stack_is_not_running(
    own_env: dict[str, str],
) -> None:
    result, elapsed = run_cli(own_env, "status", "-o", "env")

    line = assert_one_line_failure(result, elapsed)
    assert "the functions server and paper exchange are not running" in line
    assert "cannot be reached" not in line  # the database is up
    values = env_lines(result.stdout)
    assert set(values) == {"DB_URL", "ANON_KEY", "SERVICE_ROLE_KEY", "JWT_SECRET"}
    assert values["DB_URL"].startswith("postgresql://authenticator:")


def test_the_api_keys_are_minted_once_and_kept_in_the_state_folder(own_env: dict[str, str]) -> None:
    first, _ = run_cli(own_env, "status", "-o", "env")
    # The keys carry their issue time in seconds: the second call must come in a later second.
    issued = tokens.verify(env_lines(first.stdout)["ANON_KEY"], env_lines(first.stdout)["JWT_SECRET"])["iat"]
    while int(time.time()) <= issued:
        time.sleep(0.05)

    second, _ = run_cli(own_env, "status", "-o", "env")

    before, after = env_lines(first.stdout), env_lines(second.stdout)
    assert after["ANON_KEY"] == before["ANON_KEY"]
    assert after["SERVICE_ROLE_KEY"] == before["SERVICE_ROLE_KEY"]
    state = Path(own_env["AITRADEX_STATE_DIR"])
    assert read_local_secret(state, "ANON_KEY") == before["ANON_KEY"]
    assert tokens.verify(before["SERVICE_ROLE_KEY"], before["JWT_SECRET"])["role"] == "service_role"


def test_a_port_asked_for_by_number_that_is_busy_fails_before_anything_is_announced(
    own_env: dict[str, str],
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        result, elapsed = run_cli(own_env, "up", "--functions-port", "0", "--paper-port", str(port))

    line = assert_one_line_failure(result, elapsed)
    assert f"cannot listen on 127.0.0.1:{port} for the paper exchange" in line
    assert "functions" not in result.stdout


def test_clean_state_stops_the_stack_and_the_database_then_deletes_the_folder(
    own_env: dict[str, str], tmp_path: Path
) -> None:
    state = Path(own_env["AITRADEX_STATE_DIR"])
    process, facts = start_up(own_env, tmp_path / "up.log", "--functions-port", "0", "--paper-port", "0")
    server = EmbeddedPostgres(data_dir=state / "pgdata", port=closed_port())
    try:
        server.initialize("a-superuser-password")
        server.start()
        assert server.is_running()

        # The Makefile's target, as a user runs it: AITRADEX_STATE_DIR names the folder.
        result = subprocess.run(
            ["make", "-s", "-C", str(REPO_ROOT), "clean-state"],
            env=own_env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

        assert result.returncode == 0, result.stdout + result.stderr
        assert f"stopped the stack of database {DB_NAME} (pid {facts['pid']})" in result.stdout
        assert "stopped the embedded PostgreSQL" in result.stdout
        assert process.wait(timeout=5) is not None
        assert not _pid_alive(int(facts["pid"]))
        assert not server.is_running()
        assert not state.exists()
    finally:
        stop_process(process)
        if server.is_initialized():
            server.stop()


def test_clean_state_refuses_a_folder_that_is_not_a_state_folder(tmp_path: Path) -> None:
    elsewhere = tmp_path / "important"
    elsewhere.mkdir()
    (elsewhere / "notes.txt").write_text("keep me")

    result, elapsed = run_cli(clean_env(elsewhere), "clean-state")

    line = assert_one_line_failure(result, elapsed)
    assert "refusing to delete" in line
    assert (elsewhere / "notes.txt").read_text() == "keep me"


def test_clean_state_in_a_folder_with_nothing_running_deletes_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ensure_local_secrets(state)
    update_stack(state, services={DB_NAME: {"pid": 2**22 + 12345, "api_url": "http://127.0.0.1:1"}})

    result, _ = run_cli(clean_env(state), "clean-state")

    assert result.returncode == 0, result.stderr
    assert not state.exists()
