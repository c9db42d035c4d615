"""Continuous WAL archiving of the embedded server, and the WAL archive's facts.

Two copies of the WAL leave the data folder. ``pg_receivewal`` (:mod:`lib.db.wal_receiver`) streams
every record into ``<backup_dir>/wal-stream`` as the server writes it, flushing each one: that bounds the
loss window to what was committed but not yet received (milliseconds). Behind it, as a safety net for
when no receiver runs, the server archives each completed 16 MiB WAL segment with ``archive_command``
into ``<backup_dir>/wal``, and ``archive_timeout`` forces a segment switch after 60 s without one, so
without a receiver at most the last :data:`ARCHIVE_TIMEOUT_S` seconds of commits exist only in the data
folder. A restore reads both folders, including the receiver's last, unfinished ``.partial`` segment.
The copy command is the one PostgreSQL's documentation asks for: it never overwrites an archived
segment (an identical one, archived again after a crash, counts as done; a different one is an error
the server retries and logs), and it writes a temporary file, flushes it and renames it, so a crash
never leaves half a segment under a segment's name.

Also here: WAL segment names, the timeline history, the continuity check a restore makes before it
stops anything, and the few SQL statements the backup commands need.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

ARCHIVE_TIMEOUT_S = 60
WAL_DIR = "wal"
STREAM_DIR = "wal-stream"
PARTIAL = ".partial"
#: The most WAL the receiver's replication slot may hold back in ``pg_wal`` while no receiver runs. Past
#: it the server drops the slot's claim (a receiver dead for long must not fill the disk and stop the
#: database); the archive still has every segment.
MAX_SLOT_WAL_KEEP = "4GB"
SEGMENT_BYTES = 16 * 1024 * 1024
SEGMENTS_PER_ID = 0x1_0000_0000 // SEGMENT_BYTES
SEGMENT = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$")
HISTORY = re.compile(r"^([0-9A-F]{8})\.history$")


def archive_command(wal_dir: Path) -> str:
    """The shell command the server runs for each segment (``%p``: its path, ``%f``: its name)."""
    dest = shlex.quote(str(wal_dir)) + "/%f"
    return (
        f'if [ -f {dest} ]; then cmp -s "%p" {dest}; '
        f'else cp "%p" {dest}.tmp && sync {dest}.tmp && mv {dest}.tmp {dest}; fi'
    )


def restore_command(wal_dir: Path, stream_dir: Path | None = None) -> str:
    """The command recovery runs to fetch a segment or history file: from the archive, else from the
    receiver's stream, else the stream's unfinished ``<segment>.partial`` copied under the segment's name
    (what PostgreSQL's documentation of ``pg_receivewal`` asks for: the partial segment is renamed for
    recovery; replay stops at its last complete record)."""
    archived = shlex.quote(str(wal_dir)) + '/"%f"'
    if stream_dir is None:
        return f'cp {archived} "%p"'
    streamed = shlex.quote(str(stream_dir)) + '/"%f"'
    return (
        f'if [ -f {archived} ]; then cp {archived} "%p"; '
        f'elif [ -f {streamed} ]; then cp {streamed} "%p"; '
        f'else cp {streamed}{PARTIAL} "%p"; fi'
    )


def server_options(wal_dir: Path) -> list[str]:
    """``postgres -c`` settings that turn archiving on (given at each start, never stored in the data
    folder, so a restored data folder archives where this machine says)."""
    return [
        "wal_level=replica",
        f"max_slot_wal_keep_size={MAX_SLOT_WAL_KEEP}",
        "archive_mode=on",
        f"archive_timeout={ARCHIVE_TIMEOUT_S}",
        f"archive_command={archive_command(wal_dir)}",
    ]


# -- segments and timelines ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, order=True)
class Segment:
    """One WAL segment: its timeline and its position (``log * SEGMENTS_PER_ID + seg``)."""

    number: int
    timeline: int

    @classmethod
    def parse(cls, name: str) -> Segment | None:
        match = SEGMENT.match(name)
        if match is None:
            return None
        tli, log, seg = (int(part, 16) for part in match.groups())
        return cls(log * SEGMENTS_PER_ID + seg, tli)

    @classmethod
    def of_lsn(cls, lsn: str, timeline: int) -> Segment:
        """The segment holding ``lsn`` (``"0/3000028"``) on ``timeline``."""
        return cls(lsn_value(lsn) // SEGMENT_BYTES, timeline)

    @property
    def name(self) -> str:
        log, seg = divmod(self.number, SEGMENTS_PER_ID)
        return f"{self.timeline:08X}{log:08X}{seg:08X}"


def lsn_value(lsn: str) -> int:
    """``"16/B374D848"`` as a byte position."""
    high, _, low = lsn.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def _folders(wal_dir: Path, stream_dir: Path | None) -> list[Path]:
    return [d for d in (wal_dir, stream_dir) if d is not None and d.is_dir()]


def archived_segments(wal_dir: Path, stream_dir: Path | None = None) -> dict[int, set[int]]:
    """``{timeline: {segment numbers}}`` of the segments a recovery can fetch: the archive's, and the
    stream's, complete or ``.partial`` (the receiver's last one, replayed up to its last record)."""
    found: dict[int, set[int]] = {}
    for folder in _folders(wal_dir, stream_dir):
        for path in folder.iterdir():
            name = path.name.removesuffix(PARTIAL) if folder == stream_dir else path.name
            segment = Segment.parse(name)
            if segment is not None:
                found.setdefault(segment.timeline, set()).add(segment.number)
    return found


def latest_timeline(wal_dir: Path, at_least: int, stream_dir: Path | None = None) -> int:
    """The newest timeline the archive (or the stream) knows: its highest history file, or ``at_least``."""
    timelines = [
        int(m.group(1), 16)
        for folder in _folders(wal_dir, stream_dir)
        for p in folder.glob("*.history")
        if (m := HISTORY.match(p.name))
    ]
    return max([at_least, *timelines])


def timeline_path(
    wal_dir: Path, timeline: int, stream_dir: Path | None = None
) -> list[tuple[int, int | None]]:
    """``[(timeline, first segment number on the next one or None)]`` from timeline 1 to ``timeline``.

    Read from ``<timeline>.history``: each line is ``parent switchpoint reason``. The segment holding a
    switch point is read from the new timeline (it starts with a copy of the old one up to there).
    """
    histories = [f / f"{timeline:08X}.history" for f in _folders(wal_dir, stream_dir)]
    history = next((h for h in histories if h.exists()), wal_dir / f"{timeline:08X}.history")
    path: list[tuple[int, int | None]] = []
    if timeline > 1 and history.exists():
        for line in history.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0].isdigit():
                path.append((int(parts[0]), lsn_value(parts[1]) // SEGMENT_BYTES))
    path.append((timeline, None))
    return path


def missing_segments(
    wal_dir: Path, start: Segment, also: Sequence[str] = (), stream_dir: Path | None = None
) -> tuple[list[str], Segment | None]:
    """Segments a recovery from ``start`` to the archive's end lacks, and the archive's last segment.

    ``also`` names segments available besides the archive and the stream (those inside the base
    backup). It follows
    the newest timeline's history from ``start``'s timeline; a hole anywhere on that path is missing
    (the first one named is where replay would stop). ``(["<start>"], None)`` when nothing from
    ``start`` on is available.
    """
    archived = archived_segments(wal_dir, stream_dir)
    for name in also:
        if (extra := Segment.parse(name)) is not None:
            archived.setdefault(extra.timeline, set()).add(extra.number)
    wanted: list[Segment] = []
    number = start.number
    last: Segment | None = None
    newest = latest_timeline(wal_dir, start.timeline, stream_dir)
    for tli, switch in timeline_path(wal_dir, newest, stream_dir):
        if tli < start.timeline:
            continue
        have = archived.get(tli, set())
        end = (switch - 1) if switch is not None else max(have, default=number - 1)
        for n in range(number, end + 1):
            wanted.append(Segment(n, tli))
        if end >= number:
            last = Segment(end, tli)
        number = max(number, switch) if switch is not None else number
    missing = [s.name for s in wanted if s.number not in archived.get(s.timeline, set())]
    if last is None:
        return [start.name], None
    return missing, last


# -- SQL the backup commands need -------------------------------------------------------------------

Conn = psycopg.Connection[Any]


def archiving_status(conn: Conn) -> tuple[str, str]:
    """``(archive_mode, archive_command)`` of the running server."""
    mode = conn.execute("select current_setting('archive_mode')").fetchone()
    command = conn.execute("select current_setting('archive_command')").fetchone()
    return (str(mode[0]) if mode else "", str(command[0]) if command else "")


def switch_wal(conn: Conn) -> str:
    """Close the current segment so it is archived now (``pg_switch_wal()``); returns the switch LSN."""
    row = conn.execute("select pg_switch_wal()::text").fetchone()
    return str(row[0]) if row else ""


def archived_through(conn: Conn, lsn: str) -> bool:
    """Whether the segment ending just before ``lsn`` (what :func:`switch_wal` returned) is archived."""
    row = conn.execute(
        "select coalesce(last_archived_wal >= pg_walfile_name(%s::pg_lsn - 1), false) from pg_stat_archiver",
        (lsn,),
    ).fetchone()
    return bool(row and row[0])


def in_recovery(conn: Conn) -> bool:
    """Whether the server is still replaying WAL (``pg_is_in_recovery()``)."""
    row = conn.execute("select pg_is_in_recovery()").fetchone()
    return bool(row and row[0])


def databases(conn: Conn) -> list[str]:
    """The cluster's own databases (not the templates)."""
    rows = conn.execute("select datname from pg_database where not datistemplate order by datname").fetchall()
    return [str(row[0]) for row in rows]


#: The tables whose row counts ``backup verify`` reports.
MAIN_TABLES = (
    "app_settings",
    "signals",
    "execution_orders",
    "trade_logs",
    "user_trading_accounts",
    "audit_log",
)


def schema_facts(conn: Conn) -> dict[str, int] | None:
    """``{"schema_migrations": n, table: rows...}`` of one database, or None when it has no migrations."""
    row = conn.execute("select to_regclass('aitradex_meta.schema_migrations') is not null").fetchone()
    if not row or not row[0]:
        return None
    tables = [("aitradex_meta", "schema_migrations"), *(("public", table) for table in MAIN_TABLES)]
    facts: dict[str, int] = {}
    for schema, table in tables:
        exists = conn.execute("select to_regclass(%s) is not null", (f"{schema}.{table}",)).fetchone()
        if exists and exists[0]:
            query = sql.SQL("select count(*) from {}.{}").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
            count = conn.execute(query).fetchone()
            facts[table] = int(count[0]) if count else 0
    return facts


def server_now(conn: Conn) -> str:
    """The server's clock, as text with its time zone."""
    row = conn.execute("select now()::text").fetchone()
    return str(row[0]) if row else ""
