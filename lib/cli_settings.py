"""``aitradex settings get|set|diff|export``: live ``app_settings``, validated, audited, versioned.

The engine is :mod:`lib.ops.settings`. Each command reaches the database as the application does
(``authenticator``, then ``service_role``), checked first so a stopped database is one line at once.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from lib.config import load_settings
from lib.db.session import Database
from lib.db.target import check_reachable, database_target
from lib.ops import settings as ops_settings
from lib.ops.rebuild import APP_SETTINGS_FILE
from lib.ops.settings_rules import parse_value

T = TypeVar("T")


def _with_db(work: Callable[[Database], Awaitable[T]]) -> T:
    target = database_target(load_settings())
    check_reachable(target)

    async def run() -> T:
        async with target.database(min_size=1, max_size=2) as db:
            return await work(db)

    return asyncio.run(run())


def cmd_settings_get(args: argparse.Namespace) -> int:
    print(ops_settings.as_json(_with_db(lambda db: ops_settings.get_setting(db, args.key))))
    return 0


def cmd_settings_set(args: argparse.Namespace) -> int:
    value = parse_value(args.value)
    change = _with_db(lambda db: ops_settings.set_setting(db, args.key, value, APP_SETTINGS_FILE))
    print(ops_settings.change_line(change))
    if change.changed:
        print(f"audited in audit_log; `aitradex settings export` records it in {APP_SETTINGS_FILE.name}")
    if ops_settings.needs_restart(change):
        print(
            f"note: a running stack read {change.key} when it started: `aitradex down`, then "
            "`aitradex rebuild`, makes it use the new value"
        )
    return 0


def cmd_settings_diff(args: argparse.Namespace) -> int:
    path = Path(args.file)
    diff = _with_db(lambda db: ops_settings.diff_with_file(db, path))
    if diff.equal:
        print(f"live settings match {path}")
        return 0
    print(f"live settings differ from {path}:")
    for line in diff.lines():
        print(f"  {line}")
    return 1


def cmd_settings_export(args: argparse.Namespace) -> int:
    path = Path(args.out)
    count = _with_db(lambda db: ops_settings.export_file(db, path))
    print(f"wrote {count} setting(s) to {path}")
    return 0


def add_settings_parser(sub: Any) -> None:
    """Register ``settings get|set|diff|export`` on the command line's subparsers."""
    p = sub.add_parser("settings", help="read, change, compare and export app_settings")
    settings_sub = p.add_subparsers(dest="settings_command", required=True)
    g = settings_sub.add_parser("get", help="the live value of KEY (or of every key) as JSON")
    g.add_argument("key", nargs="?")
    g.set_defaults(func=cmd_settings_get)
    s = settings_sub.add_parser("set", help="validate and set KEY to VALUE (JSON, or plain text), audited")
    s.add_argument("key")
    s.add_argument("value")
    s.set_defaults(func=cmd_settings_set)
    d = settings_sub.add_parser(
        "diff", help="live settings against the versioned file; exit 1 when they differ"
    )
    d.add_argument(
        "--file", default=str(APP_SETTINGS_FILE), help=f"default {APP_SETTINGS_FILE.name} (the seed)"
    )
    d.set_defaults(func=cmd_settings_diff)
    x = settings_sub.add_parser("export", help="write the live settings to the versioned file")
    x.add_argument(
        "--out", default=str(APP_SETTINGS_FILE), help=f"default {APP_SETTINGS_FILE.name} (the seed)"
    )
    x.set_defaults(func=cmd_settings_export)
