"""AITRADEX_HTTP_WORKERS and ``aitradex up --workers``: the functions server's worker count."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lib.config import REPO_ROOT, load_settings
from lib.errors import ConfigError
from tests.unit.test_config import _env


def test_the_default_is_the_cpu_count_this_process_may_use(tmp_path: Path) -> None:
    assert load_settings(_env(tmp_path)).http.workers == len(os.sched_getaffinity(0))


def test_the_setting_is_read_and_bounded(tmp_path: Path) -> None:
    assert load_settings(_env(tmp_path, AITRADEX_HTTP_WORKERS="3")).http.workers == 3
    for bad in ("0", "65", "two", "1.5"):
        with pytest.raises(ConfigError, match="AITRADEX_HTTP_WORKERS"):
            load_settings(_env(tmp_path, AITRADEX_HTTP_WORKERS=bad))


def test_up_refuses_a_worker_count_out_of_range_as_bad_usage(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lib.cli", "up", "--workers", "0"],
        env=_env(tmp_path, PATH=os.environ.get("PATH", "")),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "AITRADEX_HTTP_WORKERS must be from 1 to 64" in result.stderr
