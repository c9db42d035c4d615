"""The ``aitradex data download`` command: its arguments, a progress bar per symbol, and what it prints.

Bad arguments (an unknown interval, a malformed symbol or date, ``--since`` not before ``--until``) are
usage errors (exit 2) found before any request. A symbol that fails is an ``error:`` line on stderr
and makes the exit code 1; the other symbols are still downloaded.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Never

from tqdm import tqdm

from lib.core.timeframes import TIMEFRAMES
from lib.core.vocabulary import ENVIRONMENTS
from lib.errors import ConfigError, InvalidRequest
from lib.local_state import db_name_from, read_services, state_dir_from
from lib.ops.data.candle_range import utc_text
from lib.ops.data.download import DownloadRequest, SymbolOutcome


def utc_time_ms(text: str) -> int:
    """``--since``/``--until``: ``2024-01-01``, ``2024-01-01T12:30`` or with seconds and an offset; a
    time without an offset is UTC. Epoch milliseconds."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a date: {text!r} (YYYY-MM-DD, or YYYY-MM-DDTHH:MM, in UTC unless an offset is given)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def symbol_list(text: str) -> tuple[str, ...]:
    """``--symbols``: comma-separated, any case; each repeated symbol is kept once."""
    symbols = tuple(dict.fromkeys(s.strip().upper() for s in text.split(",") if s.strip()))
    if not symbols:
        raise argparse.ArgumentTypeError("name at least one symbol, as BTCUSDT,ETHUSDT")
    return symbols


def add_download_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``aitradex data download``."""
    parser.add_argument(
        "--symbols", required=True, type=symbol_list, help="comma-separated, as BTCUSDT,ETHUSDT"
    )
    parser.add_argument(
        "--interval", required=True, choices=TIMEFRAMES, help="Bybit kline interval, as 5 or 60"
    )
    parser.add_argument("--since", required=True, type=utc_time_ms, help="first candle's earliest open (UTC)")
    parser.add_argument(
        "--until", type=utc_time_ms, help="candles must close by then (UTC; default: every closed candle)"
    )
    parser.add_argument(
        "--environment",
        choices=ENVIRONMENTS,
        default="mainnet",
        help="default mainnet; paper: the local stack's",
    )
    parser.add_argument("--out", required=True, type=Path, help="folder of <SYMBOL>-<5m|1h|...>.csv.gz files")
    parser.set_defaults(func=run_download, usage_error=parser.error)


class _Bars:
    """One tqdm bar per symbol (shown on a terminal only, as every bar of the command line)."""

    def __init__(self) -> None:
        self._bar: tqdm[Never] | None = None

    def begin(self, symbol: str, total: int) -> None:
        self._bar = tqdm(total=total, desc=symbol, unit="candle", unit_scale=True, disable=None)

    def advance(self, candles: int) -> None:
        if self._bar is not None:
            self._bar.update(candles)

    def end(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def run_download(args: argparse.Namespace) -> int:
    """``aitradex data download``: 0 when every symbol is written or up to date, else 1."""
    import asyncio

    from lib.exchange.access import MarketAccess
    from lib.ops.data.download import download

    try:
        request = DownloadRequest(
            symbols=args.symbols,
            interval=args.interval,
            since_ms=args.since,
            until_ms=args.until,
            environment=args.environment,
            out_dir=args.out,
        )
    except InvalidRequest as exc:
        args.usage_error(exc.message)  # exits 2, as argparse's own refusals do
    paper_url = None
    if request.environment == "paper":
        paper_url = read_services(state_dir_from(os.environ), db_name_from(os.environ)).get(
            "paper_exchange_url"
        )
        if not paper_url:
            raise ConfigError(
                "no paper exchange is recorded for this state folder: "
                "start the stack (`aitradex up`, `make demo`)"
            )
    outcomes = asyncio.run(
        download(request, MarketAccess(paper_url=str(paper_url) if paper_url else None), _Bars())
    )
    for outcome in outcomes:
        _report(outcome)
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def _report(outcome: SymbolOutcome) -> None:
    symbol = outcome.symbol
    for note in outcome.notes:
        print(f"note: {symbol}: {note}", flush=True)
    if outcome.status == "failed":
        print(f"error: {symbol}: {outcome.error}", file=sys.stderr, flush=True)
        return
    last = utc_text(outcome.last_ms) if outcome.last_ms is not None else "?"
    if outcome.status == "up_to_date":
        print(f"{symbol}: up to date in {outcome.path} (last candle {last})", flush=True)
        return
    first = utc_text(outcome.first_ms) if outcome.first_ms is not None else "?"
    verb = "wrote" if outcome.status == "written" else "appended"
    print(f"{symbol}: {verb} {outcome.added:,} candles to {outcome.path} (now {first} to {last})", flush=True)
