"""``markets``: static market metadata, seeded from ``supabase/seed/markets.json``. Read by everyone (RLS)."""

from __future__ import annotations

from typing import Any

import psycopg

# Column names come from here, never from input.
MARKET_COLUMNS = (
    "base",
    "quote",
    "status",
    "tick_size",
    "qty_step",
    "min_qty",
    "max_qty",
    "min_notional",
    "enabled",
)


def seed(conn: psycopg.Connection, rows: list[dict[str, Any]]) -> int:
    """Upsert each market whose metadata differs; returns how many rows changed."""
    changed = 0
    assignments = ", ".join(f"{c} = excluded.{c}" for c in MARKET_COLUMNS)
    current = ", ".join(f"markets.{c}" for c in MARKET_COLUMNS)
    incoming = ", ".join(f"excluded.{c}" for c in MARKET_COLUMNS)
    columns = ("symbol", "category", *MARKET_COLUMNS)
    placeholders = ", ".join(["%s"] * len(columns))
    query = (
        f"insert into public.markets ({', '.join(columns)}) values ({placeholders}) "  # noqa: S608
        f"on conflict (category, symbol) do update set {assignments} "
        f"where ({current}) is distinct from ({incoming})"
    )
    with conn.transaction():
        for row in rows:
            cur = conn.execute(query, tuple(row[c] for c in columns))
            changed += cur.rowcount
    return changed
