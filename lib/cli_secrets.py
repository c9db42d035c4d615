"""``aitradex secrets export|import``: the local secrets, backed up encrypted with a passphrase.

The engine is :mod:`lib.ops.secrets` (files) over :mod:`lib.secrets_backup` (the envelope). These
commands only read the passphrase (``AITRADEX_BACKUP_PASSPHRASE``, or the terminal) and print names,
never a value. They need no database and no loaded settings: an import is the first step on a new
machine, before anything else exists.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Any

from lib.errors import ConfigError
from lib.local_state import state_dir_from
from lib.ops.secrets import Ask, export_secrets, import_secrets, passphrase


def _terminal() -> Ask | None:
    """``getpass`` when a person can answer (stdin is a terminal), else None: never a silent hang."""
    return getpass.getpass if sys.stdin.isatty() else None


def cmd_secrets_export(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and not args.force:
        raise ConfigError(f"{out} exists; --force replaces it")  # before asking for anything
    secret = passphrase(os.environ, _terminal(), confirm=True)
    report = export_secrets(state_dir_from(os.environ), out, secret, env=os.environ, force=args.force)
    print(f"exported {len(report.names)} secret(s) to {out} (scrypt + AES-256-GCM, mode 0600):")
    print(f"  {', '.join(report.names)}")
    print(
        "keep the passphrase apart from the file: without it the file is useless, with it anyone can read it"
    )
    if report.overridden:
        print(
            f"note: the environment also sets {', '.join(report.overridden)}; the file's value was exported, "
            "back the environment's up where it is kept"
        )
    return 0


def cmd_secrets_import(args: argparse.Namespace) -> int:
    secret = passphrase(os.environ, _terminal(), confirm=False)
    report = import_secrets(state_dir_from(os.environ), Path(args.in_file), secret, force=args.force)
    if not report.changed:
        print(f"the local secrets in {report.path} already hold the backup's values; nothing written")
        return 0
    print(f"imported into {report.path} (mode 0600):")
    for label, names in (
        ("added", report.added),
        ("replaced", report.replaced),
        ("unchanged", report.unchanged),
        ("kept (not in the backup)", report.kept),
    ):
        if names:
            print(f"  {label}: {', '.join(names)}")
    if report.replaced:
        print("restart every process of the stack (`aitradex down`, then `aitradex rebuild`) to use them")
    return 0


def add_secrets_parser(sub: Any) -> None:
    """Register ``secrets export`` and ``secrets import`` on the command line's subparsers."""
    p = sub.add_parser("secrets", help="back up or restore the local secrets, encrypted with a passphrase")
    secrets_sub = p.add_subparsers(dest="secrets_command", required=True)
    e = secrets_sub.add_parser(
        "export",
        help="write the local secrets to FILE, encrypted (passphrase: AITRADEX_BACKUP_PASSPHRASE "
        "or asked twice)",
    )
    e.add_argument("--out", required=True, metavar="FILE")
    e.add_argument("--force", action="store_true", help="replace FILE if it exists")
    e.set_defaults(func=cmd_secrets_export)
    i = secrets_sub.add_parser("import", help="decrypt FILE into the local secrets file")
    i.add_argument("--in", dest="in_file", required=True, metavar="FILE")
    i.add_argument("--force", action="store_true", help="replace local secrets that differ from the backup's")
    i.set_defaults(func=cmd_secrets_import)
