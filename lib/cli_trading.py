"""``aitradex trading halt [--reason TEXT] | resume | status``: the operator kill switch.

``halt`` stops every executor path from placing a new order (exits and tracking go on), ``resume``
lets them trade again, ``status`` shows the switch. Each change is audited in ``audit_log`` (as the
service role, user agent ``aitradex-cli``, with the reason and the OS user in the stored value).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
from datetime import UTC, datetime
from typing import Any

from lib.stores.settings import HaltState


def _describe(state: HaltState) -> str:
    if not state.halted:
        return "trading: enabled"
    since = f" since {state.at.isoformat()}" if state.at else ""
    by = f" by {state.by}" if state.by else ""
    why = f": {state.reason}" if state.reason else ""
    return f"trading: HALTED{since}{by}{why}"


def _operator() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name for this uid (a container)
        return "cli"


def cmd_trading(args: argparse.Namespace) -> int:
    """Halt, resume or show trading, against the configured database."""
    from lib.config import load_settings
    from lib.db.session import Caller
    from lib.db.target import check_reachable, database_target
    from lib.services.execution.halt import set_trading_halted, trading_state

    target = database_target(load_settings())
    check_reachable(target)
    caller = Caller(
        role="service_role",
        claims={"role": "service_role"},
        headers={"user-agent": f"aitradex-cli trading {args.trading_command}"},
    )

    async def run() -> HaltState:
        async with target.database() as db:
            if args.trading_command == "status":
                return await trading_state(db)
            halted = args.trading_command == "halt"
            reason = args.reason if halted else None
            return await set_trading_halted(
                db, caller, halted=halted, reason=reason, by=_operator(), now=datetime.now(UTC)
            )

    print(_describe(asyncio.run(run())))
    return 0


def _reason(text: str) -> str:
    text = text.strip()
    if not 1 <= len(text) <= 500:
        raise argparse.ArgumentTypeError("must be 1 to 500 characters")
    return text


def add_trading_parser(sub: Any) -> None:
    """Register ``aitradex trading``."""
    p = sub.add_parser("trading", help="the kill switch: halt or resume every executor, or show it")
    trading_sub = p.add_subparsers(dest="trading_command", required=True)
    halt = trading_sub.add_parser("halt", help="no executor places a new order (exits and tracking go on)")
    halt.add_argument("--reason", type=_reason, help="why, recorded in the audit log")
    trading_sub.add_parser("resume", help="let the executors place orders again")
    trading_sub.add_parser("status", help="whether trading is halted, since when, by whom and why")
    p.set_defaults(func=cmd_trading)
