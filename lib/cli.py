"""The ``aitradex`` command line.

Subcommands:
  rebuild [--dry-run]          rebuild the local stack from nothing (same as scripts/rebuild_system.py)
  status [-o env|pretty]       the running stack's URLs and keys (``-o env``: KEY=value lines)
  user create EMAIL            create a local user; its access token is the last line printed
  db start|stop                start or stop the embedded PostgreSQL
  migrate                      apply pending migrations only

Exit codes: 0 success, 1 failure (the reason on stderr), 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from lib.auth.tokens import mint_api_key
from lib.auth.users import create_local_user
from lib.config import load_settings
from lib.db import migrate
from lib.errors import AitradexError
from lib.ops.rebuild import StepResult, rebuild
from lib.stack import admin_connection, database_target, embedded_server, start_database


def _print_step(step: StepResult) -> None:
    mark = "changed" if step.changed else "ok"
    print(f"  [{mark:>7}] {step.name:<14} {step.detail}", flush=True)


def cmd_rebuild(args: argparse.Namespace) -> int:
    print("Rebuild plan (dry run: nothing will change):" if args.dry_run else "Rebuilding the local stack:")
    report = rebuild(dry_run=args.dry_run, progress=_print_step)
    verdict = "would change something" if args.dry_run else "changed something"
    print(f"Done: {verdict if report.changed else 'everything already in place'}.")
    return 0


def _status_values() -> dict[str, str]:
    settings = load_settings()
    target = database_target(settings)
    if target.embedded is not None and not target.embedded.is_running():
        raise AitradexError("the local stack is not running: run `make demo` or `aitradex rebuild` first")
    secret = settings.jwt_secret.reveal()
    return {
        "DB_URL": target.app_url,
        "ANON_KEY": mint_api_key("anon", secret),
        "SERVICE_ROLE_KEY": mint_api_key("service_role", secret),
        "JWT_SECRET": secret,
    }


def cmd_status(args: argparse.Namespace) -> int:
    values = _status_values()
    if args.output == "env":
        for key, value in values.items():
            print(f"{key}={value}")
    elif args.output == "json":
        print(json.dumps(values, indent=2))
    else:
        width = max(map(len, values))
        for key, value in values.items():
            print(f"{key:>{width}}: {value}")
    return 0


def cmd_user_create(args: argparse.Namespace) -> int:
    settings = load_settings()
    with admin_connection(database_target(settings)) as conn:
        user = create_local_user(
            conn, args.email, settings.jwt_secret.reveal(), ttl_s=int(args.ttl_hours * 3600)
        )
    print(f"{'created' if user.created else 'found existing'} user {user.email} id={user.id}")
    print(user.token)
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    settings = load_settings()
    if not settings.database.embedded:
        raise AitradexError("DATABASE_URL is set: the database is external and not managed here")
    if args.action == "start":
        _, done = start_database(settings)
        print("; ".join(done) or "already running")
    else:
        embedded_server(settings).stop()
        print("embedded PostgreSQL stopped")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = load_settings()
    with admin_connection(database_target(settings)) as conn:
        applied = migrate.migrate(conn)
    print("\n".join(f"applied {name}" for name in applied) or "up to date")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="aitradex", description="AITRADEX1 operations")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("rebuild", help="rebuild the local stack from nothing (idempotent)")
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    p.set_defaults(func=cmd_rebuild)

    p = sub.add_parser("status", help="URLs and keys of the running local stack")
    p.add_argument("-o", "--output", choices=["env", "pretty", "json"], default="pretty")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("user", help="local users")
    user_sub = p.add_subparsers(dest="user_command", required=True)
    c = user_sub.add_parser("create", help="create a local user and print its access token last")
    c.add_argument("email")
    c.add_argument("--ttl-hours", type=float, default=24.0, help="token lifetime (default 24)")
    c.set_defaults(func=cmd_user_create)

    p = sub.add_parser("db", help="the embedded PostgreSQL")
    p.add_argument("action", choices=["start", "stop"])
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("migrate", help="apply pending migrations")
    p.set_defaults(func=cmd_migrate)
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
    return code


if __name__ == "__main__":
    sys.exit(main())
