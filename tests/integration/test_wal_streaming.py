"""Streaming WAL with ``pg_receivewal`` (issue 13): the slot, the supervisor, and RPO under a second.

On a server of the tests' own (``backup_drill``), in file order: each restore replaces its cluster. The
supervisor runs here in a thread (:func:`lib.db.wal_receiver.supervised`), the same code the stack runs.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import psycopg
import pytest

from lib.db import archive, wal_receiver
from lib.ops import backup, stack_runner
from lib.ops.rebuild import rebuild
from lib.ops.restore import restore
from tests.integration.backup_drill import DRILL_DB, Drill, drill_server
from tests.integration.cli_helpers import run_cli

WAIT_S = 30.0


@pytest.fixture(scope="module")
def drill() -> Iterator[Drill]:
    yield from drill_server()


def _until(what: str, check: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def _streaming(drill: Drill) -> bool:
    return wal_receiver.receiver_status(drill.settings).streaming


def _slot(drill: Drill) -> tuple[str, bool, str] | None:
    with drill.connect() as conn:
        row = conn.execute(
            "select slot_type, active, restart_lsn::text from pg_replication_slots where slot_name = %s",
            (wal_receiver.SLOT,),
        ).fetchone()
    return (str(row[0]), bool(row[1]), str(row[2])) if row else None


def _current_lsn(drill: Drill) -> str:
    with drill.connect() as conn:
        row = conn.execute("select pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    return str(row[0])


def _flushed_past(drill: Drill, lsn: str) -> bool:
    flushed = wal_receiver.receiver_status(drill.settings).flushed_lsn
    return flushed is not None and archive.lsn_value(flushed) >= archive.lsn_value(lsn)


def _count(drill: Drill, table: str) -> int:
    with drill.connect() as conn:
        row = conn.execute(f"select count(*) from {table}").fetchone()
    return int(row[0]) if row else 0


def _postmaster(drill: Drill) -> int:
    return int((drill.state_dir / "pgdata" / "postmaster.pid").read_text().splitlines()[0])


def test_the_receiver_streams_through_a_physical_slot_and_is_restarted_when_killed(drill: Drill) -> None:
    with wal_receiver.supervised(drill.settings) as supervisor:
        assert supervisor is not None
        _until("the receiver streams", lambda: _streaming(drill))
        assert _slot(drill) is not None
        assert _slot(drill)[:2] == ("physical", True)  # type: ignore[index]
        first = supervisor.process.pid

        os.kill(first, signal.SIGKILL)

        _until("a new receiver streams", lambda: supervisor.process.pid != first and _streaming(drill))
        assert supervisor.restarts >= 1
        status = wal_receiver.receiver_status(drill.settings)
        assert status.pid == supervisor.process.pid
        assert status.restarts >= 1
        assert "streaming (pid" in status.describe()
        listed, _ = run_cli(drill.env, "backup", "list")
        assert f"WAL receiver: streaming (pid {status.pid})" in listed.stdout
        assert "restarted 1 time(s)" in listed.stdout
        lsn = _current_lsn(drill)
        drill.insert("after-the-restart")
        _until("the new receiver has the commit", lambda: _flushed_past(drill, lsn))
    assert wal_receiver.read_state(drill.backup_dir)["state"] == "stopped"
    assert _slot(drill)[1] is False  # type: ignore[index]  # the receiver was stopped with the block
    listed, _ = run_cli(drill.env, "backup", "list")
    assert "WAL receiver: not streaming (stopped: the stack stopped)" in listed.stdout


def test_the_stack_runs_the_receiver_and_down_stops_it(drill: Drill) -> None:
    stack_runner.ensure_running(drill.settings, drill.env)
    _until("the stack's receiver streams", lambda: _streaming(drill))
    state = wal_receiver.read_state(drill.backup_dir)
    facts = stack_runner.recorded_running(drill.state_dir, DRILL_DB)
    assert facts is not None
    assert state["supervisor_pid"] == facts["pid"]

    result, _ = run_cli(drill.env, "down")

    assert result.returncode == 0, result.stderr
    assert "stack stopped" in result.stdout
    assert wal_receiver.read_state(drill.backup_dir)["state"] == "stopped"
    assert not _streaming(drill)
    assert _slot(drill)[1] is False  # type: ignore[index]


def test_a_restarted_receiver_resumes_from_its_slot_which_kept_the_wal_it_missed(drill: Drill) -> None:
    slot = _slot(drill)
    assert slot is not None
    assert slot[1] is False
    kept_from = slot[2]
    # While no receiver runs: several segments' worth of WAL, and checkpoints that would recycle them.
    for n in range(3):
        drill.insert(f"missed-{n}")
        drill.switch_and_wait_archived()
        with drill.connect() as conn:
            conn.execute("checkpoint")
    assert _slot(drill)[2] == kept_from  # type: ignore[index]  # the slot held its position
    with drill.connect() as conn:
        row = conn.execute(
            "select count(*) from pg_ls_waldir() where name = pg_walfile_name(%s::pg_lsn)", (kept_from,)
        ).fetchone()
    assert row is not None
    assert row[0] == 1
    target = _current_lsn(drill)

    with wal_receiver.supervised(drill.settings):
        _until("the receiver caught up", lambda: _flushed_past(drill, target))

    stream = backup.stream_dir(drill.settings.backups)
    start = archive.Segment.of_lsn(kept_from, 1)
    only_streamed = drill.backup_dir / "no-archive-here"
    missing, last = archive.missing_segments(only_streamed, start, stream_dir=stream)
    assert missing == []  # every segment from the slot's position on was streamed, none skipped
    assert last is not None
    assert last.number >= archive.Segment.of_lsn(target, 1).number
    assert archive.lsn_value(_slot(drill)[2]) >= archive.lsn_value(target)  # type: ignore[index]


def _writer(drill: Drill, stop: threading.Event, errors: list[BaseException]) -> None:
    """Commit a timestamped row every 10 ms until stopped or the server dies."""
    try:
        with drill.connect() as conn:
            conn.execute("create table if not exists rpo_rows (id bigserial primary key, t timestamptz)")
            while not stop.is_set():
                conn.execute("insert into rpo_rows (t) values (clock_timestamp())")
                stop.wait(0.01)
    except psycopg.OperationalError:
        return  # the kill
    except BaseException as exc:
        errors.append(exc)


def test_commits_made_under_a_second_before_a_sigkill_are_back_after_restore_latest(drill: Drill) -> None:
    backup.take_backup(drill.settings)
    with drill.connect() as conn:
        conn.execute("create table if not exists rpo_rows (id bigserial primary key, t timestamptz)")
    with wal_receiver.supervised(drill.settings):
        _until("the receiver streams", lambda: _streaming(drill))
        stop, errors = threading.Event(), []
        writer = threading.Thread(target=_writer, args=(drill, stop, errors), daemon=True)
        writer.start()
        _until("the writer has committed rows", lambda: _count(drill, "rpo_rows") >= 100)
        with drill.connect() as conn:
            row = conn.execute(
                "select pg_walfile_name(pg_current_wal_lsn()), coalesce(last_archived_wal, '') "
                "from pg_stat_archiver"
            ).fetchone()
        assert row is not None
        os.kill(_postmaster(drill), signal.SIGKILL)
        killed = datetime.now(UTC)
        stop.set()
        writer.join(WAIT_S)
        assert not errors
        # archive_timeout (60 s) had not fired: the segment holding the last commits was never archived.
        current, archived = row
        assert current > archived
    assert not (drill.backup_dir / "wal" / current).exists()
    shutil.rmtree(drill.state_dir / "pgdata")

    rebuild(env=drill.env, restore="latest", serve=False)

    with drill.connect() as conn:
        newest = conn.execute("select max(t) from rpo_rows").fetchone()
    assert newest is not None
    assert newest[0] is not None
    rpo = (killed - newest[0]).total_seconds()
    print(f"\nstreaming WAL: RPO {rpo:.3f} s of commits lost after SIGKILL (goal < 1 s)")
    assert rpo < 1.0


def test_after_a_restore_to_an_earlier_time_the_receiver_streams_the_new_timeline(drill: Drill) -> None:
    with wal_receiver.supervised(drill.settings):
        _until("the receiver streams", lambda: _streaming(drill))
        noted = drill.insert("kept-by-the-pitr")
        lsn = _current_lsn(drill)
        _until("streamed", lambda: _flushed_past(drill, lsn))
    for n in range(2):  # the stream then runs on, on this timeline, past the target
        drill.insert(f"after-the-target-{n}")
        drill.switch_and_wait_archived()
    with wal_receiver.supervised(drill.settings):
        lsn = _current_lsn(drill)
        _until("streamed", lambda: _flushed_past(drill, lsn))

    restore(drill.settings, target=noted, env=drill.env, start_stack=False)

    assert drill.rows()[-1] == "kept-by-the-pitr"
    with drill.connect() as conn:
        timeline = wal_receiver.server_identity(conn)[1]
    with wal_receiver.supervised(drill.settings):
        _until("the receiver streams the new timeline", lambda: _streaming(drill))
        lsn = _current_lsn(drill)
        drill.insert("on-the-new-timeline")
        _until("streamed", lambda: _flushed_past(drill, lsn))
    stream = backup.stream_dir(drill.settings.backups)
    assert list((stream / wal_receiver.ABANDONED_DIR).iterdir())  # the old timeline's tail, kept aside
    assert any(p.name.startswith(f"{timeline:08X}") for p in stream.iterdir())
