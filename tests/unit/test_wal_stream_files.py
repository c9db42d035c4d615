"""The streamed WAL's file rules: what a restore fetches (the archive, the stream, its ``.partial``), which
segments a receiver must not resume from after a restore, and the folder's cluster marker."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lib.db import archive, wal_receiver


def _fetch(command: str, name: str, dest: Path) -> int:
    shell = command.replace("%f", name).replace("%p", str(dest))
    return subprocess.run(["/bin/sh", "-c", shell], check=False).returncode


def test_the_restore_command_takes_the_archive_then_the_stream_then_the_streams_partial(
    tmp_path: Path,
) -> None:
    wal, stream = tmp_path / "wal dir", tmp_path / "wal-stream"
    wal.mkdir()
    stream.mkdir()
    command = archive.restore_command(wal, stream)
    name = "000000010000000000000007"
    dest = tmp_path / "RECOVERYXLOG"

    assert _fetch(command, name, dest) != 0  # nowhere: recovery ends here

    (stream / f"{name}.partial").write_bytes(b"partial")
    assert _fetch(command, name, dest) == 0
    assert dest.read_bytes() == b"partial"

    (stream / name).write_bytes(b"streamed")
    assert _fetch(command, name, dest) == 0
    assert dest.read_bytes() == b"streamed"

    (wal / name).write_bytes(b"archived")
    assert _fetch(command, name, dest) == 0
    assert dest.read_bytes() == b"archived"


def test_the_gap_check_counts_the_streams_segments_and_its_partial_one(tmp_path: Path) -> None:
    wal, stream = tmp_path / "wal", tmp_path / "wal-stream"
    wal.mkdir()
    stream.mkdir()
    for name in ("000000010000000000000003", "000000010000000000000004"):
        (wal / name).write_bytes(b"")
    (stream / "000000010000000000000005").write_bytes(b"")
    (stream / "000000010000000000000006.partial").write_bytes(b"")
    start = archive.Segment(3, 1)

    assert archive.missing_segments(wal, start) == ([], archive.Segment(4, 1))
    assert archive.missing_segments(wal, start, stream_dir=stream) == ([], archive.Segment(6, 1))


def test_after_a_restore_the_old_timelines_tail_and_foreign_timelines_are_set_aside(tmp_path: Path) -> None:
    names = [
        "000000010000000000000004",
        "000000010000000000000005",  # the fork's segment on the old timeline: re-streamed on timeline 2
        "000000010000000000000006",
        "000000010000000000000007.partial",
        "000000020000000000000005.partial",
        "000000030000000000000002",  # a timeline not on timeline 2's history
        "00000002.history",
        wal_receiver.SYSTEM_ID_FILE,
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    history = "1\t0/5000100\tbefore 2026-12-01 16:00:00+00\n"

    found = wal_receiver.abandoned_segments(tmp_path, 2, history)

    assert [p.name for p in found] == [
        "000000010000000000000005",
        "000000010000000000000006",
        "000000010000000000000007.partial",
        "000000030000000000000002",
    ]
    wal_receiver.move_abandoned(tmp_path, found)
    left = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    assert left == sorted(["000000010000000000000004", "000000020000000000000005.partial", *names[6:]])
    assert len(list((tmp_path / wal_receiver.ABANDONED_DIR).iterdir())) == 4
    assert wal_receiver.abandoned_segments(tmp_path, 2, history) == []  # done once


def test_the_stream_folder_belongs_to_the_cluster_it_first_streamed(tmp_path: Path) -> None:
    wal_receiver.check_owner(tmp_path, "7300000000000000001")
    wal_receiver.check_owner(tmp_path, "7300000000000000001")

    with pytest.raises(wal_receiver.StreamRefused, match="holds the WAL of another cluster"):
        wal_receiver.check_owner(tmp_path, "7300000000000000002")
