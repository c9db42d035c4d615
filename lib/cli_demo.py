"""``aitradex demo [--hours H]`` and ``aitradex replay [--hours H] [--pace S]``: the demo, and more of its
replay on the running stack, paced so a person can watch the web app trade.
"""

from __future__ import annotations

import argparse
from typing import Any

from lib import cli_support


def cmd_demo(args: argparse.Namespace) -> int:
    from lib.ops.demo import run_demo

    run_demo(hours=args.hours)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from lib.ops.demo import run_watch

    run_watch(args.hours, args.pace)
    return 0


def add_demo_parsers(sub: Any) -> None:
    """Register ``demo`` and ``replay`` on the top-level subparsers."""
    p = sub.add_parser("demo", help="rebuild, then replay hours of candles through the whole pipeline")
    p.add_argument("--hours", type=float, default=6.0, help="replayed hours (default 6: about a minute)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("replay", help="replay more hours on the running stack, paced, to watch it trade")
    p.add_argument(
        "--hours",
        type=cli_support.bounded_float(0, 24 * 30, low_inclusive=False),
        default=2.0,
        help="replayed hours (default 2)",
    )
    p.add_argument(
        "--pace",
        type=cli_support.bounded_float(0, 60, low_inclusive=True),
        default=3.0,
        help="seconds between candles (default 3)",
    )
    p.set_defaults(func=cmd_replay)
