"""``aitradex reconcile [--since T] [--dry-run]``: import what the exchange did that the database lacks.

Runs automatically after ``aitradex restore`` and ``rebuild --restore``; by hand after a hosted
restore (before ``aitradex trading resume``). See :mod:`lib.services.reconciliation`.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any


def _since(text: str) -> datetime:
    from lib.ops.restore import parse_target

    try:
        return parse_target(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time with a zone: {exc}") from None


def cmd_reconcile(args: argparse.Namespace) -> int:
    """Reconcile every active account with the exchange; 1 when an account had an error."""
    from lib.config import load_settings
    from lib.ops.reconcile import describe, run_reconcile

    report = run_reconcile(load_settings(), since=args.since, dry_run=args.dry_run)
    for line in describe(report):
        print(line)
    return 1 if report.errors else 0


def add_reconcile_parser(sub: Any) -> None:
    """Register ``aitradex reconcile``."""
    p = sub.add_parser(
        "reconcile", help="import the orders and fills the exchange has and the database lacks"
    )
    p.add_argument(
        "--since",
        type=_since,
        help="ISO 8601 time with a zone (default: the newest order in the database minus 1 hour)",
    )
    p.add_argument("--dry-run", action="store_true", help="report what would change, change nothing")
    p.set_defaults(func=cmd_reconcile)
