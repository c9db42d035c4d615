"""Running ``aitradex`` as a user would, in a state folder of the test's own (never the session's)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from lib.config import REPO_ROOT
from lib.local_state import read_services

DEADLINE_S = 10.0
# Variables that would point the commands at the session's stack instead of the test's folder.
_STACK_VARIABLES = ("DATABASE_URL", "SUPABASE_DB_URL", "JWT_SECRET", "POSTGRES_SUPERUSER_PASSWORD")


def closed_port() -> int:
    """A local TCP port nothing listens on, checked by connecting to it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    with socket.socket() as client, pytest.raises(ConnectionRefusedError):
        client.connect(("127.0.0.1", port))
    return port


def clean_env(state_dir: Path, **extra: str) -> dict[str, str]:
    """The test process's environment without anything naming a stack, on ``state_dir``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AITRADEX_") and k not in _STACK_VARIABLES}
    return {**env, "AITRADEX_STATE_DIR": str(state_dir), **extra}


def run_cli(env: dict[str, str], *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run ``aitradex ARGS`` to completion (a hang fails the test); returns the result and its duration."""
    started = time.monotonic()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "lib.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=3 * DEADLINE_S,
            check=False,
            cwd=REPO_ROOT,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"aitradex {' '.join(args)} hung for {3 * DEADLINE_S:.0f} s")
    return result, time.monotonic() - started


def assert_one_line_failure(result: subprocess.CompletedProcess[str], elapsed: float) -> str:
    """Exit 1 within the deadline, one ``error:`` line on stderr, no traceback anywhere; returns the line."""
    assert "Traceback" not in result.stderr + result.stdout, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert result.returncode == 1, result.stderr
    assert elapsed < DEADLINE_S, f"took {elapsed:.1f} s"
    return lines[0]


def copy_secrets(source_state: Path, state_dir: Path) -> Path:
    """A new state folder holding only a copy of ``source_state``'s secrets (the same JWT secret and keys)."""
    state_dir.mkdir(parents=True)
    (state_dir / "secrets.json").write_bytes((source_state / "secrets.json").read_bytes())
    (state_dir / "secrets.json").chmod(0o600)
    return state_dir


def start_up(
    env: dict[str, str], log_path: Path, *args: str, timeout_s: float = 60.0
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start ``aitradex up ARGS`` in the background and wait until its recorded URLs answer."""
    state_dir, db_name = Path(env["AITRADEX_STATE_DIR"]), env.get("AITRADEX_DB_NAME", "aitradex")
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "lib.cli", "up", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
        )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"aitradex up exited with {process.returncode}: {log_path.read_text()[-2000:]}")
        facts = read_services(state_dir, db_name)
        if facts.get("pid") == process.pid and _answers(str(facts["api_url"])):
            return process, facts
        time.sleep(0.2)
    stop_process(process)
    pytest.fail(f"aitradex up did not answer within {timeout_s:.0f} s")


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited after 20 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
