"""pg_cron and pg_net, where the database has them (a hosted Supabase project): the jobs' SQL."""

from __future__ import annotations

from typing import Any

import psycopg


def available(conn: psycopg.Connection[Any]) -> bool:
    """Whether both pg_cron and pg_net are installed in this database."""
    row = conn.execute("select count(*) from pg_extension where extname in ('pg_cron', 'pg_net')").fetchone()
    return bool(row and row[0] == 2)


def current(conn: psycopg.Connection[Any], name: str) -> tuple[str, str] | None:
    """The named job's ``(schedule, command)``, or None when no such job exists."""
    row = conn.execute("select schedule, command from cron.job where jobname = %s", (name,)).fetchone()
    return None if row is None else (str(row[0]), str(row[1]))


def schedule(conn: psycopg.Connection[Any], name: str, cron_expression: str, command: str) -> None:
    """Create or replace the named job (``cron.schedule`` upserts by name)."""
    conn.execute("select cron.schedule(%s, %s, %s)", (name, cron_expression, command))
