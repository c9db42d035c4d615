"""``aitradex backup [list|verify]`` and ``aitradex restore``: the embedded database's backups.

The engine is :mod:`lib.ops.backup` and :mod:`lib.ops.restore`; these commands print what they did.
A refusal (no backup, a WAL gap, a target outside what the archive holds, no ``--yes``) is one
``error:`` line and exit 1, before anything is stopped or moved.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from typing import Any

from lib.config import load_settings
from lib.errors import ConfigError


def _say(line: str) -> None:
    print(line, flush=True)


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MiB"


def cmd_backup(args: argparse.Namespace) -> int:
    from lib.ops.backup import take_backup

    info = take_backup(load_settings(), show_progress=sys.stderr.isatty(), announce=_say)
    print(
        f"backup {info.label}: {_size(info.size_bytes)}, WAL {info.start_lsn} .. {info.end_lsn} "
        f"(timeline {info.timeline}), restorable from {info.end_time} on, in {info.path}"
    )
    return 0


def cmd_backup_list(args: argparse.Namespace) -> int:
    from lib.ops.backup import catalogue, newest_wal_time

    config = load_settings().backups
    entries = catalogue(config)
    if not entries:
        print(f"no base backup in {config.dir / 'base'}")
        print(f"WAL receiver: {_receiver_line()}")
        return 0
    newest = newest_wal_time(config)
    print(f"{'label':<24} {'started':<25} {'ended (earliest target)':<32} {'size':>10}  WAL")
    for info in entries:
        size = _size(info.size_bytes)
        print(f"{info.label:<24} {info.start_time:<25} {info.end_time:<32} {size:>10}  {info.start_lsn}")
    end = newest.isoformat(timespec="seconds") if newest else "nothing archived yet"
    print(f"restorable from {entries[0].end_time} to {end} (the newest WAL); keeping {config.keep}")
    print(f"WAL receiver: {_receiver_line()}")
    return 0


def _receiver_line() -> str:
    from lib.db import wal_receiver

    settings = load_settings()
    if not wal_receiver.wanted(settings):
        return "off (no WAL archiving for this database)"
    status = wal_receiver.receiver_status(settings)
    line = status.describe()
    if status.restarts:
        line += f", restarted {status.restarts} time(s)"
    if not status.streaming:
        line += "; until it streams again, commits reach the backup only with their segment (60 s)"
    return line


def cmd_backup_verify(args: argparse.Namespace) -> int:
    from lib.ops.backup import verify_backup

    report = verify_backup(load_settings(), args.label, announce=_say)
    for name, facts in sorted(report.databases.items()):
        counts = ", ".join(f"{table} {n}" for table, n in facts.items())
        print(f"  {name}: {counts}")
    print(f"backup {report.label} restores and starts; the scratch copy was stopped and removed")
    return 0


def _target(text: str) -> datetime:
    from lib.ops.restore import parse_target

    try:
        return parse_target(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time with a zone ({exc})") from None


def cmd_restore(args: argparse.Namespace) -> int:
    from lib.ops.restore import plan_restore, restore

    settings = load_settings()
    target = None if args.latest else args.to_time
    if not args.yes:
        plan = plan_restore(settings, target)  # refusals first, so a plan that cannot run says why
        raise ConfigError(
            f"this would stop the stack and {plan.describe()}, moving the data folder aside; --yes does it"
        )
    report = restore(settings, target=target, env=os.environ, announce=_say)
    print(f"restored in {report.seconds:.1f} s at {datetime.now(UTC).isoformat(timespec='seconds')}")
    return 0


def add_backup_parser(sub: Any) -> None:
    """Register ``backup``, ``backup list``, ``backup verify`` and ``restore``."""
    p = sub.add_parser(
        "backup", help="a verified base backup of the embedded database now (or: list, verify)"
    )
    p.set_defaults(func=cmd_backup)
    backup_sub = p.add_subparsers(dest="backup_command")
    lst = backup_sub.add_parser("list", help="the base backups, their time ranges and sizes")
    lst.set_defaults(func=cmd_backup_list)
    ver = backup_sub.add_parser("verify", help="restore a backup into a scratch folder, start it, check it")
    ver.add_argument("--label", help="which backup (default: the newest)")
    ver.set_defaults(func=cmd_backup_verify)

    r = sub.add_parser("restore", help="stop the stack, restore a base backup, replay WAL, start again")
    which = r.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--to-time", type=_target, metavar="T", help="ISO 8601 with a zone: 2026-12-01T16:30:00Z"
    )
    which.add_argument("--latest", action="store_true", help="replay every archived commit")
    r.add_argument(
        "--yes", action="store_true", help="do it (without it the plan is printed and nothing changes)"
    )
    r.set_defaults(func=cmd_restore)
