"""``aitradex status``: what is known about the local stack, and what is not running.

It always prints what it knows: the database URL (as ``authenticator``), the stack's URLs when its
processes run, and the keys. The ``anon`` and ``service_role`` keys are minted once and kept in the
state folder's secrets file (as the Supabase CLI keeps its keys), so every call prints the same ones;
they are minted again only when they no longer verify against the JWT secret (a new secret).

The database and the stack's processes are checked separately, so a stopped database is reported as
exactly that, never as "the stack is not running". Anything down is a problem: the command then
exits non-zero, so ``eval "$(aitradex status -o env)"`` in a ``set -e`` script stops there.

With the embedded server and WAL archiving on, the WAL receiver (:mod:`lib.db.wal_receiver`, part of
the stack) is reported too: ``WAL_RECEIVER`` (``streaming`` or ``down``), the last LSN it flushed and
its lag in bytes. While the stack runs, a receiver that does not stream is a problem: commits are then
safe from a lost disk only once their segment is archived (up to 60 s later).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lib.config import Settings
from lib.db import wal_receiver
from lib.db.target import check_reachable, database_target
from lib.errors import DatabaseUnavailable, Unauthorized
from lib.local_state import read_local_secret, write_local_secret
from lib.ops import stack_runner
from lib.services.auth import tokens

API_KEY_NAMES = {"anon": "ANON_KEY", "service_role": "SERVICE_ROLE_KEY"}
NOT_RUNNING = (
    "the functions server and paper exchange are not running: `aitradex up` or `make demo` starts them"
)

RECEIVER_DOWN = (
    "commits are safe from a lost disk only once archive_timeout (60 s) archives their segment; "
    "the stack restarts it within seconds, see <backup folder>/wal-receiver.log"
)


@dataclass(frozen=True, slots=True)
class StackStatus:
    """``values``: KEY=value facts, in print order. ``problems``: what is down, one sentence each."""

    values: dict[str, str]
    problems: list[str] = field(default_factory=list)


def stable_api_key(state_dir: Path, role: str, secret: str) -> str:
    """The stored key of ``role`` if it still verifies with ``secret``; else a new one, stored."""
    name = API_KEY_NAMES[role]
    stored = read_local_secret(state_dir, name)
    if stored is not None:
        try:
            if tokens.verify(stored, secret).get("role") == role:
                return stored
        except Unauthorized:
            pass  # minted with another secret, or expired: mint a new one below
    key = tokens.mint_api_key(role, secret)
    write_local_secret(state_dir, name, key)
    return key


def stack_status(settings: Settings) -> StackStatus:
    """What ``aitradex status`` prints (see the module docstring)."""
    target = database_target(settings)
    values = {"DB_URL": target.app_url}
    problems: list[str] = []
    try:
        check_reachable(target)
    except DatabaseUnavailable as exc:
        problems.append(exc.message)
    facts = stack_runner.running_facts(settings)
    if facts:
        values |= {
            "API_URL": str(facts["api_url"]),
            "FUNCTIONS_URL": str(facts["functions_url"]),
            "PAPER_EXCHANGE_URL": str(facts["paper_exchange_url"]),
        }
    else:
        problems.append(NOT_RUNNING)
    if wal_receiver.wanted(settings) and not problems:
        receiver = wal_receiver.receiver_status(settings)
        values |= {
            "WAL_RECEIVER": "streaming" if receiver.streaming else "down",
            "WAL_FLUSHED_LSN": receiver.flushed_lsn or "",
            "WAL_LAG_BYTES": "" if receiver.lag_bytes is None else str(receiver.lag_bytes),
        }
        if not receiver.streaming:
            problems.append(f"the WAL receiver is {receiver.describe()}: {RECEIVER_DOWN}")
    secret = settings.jwt_secret.reveal()
    values |= {
        "ANON_KEY": stable_api_key(settings.state_dir, "anon", secret),
        "SERVICE_ROLE_KEY": stable_api_key(settings.state_dir, "service_role", secret),
        "JWT_SECRET": secret,
    }
    return StackStatus(values, problems)
