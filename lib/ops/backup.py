"""Base backups of the embedded PostgreSQL: take, verify, catalogue and prune (issue 13 items 1 and 2).

Layout of the backup folder (``AITRADEX_BACKUP_DIR``, default ``<state_dir>-backups``):

- ``wal-stream/``: the WAL ``pg_receivewal`` streams, record by record, its newest segment still
  ``<segment>.partial`` (:mod:`lib.db.wal_receiver`);
- ``wal/``: the WAL archive the server fills segment by segment (:mod:`lib.db.archive`);
- ``base/<label>/``: a plain-format ``pg_basebackup`` (with its WAL streamed in and a
  ``backup_manifest``), checked by ``pg_verifybackup`` before it counts;
- ``base/<label>.json``: its catalogue entry (label, start and end LSN and time, timeline, size). It is
  written last, atomically, so a backup that did not finish is never listed; ``<label>.partial/`` is
  one under way (or a crashed one, removed by the next backup).

Retention keeps the newest ``AITRADEX_BACKUP_KEEP`` base backups and the WAL from the oldest kept one's
start on; older segments are deleted only after the newer backups are in the catalogue. One backup runs
at a time (a lock file), so two stacks on one server never copy it twice at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from lib.config import BackupConfig, Settings
from lib.db import archive
from lib.db.embedded import EmbeddedPostgres, bin_path, free_port
from lib.db.pgtools import tool
from lib.db.target import embedded_server
from lib.db.unreachable import CONNECT_TIMEOUT_S
from lib.errors import AitradexError, ConfigError

BASE_DIR = "base"
BACKUP_TIMEOUT_S = 3600.0
Announce = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """One catalogued base backup. Times are ISO 8601 UTC; ``end_time`` is the earliest restore target."""

    label: str
    path: str
    timeline: int
    start_lsn: str
    end_lsn: str
    start_time: str
    end_time: str
    size_bytes: int

    @property
    def ended(self) -> datetime:
        return datetime.fromisoformat(self.end_time)

    @property
    def start_segment(self) -> archive.Segment:
        return archive.Segment.of_lsn(self.start_lsn, self.timeline)


def base_dir(config: BackupConfig) -> Path:
    return config.dir / BASE_DIR


def wal_dir(config: BackupConfig) -> Path:
    return config.dir / archive.WAL_DIR


def stream_dir(config: BackupConfig) -> Path:
    return config.dir / archive.STREAM_DIR


def catalogue(config: BackupConfig) -> list[BackupInfo]:
    """Every finished base backup, oldest first."""
    folder = base_dir(config)
    entries: list[BackupInfo] = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            info = BackupInfo(**data)
        except (ValueError, TypeError):
            raise ConfigError(f"{path} is not a backup catalogue entry; move it out of {folder}") from None
        if Path(info.path).is_dir():
            entries.append(info)
    return sorted(entries, key=lambda info: info.end_time)


def require_embedded(settings: Settings) -> EmbeddedPostgres:
    """The embedded server; ConfigError for an external database, whose backups are its platform's."""
    if not settings.database.embedded:
        raise ConfigError(
            "DATABASE_URL is set: that database's backups and point-in-time recovery are its platform's "
            "(see the README's hosted mode notes), not this command's"
        )
    return embedded_server(settings)


def superuser_password(settings: Settings) -> str:
    password = settings.database.embedded_superuser_password
    if password is None:
        raise ConfigError("POSTGRES_SUPERUSER_PASSWORD is not set for the embedded database")
    return password.reveal()


def connect(server: EmbeddedPostgres, password: str, db_name: str = "postgres") -> archive.Conn:
    """A superuser connection (autocommit) to ``server``."""
    try:
        return psycopg.connect(
            server.admin_url(password, db_name), autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
        )
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split())[:200]
        raise AitradexError(
            f"the embedded PostgreSQL on port {server.port} cannot be reached: {reason}"
        ) from None


@contextmanager
def backup_lock(config: BackupConfig) -> Iterator[None]:
    """Held while a backup or a restore uses the folder; a second one waits for the first."""
    config.dir.mkdir(parents=True, exist_ok=True)
    with (config.dir / ".lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def verify_files(path: Path, cache_dir: Path) -> None:
    """``pg_verifybackup`` over a plain backup (files against the manifest, and its WAL parsed)."""
    verifier, env = tool("pg_verifybackup", cache_dir)
    result = _run([str(verifier), "--quiet", str(path)], env)
    if result.returncode != 0:
        said = " ".join((result.stderr or result.stdout).split())[:300]
        raise AitradexError(f"pg_verifybackup refused {path.name}: {said}")


def _run(args: list[str], env: dict[str, str]) -> Any:
    import subprocess

    return subprocess.run(  # noqa: S603 - bundled binaries, argv built here
        args, capture_output=True, text=True, env=env, timeout=BACKUP_TIMEOUT_S, check=False
    )


def _folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _manifest_range(path: Path) -> tuple[int, str, str]:
    manifest = json.loads((path / "backup_manifest").read_text(encoding="utf-8"))
    ranges = manifest["WAL-Ranges"]
    return int(ranges[0]["Timeline"]), str(ranges[0]["Start-LSN"]), str(ranges[-1]["End-LSN"])


def _label_start_time(path: Path) -> str:
    for line in (path / "backup_label").read_text(encoding="utf-8").splitlines():
        if line.startswith("START TIME:"):
            stamp = line.split(":", 1)[1].strip()  # "2026-12-01 16:30:00 UTC"
            parsed = datetime.strptime(stamp.removesuffix(" UTC"), "%Y-%m-%d %H:%M:%S")
            return parsed.replace(tzinfo=UTC).isoformat()
    return datetime.now(UTC).isoformat()


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def take_backup(
    settings: Settings, *, show_progress: bool = False, announce: Announce | None = None
) -> BackupInfo:
    """A base backup now: ``pg_basebackup`` (fast checkpoint, WAL streamed), ``pg_verifybackup``, then
    catalogued and retention applied. The server must run; archiving off is reported, not fatal (the
    backup still restores to its own end)."""
    say = announce or (lambda line: None)
    server = require_embedded(settings)
    password = superuser_password(settings)
    config = settings.backups
    if not server.is_running():
        raise ConfigError(
            f"the embedded PostgreSQL is not running on port {server.port}: `aitradex db start`"
        )
    with connect(server, password) as conn:
        mode, command = archive.archiving_status(conn)
    if mode != "on" or command != archive.archive_command(wal_dir(config)):
        say(
            f"note: the running server does not archive WAL into {wal_dir(config)} (started before archiving "
            "was set up, or with another AITRADEX_BACKUP_DIR): `aitradex db stop` then `aitradex db start` "
            "turns it on; until then this backup restores only to its own end"
        )
    with backup_lock(config):
        base = base_dir(config)
        base.mkdir(parents=True, exist_ok=True)
        server.give_to_owner(config.dir, recursive=False)
        server.give_to_owner(base, recursive=False)
        for stale in base.glob("*.partial"):
            shutil.rmtree(stale, ignore_errors=True)  # a crashed backup: nothing ever lists it
        label = _new_label(base)
        partial = base / f"{label}.partial"
        say(f"taking base backup {label} of 127.0.0.1:{server.port} into {base}")
        env = {**os.environ, "PGPASSWORD": password}
        args = [str(bin_path("pg_basebackup")), "-D", str(partial), "-Fp", "-X", "stream", "-c", "fast"]
        args += ["-l", label, "-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres", "-w"]
        server.run_as_owner(
            [*args, *(["-P"] if show_progress else [])],
            timeout=BACKUP_TIMEOUT_S,
            env=env,
            show_progress=show_progress,
        )
        ended = datetime.now(UTC)
        with connect(server, password) as conn:
            archive.switch_wal(conn)  # the backup's last segment reaches the archive now, not in 60 s
        verify_files(partial, config.dir / ".tools")
        say("pg_verifybackup: every file matches the manifest and the WAL parses")
        final = base / label
        partial.rename(final)
        timeline, start_lsn, end_lsn = _manifest_range(final)
        info = BackupInfo(
            label=label,
            path=str(final),
            timeline=timeline,
            start_lsn=start_lsn,
            end_lsn=end_lsn,
            start_time=_label_start_time(final),
            end_time=ended.isoformat(),
            size_bytes=_folder_size(final),
        )
        _write_json(base / f"{label}.json", asdict(info))
        for line in prune(config):
            say(line)
    return info


def _new_label(base: Path) -> str:
    stamp = datetime.now(UTC).strftime("base-%Y%m%dT%H%M%SZ")
    label, n = stamp, 1
    while (base / label).exists() or (base / f"{label}.json").exists():
        n += 1
        label = f"{stamp}-{n}"
    return label


def prune(config: BackupConfig) -> list[str]:
    """Keep the newest ``config.keep`` base backups and the WAL they need; returns what was removed."""
    entries = catalogue(config)
    removed: list[str] = []
    for old in entries[: max(0, len(entries) - config.keep)]:
        (base_dir(config) / f"{old.label}.json").unlink(missing_ok=True)  # unlisted first, then deleted
        shutil.rmtree(old.path, ignore_errors=True)
        removed.append(f"removed base backup {old.label} (keeping {config.keep})")
    kept = entries[-config.keep :]
    if not kept:
        return removed
    oldest = min(info.start_segment.number for info in kept)
    gone = 0
    for folder in (wal_dir(config), stream_dir(config), stream_dir(config) / "abandoned"):
        for path in folder.iterdir() if folder.is_dir() else []:
            segment = archive.Segment.parse(path.name[:24])
            if segment is not None and segment.number < oldest and path.is_file():
                path.unlink(missing_ok=True)
                gone += 1
    if gone:
        removed.append(f"removed {gone} archived WAL file(s) older than the oldest kept backup")
    return removed


def newest_wal_time(config: BackupConfig) -> datetime | None:
    """When the newest archived or streamed WAL was written (its commits are all at or before this):
    the receiver writes its ``.partial`` segment as records arrive, so that is the last one received."""
    times = [
        p.stat().st_mtime
        for folder in (wal_dir(config), stream_dir(config))
        if folder.is_dir()
        for p in folder.iterdir()
        if archive.Segment.parse(p.name.removesuffix(archive.PARTIAL)) is not None
    ]
    return datetime.fromtimestamp(max(times), UTC) if times else None


def backup_if_due(settings: Settings) -> BackupInfo | None:
    """The scheduler's job: a backup when the newest is older than ``interval_hours`` (None otherwise).

    The catalogue, not the scheduler's memory, says when one is due, so restarts and several stacks on
    one server still take one a day.
    """
    config = settings.backups
    if config.interval_hours <= 0 or not settings.database.embedded:
        return None
    entries = catalogue(config)
    if entries and datetime.now(UTC) - entries[-1].ended < timedelta(hours=config.interval_hours):
        return None
    return take_backup(settings)


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What a scratch restore showed: per database, applied migrations and main-table row counts."""

    label: str
    port: int
    databases: dict[str, dict[str, int]]


def verify_backup(
    settings: Settings, label: str | None = None, announce: Announce | None = None
) -> VerifyReport:
    """Restore a backup (the newest, or ``label``) into a scratch folder, start it on a free port, read
    its migrations and row counts, then stop and remove it."""
    say = announce or (lambda line: None)
    config = settings.backups
    info = pick(config, label)
    verify_files(Path(info.path), config.dir / ".tools")
    say(f"pg_verifybackup: {info.label} matches its manifest")
    scratch = Path(tempfile.mkdtemp(prefix=".verify-", dir=config.dir))
    data = scratch / "pgdata"
    try:
        shutil.copytree(info.path, data, symlinks=True)
        data.chmod(0o700)
        server = EmbeddedPostgres(data_dir=data, port=free_port())
        server.give_to_owner(scratch)
        server.start(["archive_mode=off"])
        say(f"started a scratch copy on 127.0.0.1:{server.port}")
        try:
            found = _read_facts(server, superuser_password(settings))
        finally:
            server.stop()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if not found:
        raise AitradexError(f"backup {info.label} started, but no database in it has applied migrations")
    return VerifyReport(info.label, server.port, found)


def _read_facts(server: EmbeddedPostgres, password: str) -> dict[str, dict[str, int]]:
    with connect(server, password) as conn:
        names = archive.databases(conn)
    found: dict[str, dict[str, int]] = {}
    for name in names:
        with connect(server, password, name) as conn:
            facts = archive.schema_facts(conn)
        if facts is not None:
            found[name] = facts
    return found


def pick(config: BackupConfig, label: str | None = None) -> BackupInfo:
    """The newest backup, or the one named ``label``; ConfigError when there is none."""
    entries = catalogue(config)
    if not entries:
        raise ConfigError(f"no base backup in {base_dir(config)}: `aitradex backup` takes one")
    if label is None:
        return entries[-1]
    for info in entries:
        if info.label == label:
            return info
    raise ConfigError(f"no base backup labelled {label} in {base_dir(config)} (`aitradex backup list`)")
