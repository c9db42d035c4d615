"""Point-in-time restore and the disaster rebuild, on a server of the tests' own (``backup_drill``).

The tests run in file order on one server: each restore replaces its whole cluster.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lib.errors import ConfigError
from lib.ops import backup, stack_runner
from lib.ops.rebuild import rebuild
from lib.ops.restore import HALT_NOTE, restore
from tests.integration.backup_drill import DRILL_DB, Drill, drill_server
from tests.integration.cli_helpers import assert_one_line_failure, clean_env, run_cli


@pytest.fixture(scope="module")
def drill() -> Iterator[Drill]:
    yield from drill_server()


def _asides(drill: Drill) -> list[Path]:
    return sorted(drill.state_dir.glob("pgdata.*"))


def test_restore_refuses_when_there_is_no_backup(drill: Drill, tmp_path: Path) -> None:
    empty = {**drill.env, "AITRADEX_BACKUP_DIR": str(tmp_path / "none")}

    result, elapsed = run_cli(empty, "restore", "--latest", "--yes")

    line = assert_one_line_failure(result, elapsed)
    assert "no base backup in" in line
    assert _asides(drill) == []


def test_a_restore_to_a_time_between_two_writes_keeps_only_the_first(drill: Drill) -> None:
    backup.take_backup(drill.settings)
    noted = drill.insert("first")
    drill.insert("second")
    drill.switch_and_wait_archived()
    assert drill.rows() == ["first", "second"]

    report = restore(drill.settings, target=noted, env=drill.env, start_stack=False)

    assert drill.rows() == ["first"]
    assert drill.trading_halted() is True
    assert report.moved_aside is not None
    assert (report.moved_aside / "PG_VERSION").exists()  # the old data folder is kept, not deleted


def test_restore_latest_keeps_every_archived_commit_halts_trading_and_starts_the_stack(drill: Drill) -> None:
    drill.insert("third")
    drill.switch_and_wait_archived()

    result, _ = run_cli(drill.env, "restore", "--latest", "--yes")

    assert result.returncode == 0, result.stderr
    assert drill.rows() == ["first", "third"]  # "second" was left behind on the older timeline
    # Halted by the restore, then (no account had an error) cleared by the reconciliation it ran.
    assert drill.halt_history()[-2:] == [(True, "aitradex restore"), (False, "aitradex reconcile")]
    assert f"reconcile {DRILL_DB}: the restore's halt is cleared" in result.stdout
    assert HALT_NOTE in result.stdout
    assert "aitradex trading resume" in result.stdout
    assert f"stack of {DRILL_DB}: started" in result.stdout
    assert stack_runner.recorded_running(drill.state_dir, DRILL_DB) is not None
    stack_runner.stop_recorded(drill.state_dir, DRILL_DB)


def test_without_yes_the_restore_says_what_it_would_do_and_changes_nothing(drill: Drill) -> None:
    asides = _asides(drill)
    drill.insert("kept")

    result, elapsed = run_cli(drill.env, "restore", "--latest")

    line = assert_one_line_failure(result, elapsed)
    assert "--yes does it" in line
    assert "restore base backup" in line
    assert _asides(drill) == asides
    assert drill.rows()[-1] == "kept"


def test_restore_refuses_a_target_before_the_oldest_backup_or_after_the_newest_wal(drill: Drill) -> None:
    asides = _asides(drill)

    before, elapsed = run_cli(drill.env, "restore", "--to-time", "2000-01-01T00:00:00Z", "--yes")

    assert "is before the end of the oldest base backup" in assert_one_line_failure(before, elapsed)

    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    after, elapsed = run_cli(drill.env, "restore", "--to-time", later, "--yes")

    assert "is after the newest archived WAL" in assert_one_line_failure(after, elapsed)
    assert _asides(drill) == asides


def test_restore_refuses_a_wal_gap(drill: Drill, tmp_path: Path) -> None:
    info = backup.take_backup(drill.settings)
    for n in range(3):
        drill.insert(f"gap-{n}")
        drill.switch_and_wait_archived()
    wal = drill.backup_dir / "wal"
    after = sorted(
        p.name
        for p in wal.iterdir()
        if (s := backup.archive.Segment.parse(p.name)) is not None
        and s.timeline == info.timeline
        and s.number > info.start_segment.number
    )
    assert len(after) >= 3
    hole = after[1]
    shutil.move(wal / hole, tmp_path / hole)
    try:
        with pytest.raises(ConfigError, match=f"WAL gap: segment {hole} is missing"):
            restore(drill.settings, target=None, env=drill.env, start_stack=False)
        result, elapsed = run_cli(drill.env, "restore", "--latest", "--yes")
        assert f"WAL gap: segment {hole} is missing" in assert_one_line_failure(result, elapsed)
    finally:
        shutil.move(tmp_path / hole, wal / hole)


def test_rebuild_restore_refuses_over_a_data_folder_and_without_the_secrets(
    drill: Drill, tmp_path: Path
) -> None:
    result, elapsed = run_cli(drill.env, "rebuild", "--restore", "latest")

    assert "exists: --restore rebuilds a machine that has no database" in assert_one_line_failure(
        result, elapsed
    )

    bare = clean_env(tmp_path / "new-machine", AITRADEX_BACKUP_DIR=drill.env["AITRADEX_BACKUP_DIR"])
    result, elapsed = run_cli(bare, "rebuild", "--restore", "latest")

    assert "aitradex secrets import" in assert_one_line_failure(result, elapsed)
    assert not (tmp_path / "new-machine" / "secrets.json").exists()  # nothing generated


def test_disaster_sigkill_and_lost_data_folder_then_rebuild_restore_latest(drill: Drill) -> None:
    backup.take_backup(drill.settings)
    drill.insert("before-the-crash")
    drill.switch_and_wait_archived()
    last_archived_commit = time.time()
    drill.insert("in-the-loss-window")  # never archived: at most archive_timeout (60 s) of commits
    postmaster = int((drill.state_dir / "pgdata" / "postmaster.pid").read_text().splitlines()[0])
    os.kill(postmaster, signal.SIGKILL)
    crashed = time.time()
    shutil.rmtree(drill.state_dir / "pgdata")

    started = time.monotonic()
    report = rebuild(env=drill.env, restore="latest", serve=False)
    rto = time.monotonic() - started

    assert [s.name for s in report.steps][:2] == ["restore", "secrets"]
    rows = drill.rows()
    assert rows[-1] in ("before-the-crash", "in-the-loss-window")
    assert "before-the-crash" in rows
    assert drill.trading_halted() is True
    rpo = 0.0 if rows[-1] == "in-the-loss-window" else crashed - last_archived_commit
    print(
        f"\ndisaster drill: RPO {rpo:.2f} s of commits (bound: 60 s), RTO {rto:.1f} s to a restored database"
    )
