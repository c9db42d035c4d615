"""``aitradex executor [--loop] [--source-address IP]``: run an executor host in this process.

One run (without ``--loop``) or a loop that polls the signal queue every ``--interval-s`` while it is
empty, until SIGTERM or SIGINT (or ``--max-runs``); prints a JSON line ``{"ready": worker}`` once it
polls, and one JSON summary line at the end. Each host has its own source address and IP budget;
hosts on one Postgres share large signals through their shards. See :mod:`lib.ops.executor_host`.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from lib import cli_support

_positive = cli_support.bounded_float(0, 3600, low_inclusive=False)
_share = cli_support.bounded_float(0, 1, low_inclusive=False)


def cmd_executor(args: argparse.Namespace) -> int:
    """Serve as an executor host; 0 after a clean stop."""
    import asyncio

    import uvloop

    from lib.config import load_settings
    from lib.log import configure_logging
    from lib.ops.executor_host import HostOptions, run_host

    configure_logging()
    options = HostOptions(
        source_address=args.source_address,
        paper_url=args.paper_url,
        interval_s=args.interval_s,
        lease_s=args.lease_s,
        shard_min_users=args.shard_min_users,
        share=args.share,
        loop=args.loop,
        max_runs=args.max_runs,
    )
    settings = load_settings()

    def ready(worker: str) -> None:
        print(json.dumps({"ready": worker}), flush=True)

    serving = run_host(settings, options, ready=ready)
    # uvloop: the loop the functions server runs the executor on.
    report = uvloop.run(serving) if args.uvloop else asyncio.run(serving)
    print(json.dumps(report.as_dict()), flush=True)
    return 0


def add_executor_parser(sub: Any) -> None:
    """Register ``aitradex executor``."""
    p = sub.add_parser("executor", help="run an executor host: claim signals and their shards, place orders")
    p.add_argument("--loop", action="store_true", help="poll the queue until SIGTERM (default: one run)")
    p.add_argument(
        "--source-address",
        type=cli_support.ip_address,
        help="the local IP every exchange call leaves from (default: AITRADEX_SOURCE_ADDRESS, or the OS's)",
    )
    p.add_argument("--paper-url", help="trade on this paper exchange (default: the local stack's, or Bybit)")
    p.add_argument("--interval-s", type=_positive, default=0.5, help="pause between polls of an empty queue")
    p.add_argument(
        "--lease-s",
        type=_positive,
        help="how long a shard claim holds without renewal before another host takes it over (default 30)",
    )
    p.add_argument(
        "--shard-min-users",
        type=int,
        help="split a signal into shards from this many eligible users (default 100)",
    )
    p.add_argument(
        "--share",
        type=_share,
        default=0.5,
        help="with --paper-url: the share of the IP budget this host keeps to",
    )
    p.add_argument("--max-runs", type=int, help="stop after this many runs")
    p.add_argument("--no-uvloop", dest="uvloop", action="store_false", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_executor)
