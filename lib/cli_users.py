"""``aitradex user create EMAIL [--ttl-hours N] [--password]``: a local user in ``auth.users``, with an
access token printed last and, with ``--password``, a password to sign in with at ``/auth/v1``.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

from lib import cli_support
from lib.config import load_settings
from lib.db.target import admin_connection, database_target
from lib.errors import ConfigError
from lib.services.auth.users import create_local_user, set_user_password, validate_new_password


def _new_password() -> str:
    """AITRADEX_USER_PASSWORD, or typed twice at a prompt: never a command-line value (shell history)."""
    from_env = os.environ.get("AITRADEX_USER_PASSWORD")
    if from_env:
        return from_env
    if not sys.stdin.isatty():
        raise ConfigError("--password: set AITRADEX_USER_PASSWORD, or run it in a terminal to be asked")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ConfigError("the two passwords differ")
    return first


def cmd_user_create(args: argparse.Namespace) -> int:
    settings = load_settings()
    password = _new_password() if args.password else None
    if password is not None:
        validate_new_password(password, min_length=settings.auth.min_password_length)
    with admin_connection(database_target(settings)) as conn:
        user = create_local_user(
            conn, args.email, settings.jwt_secret.reveal(), ttl_s=round(args.ttl_hours * 3600)
        )
        if password is not None:
            set_user_password(conn, user.id, password, min_length=settings.auth.min_password_length)
    print(f"{'created' if user.created else 'found existing'} user {user.email} id={user.id}")
    if password is not None:
        print("password set: the user can sign in at /auth/v1")
    print(user.token)
    return 0


def add_users_parser(sub: Any) -> None:
    """Register ``user create`` on the top-level subparsers."""
    p = sub.add_parser("user", help="local users")
    user_sub = p.add_subparsers(dest="user_command", required=True)
    c = user_sub.add_parser("create", help="create a local user and print its access token last")
    c.add_argument("email")
    c.add_argument(
        "--ttl-hours",
        type=cli_support.ttl_hours,
        default=24.0,
        help="token lifetime, above 0, at most 168 (default 24)",
    )
    c.add_argument(
        "--password",
        action="store_true",
        help="also set a password to sign in with: from AITRADEX_USER_PASSWORD, or asked for twice",
    )
    c.set_defaults(func=cmd_user_create)
