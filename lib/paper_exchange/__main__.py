"""``python -m lib.paper_exchange --data DIR --port N``: serve the paper exchange in the foreground."""

from __future__ import annotations

import argparse
from pathlib import Path

from lib.paper_exchange.config import DEFAULT_HOST, DEFAULT_PORT, DEFAULT_STATE_PATH, PaperExchangeConfig
from lib.paper_exchange.ratelimit import ExchangeLimits
from lib.paper_exchange.server import serve
from lib.research.bundled_data import BUNDLED_USDT_DIR


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m lib.paper_exchange", description=__doc__)
    parser.add_argument(
        "--data",
        type=Path,
        default=BUNDLED_USDT_DIR,
        help="folder of <SYMBOL>-5m.csv[.gz] / <SYMBOL>-1h.csv[.gz] files, or of 5m/ and 1h/ folders",
    )
    parser.add_argument(
        "--symbols", default=None, help="comma-separated symbols to serve (default: every one in --data)"
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default: loopback)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE_PATH, help="JSON state file")
    parser.add_argument("--no-state", action="store_true", help="keep state in memory only")
    parser.add_argument("--start-time-ms", type=int, default=None, help="replay start for a new state file")
    parser.add_argument("--speed", type=float, default=0.0, help="replay ms per wall ms (0: frozen)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault generators")
    defaults = ExchangeLimits()
    parser.add_argument(
        "--ip-limit",
        type=int,
        default=defaults.ip_requests,
        help="requests per source address per --ip-window-s before a 403 ban (0: no IP limit)",
    )
    parser.add_argument("--ip-window-s", type=float, default=defaults.ip_window_s)
    parser.add_argument("--ip-ban-s", type=float, default=defaults.ip_ban_s, help="how long a 403 ban lasts")
    parser.add_argument(
        "--order-create-per-s",
        type=int,
        default=defaults.order_create_per_s,
        help="order creates per second per account before 10006 (0: no per-account limit)",
    )
    args = parser.parse_args(argv)
    limits = ExchangeLimits(
        ip_requests=args.ip_limit or None,
        ip_window_s=args.ip_window_s,
        ip_ban_s=args.ip_ban_s,
        account_limits=args.order_create_per_s > 0,
        order_create_per_s=max(1, args.order_create_per_s),
    )
    serve(
        PaperExchangeConfig(
            data_dir=args.data,
            symbols=tuple(s.strip() for s in args.symbols.split(",") if s.strip()) if args.symbols else None,
            state_path=None if args.no_state else args.state,
            start_time_ms=args.start_time_ms,
            speed=args.speed,
            seed=args.seed,
            host=args.host,
            port=args.port,
            limits=limits,
        )
    )


if __name__ == "__main__":
    main()
