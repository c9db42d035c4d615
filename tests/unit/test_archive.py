"""The WAL archive's pure parts: the copy command's refusals, segment names, timelines, the gap check,
and the repair of a binary whose dynamic section sits on a read-only page."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

from lib.db import archive
from lib.db.pgtools import writable_dynamic


def _archive(command: str, source: Path, name: str) -> int:
    shell = command.replace("%p", str(source)).replace("%f", name)
    return subprocess.run(["/bin/sh", "-c", shell], check=False).returncode


def test_the_archive_command_copies_once_accepts_the_same_segment_again_and_refuses_a_different_one(
    tmp_path: Path,
) -> None:
    wal = tmp_path / "wal dir"  # a space: the command quotes the folder
    wal.mkdir()
    segment = tmp_path / "000000010000000000000003"
    segment.write_bytes(b"a" * 1000)
    command = archive.archive_command(wal)

    assert _archive(command, segment, segment.name) == 0
    assert (wal / segment.name).read_bytes() == b"a" * 1000
    assert not list(wal.glob("*.tmp"))
    assert _archive(command, segment, segment.name) == 0  # archived again after a crash: done

    segment.write_bytes(b"b" * 1000)
    assert _archive(command, segment, segment.name) != 0  # never overwritten
    assert (wal / segment.name).read_bytes() == b"a" * 1000


def test_segment_names_and_lsns() -> None:
    segment = archive.Segment.of_lsn("1/3000028", 2)

    assert segment.name == "000000020000000100000003"
    assert archive.Segment.parse(segment.name) == segment
    assert archive.Segment.parse("00000002.history") is None


def _touch(wal: Path, *names: str) -> None:
    for name in names:
        (wal / name).write_bytes(b"")


def test_the_gap_check_follows_the_newest_timeline_and_names_the_first_hole(tmp_path: Path) -> None:
    wal = tmp_path
    _touch(wal, "000000010000000000000003", "000000010000000000000004", "000000010000000000000005")
    # Timeline 2 branched off inside segment 5: from there on, timeline 2's segments are the ones read.
    (wal / "00000002.history").write_text("1\t0/5000100\tbefore 2026-12-01 16:00:00+00\n")
    _touch(wal, "000000020000000000000005", "000000020000000000000006")
    start = archive.Segment(3, 1)

    assert archive.missing_segments(wal, start) == ([], archive.Segment(6, 2))

    (wal / "000000010000000000000004").unlink()
    missing, _ = archive.missing_segments(wal, start)
    assert missing == ["000000010000000000000004"]

    missing, _ = archive.missing_segments(wal, start, also=["000000010000000000000004"])
    assert missing == []  # held by the base backup itself


def test_writable_dynamic_sets_the_write_flag_on_the_load_segment_under_the_dynamic_section() -> None:
    header = bytearray(64)
    header[0:4] = b"\x7fELF"
    phoff, entsize = 64, 56
    struct.pack_into("<Q", header, 0x20, phoff)
    struct.pack_into("<HH", header, 0x36, entsize, 3)
    phdrs = b"".join(
        [
            struct.pack("<IIQQQQQQ", 1, 6, 0, 0x3FF000, 0x3FF000, 0xF38, 0xF38, 0x1000),  # RW
            struct.pack("<IIQQQQQQ", 1, 4, 0x1EA6, 0x400EA6, 0x400EA6, 0x8FA, 0x8FA, 0x1000),  # R
            struct.pack("<IIQQQQQQ", 2, 6, 0xF60, 0x3FFF60, 0x3FFF60, 0x220, 0x220, 8),  # DYNAMIC
        ]
    )
    fixed = writable_dynamic(bytes(header) + phdrs)

    flags = [struct.unpack_from("<I", fixed, phoff + i * entsize + 4)[0] for i in range(3)]
    assert flags == [6, 6, 6]
