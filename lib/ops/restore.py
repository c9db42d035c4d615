"""Point-in-time restore of the embedded PostgreSQL from a base backup and the WAL archive.

``restore`` (``aitradex restore [--to-time T | --latest] --yes``) checks everything it needs before it
stops anything: a base backup that ended at or before the target, no hole in the WAL from that backup
to the end of what the archive and the receiver's stream hold (the stream's unfinished ``.partial``
segment included), and a target no later than the newest WAL there. Then it:

1. closes the live server's current WAL segment and waits for it to be archived (when the server
   still runs), so a planned restore loses no commit;
2. stops every stack the state folder runs, then the server;
3. moves the data folder aside to ``pgdata.before-restore-<time>`` (never deleted by this code);
4. copies the base backup in, with ``recovery.signal``, a ``restore_command`` reading the archive, then
   the stream (a ``.partial`` segment under its segment's name, as PostgreSQL's documentation of
   ``pg_receivewal`` says: replay stops at its last complete record, the last one streamed), the
   target time (or none: replay to the archive's end) and ``recovery_target_action=promote``;
5. starts the server and waits until it has promoted (a new timeline; archiving goes on);
6. sets ``trading_halted`` in every database of the cluster: the restored database is older than the
   exchange, and nothing may trade until reconciliation has run (``aitradex trading resume``);
7. applies pending migrations and starts the stack again;
8. runs the reconciliation (:mod:`lib.services.reconciliation`) on each database it started, which
   clears the halt when it finishes without error. It runs after the stack has started, because the
   paper exchange of a ``paper`` account is part of the stack; that is safe since the stack starts
   with trading halted, so no executor places an order before reconciliation has finished.
   Without a stack (``start_stack=False``: ``rebuild --restore`` starts it, then reconciles itself).

When recovery fails (the server stops before promoting), the failed copy is moved to
``pgdata.failed-restore-<time>``, the original folder is put back and started, and the error says why.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from lib.config import Settings, load_settings
from lib.db import archive, migrate
from lib.db.embedded import EmbeddedPostgres
from lib.db.target import admin_connection, database_target
from lib.errors import AitradexError, ConfigError
from lib.local_state import all_services
from lib.ops import stack_runner
from lib.ops.backup import (
    Announce,
    BackupInfo,
    backup_lock,
    catalogue,
    connect,
    newest_wal_time,
    require_embedded,
    stream_dir,
    superuser_password,
    wal_dir,
)
from lib.services.reconciliation import RESTORE_HALT_BY
from lib.stores import settings as settings_store

RECOVERY_TIMEOUT_S = 600.0
ARCHIVE_FLUSH_TIMEOUT_S = 30.0
HALT_NOTE = (
    "trading stays halted until the reconciliation has run: it clears the halt when it finishes without "
    "an error (otherwise `aitradex reconcile`, then `aitradex trading resume` once you have checked the "
    "exchange's orders against the database)"
)
HALT_BY = RESTORE_HALT_BY  # what the reconciliation looks for before it clears the halt


@dataclass(frozen=True, slots=True)
class RestorePlan:
    """What a restore will use: the backup, the target (None: the archive's end), the archive's end."""

    backup: BackupInfo
    target: datetime | None
    last_segment: str | None
    newest_wal: datetime | None

    def describe(self) -> str:
        to = f"to {self.target.isoformat()}" if self.target else "to the last archived or streamed commit"
        end = f" (archive ends at {self.last_segment}" + (
            f", archived {self.newest_wal.isoformat(timespec='seconds')})" if self.newest_wal else ")"
        )
        return (
            f"restore base backup {self.backup.label} and replay WAL {to}{end if self.last_segment else ''}"
        )


@dataclass
class RestoreReport:
    """What the restore did."""

    plan: RestorePlan
    moved_aside: Path | None
    halted: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: Each started database's reconciliation: (database, cleared the halt, its report's lines).
    reconciled: list[tuple[str, bool, list[str]]] = field(default_factory=list)


def plan_restore(settings: Settings, target: datetime | None) -> RestorePlan:
    """Choose the backup for ``target`` and check the WAL; ConfigError (one sentence) when it cannot be
    done: no backup, a target before the oldest backup's end or after the newest WAL, a WAL gap."""
    config = settings.backups
    entries = catalogue(config)
    if not entries:
        raise ConfigError(f"no base backup in {config.dir / 'base'}: nothing to restore (`aitradex backup`)")
    if target is not None and target.tzinfo is None:
        raise ConfigError("--to-time needs a time zone (2026-12-01T16:30:00Z)")
    chosen = (
        entries[-1] if target is None else next((e for e in reversed(entries) if e.ended <= target), None)
    )
    if chosen is None:
        raise ConfigError(
            f"{target.isoformat() if target else ''} is before the end of the oldest base backup "
            f"({entries[0].end_time}): nothing can be restored to it"
        )
    own = (
        [p.name for p in (Path(chosen.path) / "pg_wal").iterdir()]
        if (Path(chosen.path) / "pg_wal").is_dir()
        else []
    )
    missing, last = archive.missing_segments(wal_dir(config), chosen.start_segment, own, stream_dir(config))
    if missing:
        raise ConfigError(
            f"WAL gap: segment {missing[0]} is missing from {wal_dir(config)} ({len(missing)} missing after "
            f"base backup {chosen.label}); replay would stop there"
        )
    candidates = (
        [
            wal_dir(config) / last.name,
            stream_dir(config) / last.name,
            stream_dir(config) / f"{last.name}.partial",
        ]
        if last
        else []
    )
    newest_file = max((p.stat().st_mtime for p in candidates if p.exists()), default=None)
    newest = datetime.fromtimestamp(newest_file, UTC) if newest_file is not None else newest_wal_time(config)
    if target is not None and (newest is None or target > newest):
        end = newest.isoformat(timespec="seconds") if newest else "nothing archived yet"
        raise ConfigError(
            f"{target.isoformat()} is after the newest archived WAL ({end}): commits after that are not in "
            f"the archive; --latest restores up to there"
        )
    return RestorePlan(chosen, target, last.name if last else None, newest)


def flush_archive(server: EmbeddedPostgres, password: str) -> bool:
    """Switch the live server's WAL segment and wait until it is archived; False when it was not."""
    with connect(server, password) as conn:
        lsn = archive.switch_wal(conn)
        deadline = time.monotonic() + ARCHIVE_FLUSH_TIMEOUT_S
        while time.monotonic() < deadline:
            if archive.archived_through(conn, lsn):
                return True
            time.sleep(0.1)
    return False


def restore(
    settings: Settings,
    *,
    target: datetime | None,
    env: Mapping[str, str] | None = None,
    announce: Announce | None = None,
    start_stack: bool = True,
) -> RestoreReport:
    """Restore the embedded cluster to ``target`` (None: the latest archived commit); see the module."""
    say = announce or (lambda line: None)
    started = time.monotonic()
    server = require_embedded(settings)
    password = superuser_password(settings)
    config = settings.backups
    env = dict(os.environ if env is None else env)
    with backup_lock(config):
        plan_restore(settings, target)  # every refusal before anything is touched
        if server.is_running():
            flushed = flush_archive(server, password)
            say(
                "archived the live server's last WAL segment"
                if flushed
                else "note: the last segment was not archived in time"
            )
        plan = plan_restore(settings, target)
        say(plan.describe())
        stopped = [
            name
            for name in all_services(settings.state_dir)
            if stack_runner.stop_recorded(settings.state_dir, name)
        ]
        if stopped:
            say(f"stopped the stack of {', '.join(stopped)}")
        if server.stop():
            say("stopped the embedded PostgreSQL")
        aside = _move_aside(server.data_dir, "before-restore")
        if aside is not None:
            say(f"moved the data folder aside to {aside} (delete it yourself once satisfied)")
        try:
            _recover(server, password, plan, config.dir, say)
        except AitradexError as exc:
            _roll_back(server, aside)
            raise AitradexError(f"recovery failed, the data folder was put back: {exc.message}") from None
        report = RestoreReport(plan, aside)
        reason = (
            f"restored from base backup {plan.backup.label} to "
            f"{plan.target.isoformat() if plan.target else 'the last archived or streamed commit'}: "
            "the exchange may hold orders this database lacks; reconcile before trading resumes"
        )
        report.halted = _halt_trading(server, password, reason)
    say(f"set trading_halted in {', '.join(report.halted) or 'no database'}; {HALT_NOTE}")
    with admin_connection(database_target(settings)) as conn:
        applied = migrate.migrate(conn)
    if applied:
        say(f"applied {', '.join(applied)}")
    for name in dict.fromkeys([*stopped, *([settings.database.db_name] if start_stack else [])]):
        db_settings = load_settings({**env, "AITRADEX_DB_NAME": name})
        _, detail, facts = stack_runner.ensure_running(db_settings, {**env, "AITRADEX_DB_NAME": name})
        say(f"stack of {name}: {detail}")
        report.reconciled.append(_reconcile(db_settings, name, facts, say))
    report.seconds = time.monotonic() - started
    return report


def _reconcile(
    settings: Settings, name: str, facts: Mapping[str, object], say: Announce
) -> tuple[str, bool, list[str]]:
    from lib.ops.reconcile import describe, run_reconcile

    paper_url = facts.get("paper_exchange_url")
    try:
        done = run_reconcile(settings, since=None, paper_url=str(paper_url) if paper_url else None)
    except AitradexError as exc:
        say(f"reconciliation of {name} failed, trading stays halted: {exc.message}")
        return name, False, [exc.message]
    lines = describe(done)
    for line in lines:
        say(f"reconcile {name}: {line}")
    return name, done.halt_cleared, lines


def _move_aside(data_dir: Path, why: str) -> Path | None:
    if not data_dir.exists():
        return None
    aside = data_dir.with_name(f"{data_dir.name}.{why}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S.%fZ')}")
    data_dir.rename(aside)
    return aside


def _recover(
    server: EmbeddedPostgres, password: str, plan: RestorePlan, backup_dir: Path, say: Announce
) -> None:
    data = server.data_dir
    shutil.copytree(plan.backup.path, data, symlinks=True)
    data.chmod(0o700)
    (data / "recovery.signal").touch()
    server.give_to_owner(data)
    command = archive.restore_command(backup_dir / archive.WAL_DIR, backup_dir / archive.STREAM_DIR)
    options = [
        f"restore_command={command}",
        "recovery_target_action=promote",
        "recovery_target_timeline=latest",
    ]
    if plan.target is not None:
        options.append(f"recovery_target_time={plan.target.isoformat()}")
    try:
        server.start(options)
    except AitradexError:
        raise AitradexError(_last_fatal(server)) from None
    deadline = time.monotonic() + RECOVERY_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            with connect(server, password) as conn:
                if not archive.in_recovery(conn):
                    say("recovery finished: promoted to a new timeline")
                    return
        except AitradexError:
            if not server.server_runs():
                raise AitradexError(_last_fatal(server)) from None
        time.sleep(0.2)
    raise AitradexError(f"recovery did not finish within {RECOVERY_TIMEOUT_S:.0f} s")


def _last_fatal(server: EmbeddedPostgres) -> str:
    lines = server.log_file.read_text(errors="replace").splitlines()[-40:] if server.log_file.exists() else []
    fatal = [line.split(":  ", 1)[-1] for line in lines if "FATAL:" in line]
    reason = fatal[-1] if fatal else "no reason logged"
    return f"the server stopped during recovery: {reason} (log: {server.log_file})"


def _roll_back(server: EmbeddedPostgres, aside: Path | None) -> None:
    server.stop()
    _move_aside(server.data_dir, "failed-restore")
    if aside is not None:
        aside.rename(server.data_dir)
        server.start()


def _halt_trading(server: EmbeddedPostgres, password: str, reason: str) -> list[str]:
    with connect(server, password) as conn:
        names = archive.databases(conn)
    halted: list[str] = []
    for name in names:
        with connect(server, password, name) as conn:
            now = datetime.now(UTC)
            if settings_store.set_trading_halted_sync(conn, halted=True, reason=reason, by=HALT_BY, at=now):
                halted.append(name)
    return halted


def parse_target(text: str) -> datetime:
    """``--to-time``: ISO 8601 with a zone (``Z`` or ``+00:00``); ValueError otherwise."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T"))
    if parsed.tzinfo is None:
        raise ValueError("needs a time zone, like 2026-12-01T16:30:00Z")
    return parsed.astimezone(UTC)
