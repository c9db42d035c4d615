"""``python -m lib.paper_exchange --data DIR --port N``: serve the paper exchange in the foreground."""

from __future__ import annotations

import argparse
from pathlib import Path

from lib.paper_exchange.config import DEFAULT_HOST, DEFAULT_PORT, DEFAULT_STATE_PATH, PaperExchangeConfig
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
    args = parser.parse_args(argv)
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
        )
    )


if __name__ == "__main__":
    main()
