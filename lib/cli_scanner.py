"""``aitradex scanner [--loop] [--source-address IP] ...``: run a scanner host in this process.

See :mod:`lib.ops.scanner_host`: the host takes its share of every bar of every configured timeframe,
agreed with the other hosts through the database, and sends its exchange requests from its own source
address through its own rate limiter. SIGTERM stops it cleanly (its lease is dropped at once).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from lib import cli_support
from lib.core.timeframes import TIMEFRAMES
from lib.core.vocabulary import ALGORITHMS

_positive = cli_support.bounded_float(0, 86_400, low_inclusive=False)


def cmd_scanner(args: argparse.Namespace) -> int:
    """Run the scanner host until SIGTERM (``--loop``), or until the current bars are scanned."""
    from lib.config import load_settings
    from lib.db.target import check_reachable, database_target
    from lib.ops.scanner_host import run_host, run_host_process
    from lib.services.scanning.sharded import DEFAULT_LEASE_S, ShardHost

    settings = load_settings()
    check_reachable(database_target(settings))
    address = args.source_address or settings.exchange.source_address
    # An empty scope is the configured market's (the environment, or this paper exchange).
    options: dict[str, Any] = {"scope": args.scope or "", "lease_s": args.lease_s or DEFAULT_LEASE_S}
    options["source_address"] = address
    if args.host_id:
        options["host_id"] = args.host_id
    host = ShardHost(**options)
    report = run_host_process(
        lambda stop: run_host(
            settings,
            host,
            stop=stop,
            paper_url=args.paper_url,
            timeframes=args.timeframe,
            algorithms=args.algorithm,
            loop=args.loop,
            poll_s=args.poll_s,
            sweep_s=args.sweep_s,
            max_seconds=args.max_seconds,
        )
    )
    summary = {"host": report.host_id, "bars_completed": report.completed, "symbols_scanned": report.symbols}
    print(json.dumps(summary), flush=True)
    return 0


def add_scanner_parser(sub: Any) -> None:
    """Register ``aitradex scanner``."""
    p = sub.add_parser("scanner", help="run a scanner host: its share of every bar, agreed with the others")
    p.add_argument("--loop", action="store_true", help="keep scanning each new bar until SIGTERM")
    p.add_argument("--source-address", type=cli_support.ip_address, help="default: AITRADEX_SOURCE_ADDRESS")
    p.add_argument("--paper-url", help="default: the paper exchange the local stack runs")
    p.add_argument("--host-id", help="default: machine name, pid and a random suffix")
    p.add_argument("--scope", help="the market the hosts share (default: the environment, or paper:<url>)")
    p.add_argument("--lease-s", type=_positive, help="lease length in seconds (default 10)")
    p.add_argument("--poll-s", type=_positive, default=0.5, help="market clock poll (default 0.5 s)")
    p.add_argument(
        "--sweep-s", type=_positive, default=1.0, help="passes over a bar others still scan (default 1 s)"
    )
    p.add_argument("--max-seconds", type=_positive, help="stop after this long (default: never)")
    p.add_argument(
        "-t", "--timeframe", action="append", choices=TIMEFRAMES, help="default: scanner.timeframes"
    )
    p.add_argument(
        "-a", "--algorithm", action="append", choices=ALGORITHMS, help="default: scanner.algorithms"
    )
    p.set_defaults(func=cmd_scanner)
