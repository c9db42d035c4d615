"""pg_cron and pg_net, where the database has them (a hosted Supabase project): the jobs' SQL."""

from __future__ import annotations

import json
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


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def http_post_command(url: str, secret_name: str, body: dict[str, object]) -> str:
    """The SQL a pg_cron job runs: a POST of ``body`` to ``url`` through pg_net, with the bearer key read
    from Vault's ``secret_name`` at run time (never stored in the job)."""
    # Every interpolated value goes through _literal (quote doubling): the SQL text is stored by
    # pg_cron and run later, so it cannot take bind parameters.
    key = f"(select decrypted_secret from vault.decrypted_secrets where name = {_literal(secret_name)})"  # noqa: S608
    headers = f"jsonb_build_object('Content-Type', 'application/json', 'Authorization', 'Bearer ' || {key})"
    return (
        f"select net.http_post(url := {_literal(url)}, headers := {headers}, "
        f"body := {_literal(json.dumps(body))}::jsonb)"
    )
