"""How long a base backup, its verification, a point-in-time restore and a disaster rebuild take.

It builds a server of its own in a temporary folder (never the demo's or the tests'), fills a table with
``--rows`` order-like rows (default 100,000: ids, an orderLinkId, symbol, side, qty, price, status,
times and a JSON payload), then times, each once:

- ``take_backup`` (pg_basebackup with a fast checkpoint, WAL streamed, then pg_verifybackup);
- ``verify_backup`` (a scratch copy started on a free port, migrations and row counts read);
- ``restore`` to a time noted between two writes (the stack not started);
- the disaster: SIGKILL of the server, its data folder deleted, ``rebuild --restore latest`` (no stack);
  RPO is the time between the last restored commit and the kill.

Run: .venv/bin/python bench/backup.py [--rows N]. It is a benchmark, not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import psycopg

from lib.config import load_settings
from lib.db import archive
from lib.db.target import embedded_server
from lib.ops import backup
from lib.ops.rebuild import rebuild
from lib.ops.restore import restore

CREATE = """
create table if not exists bench_orders (
  id bigserial primary key, order_link_id text not null unique, symbol text not null, side text not null,
  qty numeric not null, price numeric not null, status text not null, created_at timestamptz not null,
  payload jsonb not null)
"""
FILL = """
insert into bench_orders (order_link_id, symbol, side, qty, price, status, created_at, payload)
select 'ax-' || md5(g::text), 'BTCUSDT', case when g %% 2 = 0 then 'Buy' else 'Sell' end, (g %% 97) / 10.0,
       40000 + g %% 1000, 'filled', now() - g * interval '1 second',
       jsonb_build_object('signal', g, 'fees', g %% 13, 'note', repeat('x', 40))
from generate_series(%s, %s) g
"""


def _connect(env: dict[str, str]) -> psycopg.Connection:
    settings = load_settings(env)
    password = settings.database.embedded_superuser_password
    assert password is not None
    url = embedded_server(settings).admin_url(password.reveal(), settings.database.db_name)
    return psycopg.connect(url, autocommit=True)


def _switch(env: dict[str, str]) -> None:
    with _connect(env) as conn:
        lsn = archive.switch_wal(conn)
        deadline = time.monotonic() + 60
        while not archive.archived_through(conn, lsn) and time.monotonic() < deadline:
            time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="aitradex-bench-backup-"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AITRADEX_") and k != "DATABASE_URL"},
        "AITRADEX_STATE_DIR": str(root / "state"),
        "AITRADEX_DB_NAME": "bench",
        "AITRADEX_BACKUP_DIR": str(root / "backups"),
        "AITRADEX_BACKUP_INTERVAL_HOURS": "0",
    }
    try:
        rebuild(env=env, serve=False)
        with _connect(env) as conn:
            conn.execute(CREATE)
            conn.execute(FILL, (1, args.rows))
        settings = load_settings(env)

        started = time.monotonic()
        info = backup.take_backup(settings)
        print(
            f"backup + pg_verifybackup: {time.monotonic() - started:.1f} s, {info.size_bytes / 2**20:.1f} MiB"
        )

        started = time.monotonic()
        backup.verify_backup(settings)
        print(f"backup verify (scratch start, counts): {time.monotonic() - started:.1f} s")

        with _connect(env) as conn:
            conn.execute(FILL, (args.rows + 1, args.rows + 1))
            noted = conn.execute("select clock_timestamp()").fetchone()[0]  # type: ignore[index]
            conn.execute(FILL, (args.rows + 2, args.rows + 2))
        _switch(env)
        started = time.monotonic()
        restore(settings, target=noted, env=env, start_stack=False)
        print(f"restore --to-time (no stack start): {time.monotonic() - started:.1f} s")

        with _connect(env) as conn:
            conn.execute(FILL, (args.rows + 3, args.rows + 3))
        _switch(env)
        last_commit = time.time()
        state = Path(env["AITRADEX_STATE_DIR"])
        os.kill(int((state / "pgdata" / "postmaster.pid").read_text().split()[0]), signal.SIGKILL)
        killed = time.time()
        shutil.rmtree(state / "pgdata")
        started = time.monotonic()
        rebuild(env=env, restore="latest", serve=False)
        rto = time.monotonic() - started
        with _connect(env) as conn:
            count = conn.execute("select count(*) from bench_orders").fetchone()[0]  # type: ignore[index]
        print(
            f"disaster (SIGKILL, data folder deleted) -> rebuild --restore latest: RTO {rto:.1f} s, "
            f"RPO {killed - last_commit:.2f} s, {count} orders back (expected {args.rows + 2})"
        )
    finally:
        embedded_server(load_settings(env)).stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
