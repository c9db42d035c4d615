"""The ``aitradex`` command line.

Subcommands:
  rebuild [--dry-run] [--reset-settings] [--restore latest]  rebuild the local stack (rebuild_system.py)
  status [-o env|pretty|json]  the stack's URLs and keys (``-o env``: KEY=value lines); 1 if anything is down
  user create EMAIL [--password]  create a local user (--password: one it signs in with); its access
                               token is the last line printed
  up [--functions-port P ...]  run the functions server and paper exchange in the foreground
  down                         stop a stack the rebuild started in the background
  clean-state                  stop everything the state folder runs, then delete the folder
  db start|stop                start or stop the embedded PostgreSQL
  keys rotate                  add a master key version and re-encrypt every stored API key
  demo [--hours H]             rebuild, then replay H hours through scans, execution and tracking
  replay [--hours H --pace S]  replay H more hours on the running stack, a candle every S seconds
  paper-account create         open a funded paper account; prints its API key and secret
  backtest --algorithm NAME    replay the data; per score bucket: signals, TP-first, SL-first, neither, mean R
  migrate                      apply pending migrations only
  scan -t TF [--dry-run ...]   scan a timeframe now, in this process (not over HTTP), and print a summary
  scanner [--loop] [--source-address IP]  a scanner host: its share of every bar, agreed through Postgres
  executor [--loop] [--source-address IP] an executor host: claims signals and shards of their users
  data download --symbols ...  closed candles from Bybit (or the paper exchange) into CSV files, resumable
  secrets export|import        the local secrets, backed up encrypted with a passphrase, and restored
  settings get|set|diff|export app_settings: read, change (validated, audited), compare, version
  trading halt|resume|status   the kill switch: no executor places a new order while halted
  backup [list|verify]         a verified base backup now; the catalogue; a scratch restore that checks one
  restore --to-time T|--latest stop the stack, restore a base backup, replay WAL to T, start again
  reconcile [--since T]        import the orders and fills the exchange has and the database lacks

Exit codes: 0 success, 1 failure (the reason on stderr, one line), 2 bad usage. A failure never shows
a traceback: an unexpected error is one line too (``aitradex --traceback ...`` shows it in full).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from decimal import Decimal

from lib import cli_support
from lib.cli_backtest import add_backtest_parser
from lib.cli_backup import add_backup_parser
from lib.cli_demo import add_demo_parsers
from lib.cli_executor import add_executor_parser
from lib.cli_reconcile import add_reconcile_parser
from lib.cli_scanner import add_scanner_parser
from lib.cli_secrets import add_secrets_parser
from lib.cli_settings import add_settings_parser
from lib.cli_trading import add_trading_parser
from lib.cli_users import add_users_parser
from lib.config import load_settings, parse_http_workers
from lib.core.timeframes import TIMEFRAMES
from lib.core.vocabulary import ALGORITHMS, ENVIRONMENTS
from lib.db import migrate
from lib.db.embedded import EmbeddedPostgres
from lib.db.target import admin_connection, check_reachable, database_target, start_database
from lib.errors import AitradexError, ConfigError
from lib.local_state import db_name_from, read_stack, state_dir_from
from lib.ops import stack_runner
from lib.ops.data.command import add_download_arguments
from lib.ops.rebuild import rebuild


def cmd_rebuild(args: argparse.Namespace) -> int:
    print("Rebuild plan (dry run: nothing will change):" if args.dry_run else "Rebuilding the local stack:")
    report = rebuild(
        dry_run=args.dry_run,
        reset_settings=args.reset_settings,
        progress=cli_support.print_step,
        restore=args.restore,
    )
    verdict = "would change something" if args.dry_run else "changed something"
    print(f"Done: {verdict if report.changed else 'everything already in place'}.")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from lib.ops.status import stack_status

    status = stack_status(load_settings())
    cli_support.print_values(status.values, args.output)
    if status.problems:
        print(f"error: {'; '.join(status.problems)}", file=sys.stderr)
        return 1
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    if os.environ.get("DATABASE_URL") or os.environ.get("SUPABASE_DB_URL"):
        raise ConfigError("DATABASE_URL is set: the database is external and not managed here")
    if args.action == "start":
        _, done = start_database(load_settings())
        print("; ".join(done) or "already running")
        return 0
    # Stopping needs no secret and no port: pg_ctl finds the server from its data folder.
    state_dir = cli_support.existing_state_dir()
    port = read_stack(state_dir).get("pg_port")
    server = EmbeddedPostgres.in_state_dir(state_dir, int(port) if port else None)
    print("embedded PostgreSQL stopped" if server.stop() else "embedded PostgreSQL was not running")
    return 0


def _http_workers(text: str) -> int:
    """``--workers``: as ``AITRADEX_HTTP_WORKERS`` (1 to 64)."""
    try:
        return parse_http_workers(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def cmd_up(args: argparse.Namespace) -> int:
    settings = load_settings()
    if settings.database.embedded:
        start_database(settings)
    else:
        check_reachable(database_target(settings))
    if stack_runner.running_facts(settings):
        raise AitradexError("the stack is already running: `aitradex down` stops it")
    if args.workers is not None:
        settings = dataclasses.replace(
            settings, http=dataclasses.replace(settings.http, workers=args.workers)
        )
    stack_runner.run_foreground(
        settings,
        functions_port=args.functions_port,
        paper_port=args.paper_port,
        speed=args.speed,
        announce=lambda line: print(line, flush=True),
    )
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    stopped = stack_runner.stop_recorded(cli_support.existing_state_dir(), db_name_from(os.environ))
    print("stack stopped" if stopped else "no stack was running")
    return 0


def cmd_clean_state(args: argparse.Namespace) -> int:
    from lib.ops.clean_state import clean_state

    clean_state(state_dir_from(os.environ), lambda line: print(line, flush=True))
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    import asyncio

    from tqdm import tqdm

    from lib.crypto import KeyVault
    from lib.ops.rotate_keys import add_local_master_key, rotate_all

    settings = load_settings()
    target = database_target(settings)
    # The database first: a new key version is added only when the rotation can then run.
    check_reachable(target)
    if not args.no_new_key:
        version = add_local_master_key(settings.state_dir)
        print(f"added master key version {version} to {settings.state_dir / 'secrets.json'}")
        settings = load_settings()
    vault = KeyVault(settings.master_keys)
    print(f"re-encrypting every stored API key under master key version {vault.current_version}")

    async def run() -> int:
        async with target.database() as db:
            with tqdm(unit="account", disable=None) as bar:
                progress = cli_support.bar_progress(bar)
                report = await rotate_all(db, vault, batch_size=args.batch_size, progress=progress)
        counts = f"already current {report.already_current}, remaining {report.remaining}"
        print(f"rotated {report.rotated}, {counts}")
        if report.failed:
            print(
                f"could not decrypt {len(report.failed)} account(s): {', '.join(report.failed)}",
                file=sys.stderr,
            )
            return 1
        return 0

    return asyncio.run(run())


def cmd_paper_account_create(args: argparse.Namespace) -> int:
    from lib.paper_exchange.client import PaperControls

    settings = load_settings()
    facts = stack_runner.running_facts(settings)
    if facts is None:
        raise AitradexError("the local stack is not running: run `make demo` or `aitradex rebuild` first")
    account = PaperControls(str(facts["paper_exchange_url"])).create_account(args.balance)
    print(f"paper account {account.account_id} with {args.balance:f} USDT on {facts['paper_exchange_url']}")
    print("connect it with the trading-account function (environment: paper); keep the secret private:")
    print(f"API_KEY={account.api_key}")
    print(f"API_SECRET={account.api_secret}")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = load_settings()
    with admin_connection(database_target(settings)) as conn:
        applied = migrate.migrate(conn)
    print("\n".join(f"applied {name}" for name in applied) or "up to date")
    return 0


def cmd_scan(args: argparse.Namespace) -> int:
    import asyncio

    from tqdm import tqdm

    from lib.app.local_scan import scan_local
    from lib.services.scanning.models import ScanRequest
    from lib.services.scanning.scanner import format_summary

    requests = [
        ScanRequest(
            timeframe=args.timeframe,
            algorithm=algorithm,
            symbols=tuple(s.strip().upper() for s in args.symbols.split(",") if s.strip())
            if args.symbols
            else None,
            max_symbols=args.max_symbols,
            min_score=args.min_score,
            dry_run=args.dry_run,
        )
        for algorithm in dict.fromkeys(args.algorithm or ["unirail_core"])
    ]
    settings = load_settings()
    check_reachable(database_target(settings))
    with tqdm(unit="symbol", desc="klines", disable=None) as bar:

        class Progress:
            def universe(self, symbols: int) -> None:
                bar.reset(total=symbols)

            def fetched(self, symbol: str, ok: bool) -> None:
                bar.update(1)

        results = asyncio.run(
            scan_local(settings, requests, environment=args.environment, progress=Progress())
        )
    print(format_summary(results))
    return 1 if any(r.status == "failed" for r in results) else 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="aitradex", description="AITRADEX1 operations")
    parser.add_argument(
        "--traceback", action="store_true", help="show the full traceback of an unexpected error"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("rebuild", help="rebuild the local stack from nothing (idempotent)")
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    p.add_argument(
        "--reset-settings",
        action="store_true",
        help="put app_settings.json's values back over live settings that differ (default: keep, report)",
    )
    p.add_argument(
        "--restore",
        choices=["latest"],
        help="a new machine: restore the newest base backup and every archived commit before rebuilding",
    )
    p.set_defaults(func=cmd_rebuild)

    p = sub.add_parser("status", help="URLs and keys of the running local stack")
    p.add_argument("-o", "--output", choices=["env", "pretty", "json"], default="pretty")
    p.set_defaults(func=cmd_status)

    add_users_parser(sub)

    p = sub.add_parser("db", help="the embedded PostgreSQL")
    p.add_argument("action", choices=["start", "stop"])
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("up", help="run the functions server and paper exchange in the foreground")
    p.add_argument(
        "--functions-port",
        type=cli_support.port,
        help="default 54321, or a free port if it is busy; 0: any free port",
    )
    p.add_argument(
        "--paper-port",
        type=cli_support.port,
        help="default 54330, or a free port if it is busy; 0: any free port",
    )
    p.add_argument("--speed", type=float, default=0.0, help="paper replay speed (0: advance explicitly)")
    p.add_argument(
        "--workers",
        type=_http_workers,
        help="functions server worker processes (default AITRADEX_HTTP_WORKERS, else the CPU count)",
    )
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("down", help="stop a stack started in the background")
    p.set_defaults(func=cmd_down)

    p = sub.add_parser("clean-state", help="stop everything the state folder runs, then delete the folder")
    p.set_defaults(func=cmd_clean_state)

    p = sub.add_parser("keys", help="API key encryption")
    keys_sub = p.add_subparsers(dest="keys_command", required=True)
    k = keys_sub.add_parser("rotate", help="add a master key version and re-encrypt every stored key with it")
    k.add_argument(
        "--no-new-key", action="store_true", help="only re-encrypt under the newest existing version"
    )
    k.add_argument("--batch-size", type=int, default=100)
    k.set_defaults(func=cmd_keys_rotate)

    add_demo_parsers(sub)

    p = sub.add_parser("paper-account", help="accounts on the local paper exchange")
    paper_sub = p.add_subparsers(dest="paper_command", required=True)
    c = paper_sub.add_parser("create", help="open a funded paper account and print its API key and secret")
    c.add_argument(
        "--balance",
        type=cli_support.balance,
        default=Decimal(10000),
        help="USDT balance, at most 1e12 (default 10000)",
    )
    c.set_defaults(func=cmd_paper_account_create)

    add_backtest_parser(sub)

    p = sub.add_parser("migrate", help="apply pending migrations")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser(
        "scan", help="scan a timeframe now (in this process) and store the signals that qualify"
    )
    p.add_argument("-t", "--timeframe", required=True, choices=TIMEFRAMES, help="Bybit kline interval")
    p.add_argument(
        "-a", "--algorithm", action="append", choices=ALGORITHMS, help="repeatable; default unirail_core"
    )
    p.add_argument("--symbols", help="comma-separated symbols instead of the tickers universe")
    p.add_argument("--max-symbols", type=int, help="replaces scanner.universe's cap")
    p.add_argument("--min-score", type=float, help="replaces scanner.threshold for this run")
    p.add_argument("--dry-run", action="store_true", help="score and record the run, store no signal")
    p.add_argument("--environment", choices=ENVIRONMENTS, help="default: exchange.environment (paper)")
    p.set_defaults(func=cmd_scan)

    p = sub.add_parser("data", help="market data files")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    add_download_arguments(data_sub.add_parser("download", help="download closed candles into CSV files"))

    add_secrets_parser(sub)
    add_settings_parser(sub)
    add_trading_parser(sub)
    add_backup_parser(sub)
    add_reconcile_parser(sub)
    add_executor_parser(sub)
    add_scanner_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aitradex`` console script."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except AitradexError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        for key, value in exc.details.items():
            print(f"  {key}: {value}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        # A bug, or a failure no code above turned into an AitradexError: still one line, not a traceback.
        if args.traceback:
            raise
        text = " ".join(str(exc).split())[:300]
        print(f"error: unexpected {type(exc).__name__}: {text} (--traceback shows where)", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
