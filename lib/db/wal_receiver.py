"""Streaming the embedded server's WAL with ``pg_receivewal``, supervised: the loss window in milliseconds.

``pg_receivewal`` connects to the server over the replication protocol (as the embedded superuser, on
127.0.0.1 with its SCRAM password handed over in the environment, never on a command line or in a log)
and writes every WAL record into ``<backup_dir>/wal-stream`` as the server flushes it. With
``--synchronous`` it fsyncs each write before it reports the position back, so a record the server
has sent survives a crash of both machines' processes. Commits do not wait for it (no
``synchronous_standby_names``): a dead receiver must never stop trading; the price is that a commit
made in the last few milliseconds before a disk loss, not yet received, is lost.

It streams through a physical replication slot (:data:`SLOT`), so while the receiver is down the
server keeps the WAL it has not received (up to ``max_slot_wal_keep_size``, :mod:`lib.db.archive`);
a restarted receiver resumes from its folder's newest segment and finds that WAL still there.

:class:`Supervisor` keeps one receiver per backup folder alive: the stack runs it in a thread
(``aitradex up``, and so the rebuild and the restore that start the stack), restarts the receiver a
second after it exits, waits while the server is down or still recovering, and stops it when the stack
stops (``aitradex down``). Several stacks on one server share one receiver: a lock file elects the
supervisor, the others wait and take over when it goes. Before each start it checks the folder belongs
to this cluster (its system identifier) and moves segments of abandoned timelines (after a restore to
an earlier time) into ``abandoned/``, since ``pg_receivewal`` would try to resume from them.

What it does is recorded in ``<backup_dir>/wal-receiver.json`` (pid, state, restarts, last exit), its
output in ``<backup_dir>/wal-receiver.log``; :func:`receiver_status` adds the slot's view (active, the
last flushed LSN, the lag).
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from lib.config import Settings
from lib.db import archive
from lib.db.embedded import EmbeddedPostgres, bin_path
from lib.db.target import embedded_server
from lib.db.unreachable import CONNECT_TIMEOUT_S

SLOT = "aitradex_wal"
APPLICATION_NAME = "aitradex_wal_receiver"
RESTART_DELAY_S = 1.0
POLL_S = 0.2
STOP_TIMEOUT_S = 10.0
STATE_FILE = "wal-receiver.json"
LOG_FILE = "wal-receiver.log"
LOCK_FILE = ".wal-receiver.lock"
SYSTEM_ID_FILE = "system_identifier"
ABANDONED_DIR = "abandoned"

Conn = archive.Conn


class StreamRefused(Exception):
    """The stream folder cannot take this server's WAL (it belongs to another cluster)."""


def stream_dir(backup_dir: Path) -> Path:
    """Where the receiver writes: ``<backup_dir>/wal-stream``."""
    return backup_dir / archive.STREAM_DIR


def wanted(settings: Settings) -> bool:
    """Whether this configuration streams WAL: the embedded server with WAL archiving on."""
    return (
        settings.database.embedded
        and settings.backups.archive_wal
        and settings.database.embedded_superuser_password is not None
    )


# -- SQL ----------------------------------------------------------------------------------------------


def ensure_slot(conn: Conn) -> str:
    """Create the physical slot (reserving WAL from now) unless it exists: ``"kept"``, ``"created"``, or
    ``"recreated"`` for a slot the server had invalidated (the receiver was down past
    ``max_slot_wal_keep_size``), dropped and created again: the WAL it lost is in the archive."""
    row = conn.execute("select wal_status from pg_replication_slots where slot_name = %s", (SLOT,)).fetchone()
    if row is not None and row[0] != "lost":
        return "kept"
    if row is not None:
        conn.execute("select pg_drop_replication_slot(%s)", (SLOT,))
    conn.execute("select pg_create_physical_replication_slot(%s, true)", (SLOT,))
    return "created" if row is None else "recreated"


def release_slot(conn: Conn) -> bool:
    """End a walsender still holding the slot (a receiver orphaned by a supervisor that died); True if
    there was one. Called only by the supervisor holding the lock, so it is never a live one's."""
    row = conn.execute(
        "select pg_terminate_backend(active_pid) from pg_replication_slots "
        "where slot_name = %s and active_pid is not null",
        (SLOT,),
    ).fetchone()
    return bool(row and row[0])


def server_identity(conn: Conn) -> tuple[str, int]:
    """``(system identifier, current timeline)`` of a server that is not in recovery."""
    row = conn.execute(
        "select system_identifier::text, ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))"
        "::bit(32)::int from pg_control_system()"
    ).fetchone()
    assert row is not None
    return str(row[0]), int(row[1])


def timeline_history(conn: Conn, timeline: int) -> str:
    """The server's ``<timeline>.history`` (empty for timeline 1)."""
    if timeline <= 1:
        return ""
    row = conn.execute("select pg_read_file(%s)", (f"pg_wal/{timeline:08X}.history",)).fetchone()
    return str(row[0]) if row else ""


def slot_view(conn: Conn) -> dict[str, Any] | None:
    """The slot as the server sees it: active, walsender pid, flushed LSN, WAL status, lag (bytes, s)."""
    row = conn.execute(
        "select s.active, s.active_pid, coalesce(r.flush_lsn, s.restart_lsn)::text, s.wal_status, "
        "pg_current_wal_lsn()::text, "
        "pg_wal_lsn_diff(pg_current_wal_lsn(), coalesce(r.flush_lsn, s.restart_lsn))::bigint, "
        "extract(epoch from r.flush_lag)::float8 "
        "from pg_replication_slots s left join pg_stat_replication r on r.pid = s.active_pid "
        "where s.slot_name = %s",
        (SLOT,),
    ).fetchone()
    if row is None:
        return None
    keys = ("active", "walsender_pid", "flushed_lsn", "wal_status", "current_lsn", "lag_bytes", "lag_s")
    return dict(zip(keys, row, strict=True))


# -- the stream folder ----------------------------------------------------------------------------------


def check_owner(folder: Path, system_id: str) -> None:
    """Record the cluster the folder streams (first use), or StreamRefused when it is another's."""
    marker = folder / SYSTEM_ID_FILE
    if not marker.exists():
        marker.write_text(system_id + "\n", encoding="utf-8")
        return
    recorded = marker.read_text(encoding="utf-8").strip()
    if recorded != system_id:
        raise StreamRefused(
            f"{folder} holds the WAL of another cluster (system identifier {recorded}, this server's is "
            f"{system_id}): move it away to stream this one"
        )


def abandoned_segments(folder: Path, timeline: int, history: str) -> list[Path]:
    """The segments ``pg_receivewal`` must not resume from on ``timeline``: those of timelines not on
    its history, and those of its ancestors from the segment where the history left them on."""
    left_at: dict[int, int] = {}
    for line in history.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit():
            left_at[int(parts[0])] = archive.lsn_value(parts[1]) // archive.SEGMENT_BYTES
    found: list[Path] = []
    for path in folder.iterdir():
        segment = archive.Segment.parse(path.name.removesuffix(archive.PARTIAL))
        if segment is None or segment.timeline == timeline:
            continue
        switch = left_at.get(segment.timeline)
        if switch is None or segment.number >= switch:
            found.append(path)
    return sorted(found)


def _segments(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if archive.Segment.parse(p.name.removesuffix(archive.PARTIAL)) is not None
    )


def move_abandoned(folder: Path, paths: list[Path]) -> None:
    """Move ``paths`` into ``<folder>/abandoned/`` (kept, never deleted; the archive has the WAL too)."""
    if not paths:
        return
    aside = folder / ABANDONED_DIR
    aside.mkdir(exist_ok=True)
    for path in paths:
        target = aside / path.name
        n = 1
        while target.exists():
            n += 1
            target = aside / f"{path.name}.{n}"
        path.rename(target)


# -- the supervisor ---------------------------------------------------------------------------------


def read_state(backup_dir: Path) -> dict[str, Any]:
    """What the supervisor last recorded (empty when none ever ran)."""
    path = backup_dir / STATE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class Supervisor:
    """Keeps ``pg_receivewal`` running for ``settings``' server while :meth:`run` runs (see the module)."""

    def __init__(self, settings: Settings, *, restart_delay_s: float = RESTART_DELAY_S) -> None:
        self.settings = settings
        self.backup_dir = settings.backups.dir
        self.folder = stream_dir(self.backup_dir)
        self.restart_delay_s = restart_delay_s
        self.restarts = 0
        self.process: Any = None
        password = settings.database.embedded_superuser_password
        assert password is not None
        self._password = password.reveal()

    def run(self, stop: threading.Event) -> None:
        """Until ``stop`` is set: hold the lock (waiting for another supervisor to go), keep a receiver."""
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        with (self.backup_dir / LOCK_FILE).open("a") as lock:
            while not stop.is_set():
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    stop.wait(RESTART_DELAY_S)  # another stack's supervisor streams this server
                    continue
                try:
                    while not stop.is_set():
                        self._run_once(stop)
                        stop.wait(self.restart_delay_s)
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)

    def _record(self, state: str, **facts: Any) -> None:
        data = {"state": state, "supervisor_pid": os.getpid(), "restarts": self.restarts, "at": time.time()}
        path = self.backup_dir / STATE_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({**data, **facts}, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    def _connect(self, server: EmbeddedPostgres) -> Conn:
        return psycopg.connect(
            server.admin_url(self._password), autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
        )

    def _prepare(self, server: EmbeddedPostgres) -> str | None:
        """Slot and folder ready for a start; None, or why the receiver cannot start now."""
        with self._connect(server) as conn:
            if archive.in_recovery(conn):
                return "the server is still recovering"
            system_id, timeline = server_identity(conn)
            self.folder.mkdir(parents=True, exist_ok=True)
            server.give_to_owner(self.folder, recursive=False)
            check_owner(self.folder, system_id)
            move_abandoned(
                self.folder, abandoned_segments(self.folder, timeline, timeline_history(conn, timeline))
            )
            if ensure_slot(conn) == "recreated":
                # The server no longer has the WAL after the folder's newest segment, so the receiver
                # could never resume from it: it starts afresh from the new slot (the archive covers
                # the gap), the old segments kept aside.
                move_abandoned(self.folder, _segments(self.folder))
            release_slot(conn)
        return None

    def _run_once(self, stop: threading.Event) -> None:
        server = embedded_server(self.settings)
        if not server.is_running():
            self._record("waiting", detail=f"the embedded PostgreSQL is not running on port {server.port}")
            return
        try:
            why = self._prepare(server)
        except (psycopg.Error, OSError) as exc:
            why = " ".join(str(exc).split())[:300]
        except StreamRefused as exc:
            why = str(exc)
        if why is not None:
            self._record("waiting", detail=why)
            return
        conninfo = (
            f"host=127.0.0.1 port={server.port} user=postgres application_name={APPLICATION_NAME} "
            f"connect_timeout={CONNECT_TIMEOUT_S}"
        )
        args = [str(bin_path("pg_receivewal")), "-D", str(self.folder), "-S", SLOT, "--synchronous"]
        args += ["--no-loop", "--status-interval=1", "-d", conninfo, "-w"]
        env = {**os.environ, "PGPASSWORD": self._password}
        self.process = server.spawn_as_owner(args, env=env, log=self.backup_dir / LOG_FILE)
        self._record("running", pid=self.process.pid, started_at=time.time())
        while self.process.poll() is None:
            if stop.wait(POLL_S):
                self._stop_process()
                self._record("stopped", detail="the stack stopped")
                return
        self.restarts += 1
        self._record(
            "exited", exit_code=self.process.returncode, detail=_log_tail(self.backup_dir / LOG_FILE)
        )

    def _stop_process(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()  # pg_receivewal flushes what it has and exits
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT_S)


def _log_tail(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return " ".join(lines[-2:])[-300:]


@contextmanager
def supervised(settings: Settings) -> Iterator[Supervisor | None]:
    """Run a :class:`Supervisor` in a thread for the duration of the block (None: nothing to stream)."""
    if not wanted(settings):
        yield None
        return
    supervisor = Supervisor(settings)
    stop = threading.Event()
    thread = threading.Thread(target=supervisor.run, args=(stop,), name="wal-receiver", daemon=True)
    thread.start()
    try:
        yield supervisor
    finally:
        stop.set()
        thread.join(STOP_TIMEOUT_S * 2)


@dataclass(frozen=True, slots=True)
class ReceiverStatus:
    """The receiver as ``status`` and ``backup list`` show it."""

    streaming: bool
    state: str
    pid: int | None
    restarts: int
    flushed_lsn: str | None
    lag_bytes: int | None
    lag_s: float | None
    detail: str

    def describe(self) -> str:
        """One line: ``streaming (pid 123), flushed 0/3000148, lag 0 B`` or why it is not."""
        if self.streaming:
            lag = f"{self.lag_bytes} B" if self.lag_bytes is not None else "unknown"
            return f"streaming (pid {self.pid}), flushed {self.flushed_lsn}, lag {lag}"
        return f"not streaming ({self.state}{': ' + self.detail if self.detail else ''})"


def receiver_status(settings: Settings) -> ReceiverStatus:
    """The supervisor's record and the slot's view (cheap: one file, one query)."""
    recorded = read_state(settings.backups.dir)
    state = str(recorded.get("state") or "never started")
    detail = str(recorded.get("detail") or "")
    pid = recorded.get("pid") if state == "running" else None
    view: dict[str, Any] | None = None
    password = settings.database.embedded_superuser_password
    server = embedded_server(settings)
    if password is not None and server.is_running():
        try:
            with psycopg.connect(
                server.admin_url(password.reveal()), autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
            ) as conn:
                view = slot_view(conn)
        except psycopg.Error as exc:
            detail = detail or " ".join(str(exc).split())[:200]
    elif password is not None:
        detail = f"the embedded PostgreSQL is not running on port {server.port}"
    streaming = bool(view and view["active"]) and state == "running"
    if state == "running" and not streaming:
        # Recorded as started, but no walsender holds the slot: connecting, or its stack died with it.
        state = "not connected"
        detail = "the replication slot does not exist" if view is None else "no receiver holds the slot"
    return ReceiverStatus(
        streaming=streaming,
        state=state,
        pid=int(pid) if isinstance(pid, int) else None,
        restarts=int(recorded.get("restarts") or 0),
        flushed_lsn=str(view["flushed_lsn"]) if view and view["flushed_lsn"] else None,
        lag_bytes=int(view["lag_bytes"]) if view and view["lag_bytes"] is not None else None,
        lag_s=float(view["lag_s"]) if view and view["lag_s"] is not None else None,
        detail=detail,
    )
