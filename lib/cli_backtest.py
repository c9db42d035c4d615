"""``aitradex backtest``: the bar-labelling table (the default), or the trading simulation's report.

Without ``--report``, the score buckets of :mod:`lib.research.backtest` (TP first, SL first, neither,
mean R, no fees). With ``--report DIR``, the simulation of :mod:`lib.research.report`: next-bar
entries with slippage, taker fees both ways, one position per symbol, the project's sizing, compounding,
the random-entry baseline per bucket, and the files ``report.md``, ``buckets.csv``, ``trades.csv``,
``equity.csv``, ``equity.png`` and ``calibration.png``. ``--split`` chooses the threshold in-sample
(signals before it) and reports out of sample (after it).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lib import cli_support
from lib.errors import ConfigError


def _utc_ms(text: str) -> int:
    """A ``YYYY-MM-DD`` (or ISO date-time) in UTC, as epoch milliseconds."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a date, YYYY-MM-DD (UTC)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _bps(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1000:
        raise argparse.ArgumentTypeError("must be between 0 and 1000 basis points")
    return value


def add_backtest_parser(sub: Any) -> None:
    """Register ``backtest`` on the command line's subparsers."""
    p = sub.add_parser("backtest", help="replay candles through an algorithm: outcomes per score bucket")
    p.add_argument("--algorithm", required=True, choices=["unirail_core", "quantum_ai"])
    p.add_argument(
        "--data",
        help="folder of <SYMBOL>-5m.csv[.gz] files (default: the 2018 set for the table, the 2024 USDT "
        "markets for --report)",
    )
    p.add_argument("--csv", help="also write the table as CSV, one row per bucket")
    p.add_argument(
        "--timeframe", default="5", help="candle interval, built from the 5-minute data (default 5)"
    )
    p.add_argument(
        "--horizon", type=int, default=48, help="bars a trade may take to reach TP or SL (default 48)"
    )
    p.add_argument("--step", type=int, default=1, help="score every Nth bar (default every bar)")
    p.add_argument(
        "--in-sample", action="store_true", help="quantum_ai: score with the deployed model throughout"
    )
    p.add_argument("--report", metavar="DIR", help="run the trading simulation and write its report here")
    p.add_argument("--fee-bps", type=_bps, default=5.5, help="taker fee per side, bps (default 5.5)")
    p.add_argument("--slippage-bps", type=_bps, default=2.0, help="slippage per fill, bps (default 2)")
    p.add_argument("--threshold", type=float, default=80.0, help="minimum score without --split (default 80)")
    p.add_argument("--from", dest="start", type=_utc_ms, help="first signal date, UTC (YYYY-MM-DD)")
    p.add_argument("--split", type=_utc_ms, help="choose the threshold before this date, report after it")
    p.add_argument("--to", dest="end", type=_utc_ms, help="signals before this date, UTC (YYYY-MM-DD)")
    p.add_argument(
        "--update-evidence",
        action="store_true",
        help="with --report: record the verdict in data/evidence.json (shown by signals-api and diagnostics)",
    )
    p.set_defaults(func=cmd_backtest)


def cmd_backtest(args: argparse.Namespace) -> int:
    """The table, or with ``--report`` the simulation's report files."""
    from lib.research.bundled_data import BUNDLED_DATA_DIR, BUNDLED_USDT_DIR

    if args.report:
        # The simulation prices trades in USDT: by default the real 2024 USDT markets.
        return _report(args, Path(args.data) if args.data else BUNDLED_USDT_DIR)
    return _table(args, Path(args.data) if args.data else BUNDLED_DATA_DIR)


def _table(args: argparse.Namespace, data: Path) -> int:
    from tqdm import tqdm

    from lib.research.backtest import run_backtest
    from lib.research.backtest_report import format_table, write_csv

    if args.csv:
        cli_support.check_writable(Path(args.csv))
    with tqdm(unit="symbol", disable=None, desc=f"backtest {args.algorithm}") as bar:
        report = run_backtest(
            args.algorithm,
            data,
            timeframe=args.timeframe,
            horizon_bars=args.horizon,
            step=args.step,
            progress=cli_support.bar_progress(bar),
            out_of_sample=not args.in_sample,
        )
    print(format_table(report), end="")
    if args.csv:
        write_csv(report, args.csv)
        print(f"wrote {args.csv}")
    return 0


def _report(args: argparse.Namespace, data: Path) -> int:
    from tqdm import tqdm

    from lib.research.exits import ExitRules
    from lib.research.report import write_report

    folder = Path(args.report)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {folder}: {exc.strerror}") from None
    cli_support.check_writable(folder / "report.md")
    for name, value in (("--from", args.start), ("--to", args.end)):
        if (
            value is not None
            and args.split is not None
            and ((name == "--from" and value >= args.split) or (name == "--to" and value <= args.split))
        ):
            raise ConfigError(f"{name} must leave time on its side of --split")
    rules = ExitRules(horizon_bars=args.horizon, fee_bps=args.fee_bps, slippage_bps=args.slippage_bps)
    bars: dict[str, Any] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, unit="symbol", disable=None, desc=stage)
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        report = write_report(
            folder,
            algorithm=args.algorithm,
            data_dir=data,
            timeframe=args.timeframe,
            threshold=args.threshold,
            rules=rules,
            start_ms=args.start,
            split_ms=args.split,
            end_ms=args.end,
            command=shlex.join(["aitradex", *sys.argv[1:]]),
            progress=progress,
        )
    finally:
        for bar in bars.values():
            bar.close()
    print(report.verdict())
    if args.update_evidence:
        from lib.research.report import update_evidence_file
        from lib.services.evidence import EVIDENCE_FILE

        update_evidence_file(EVIDENCE_FILE, report.score_evidence(shlex.join(["aitradex", *sys.argv[1:]])))
        print(f"updated {EVIDENCE_FILE}")
    for path in report.files.values():
        print(f"wrote {path}")
    return 0
