"""RTO and RPO of a disaster on a database holding ``--orders`` real ``execution_orders`` rows (100,000).

It builds a server of its own in a temporary folder (as ``bench/backup.py`` does), creates one user and
fills ``execution_orders`` (and one ``trade_logs`` row each) with closed orders, takes a base backup,
starts the stack (whose WAL receiver, ``pg_receivewal``, streams the WAL), then keeps committing (a
writer inserts a timestamped row every 20 ms for ``--write-seconds``, default 20 s, less than
``archive_timeout``, so the segment holding the last commits is never archived) and, while it still
writes, SIGKILLs the server and deletes its data folder. Then ``rebuild --restore latest`` with the
stack: restore (the archive, then the stream and its ``.partial`` segment), migrations, the stack
started with trading halted, the reconciliation (which clears the halt), diagnostics.

- RTO: the time from the start of the rebuild to a healthy, reconciled stack.
- RPO: the time between the newest restored commit of the writer and the kill.

Before the writer it also measures what making commits wait for the receiver would cost (the road not
taken): single-row commit latency as configured (commits do not wait), then with
``synchronous_standby_names`` naming the receiver, and how long one such commit blocks while the
receiver is SIGKILLed and restarted by its supervisor (trading would stop for that long, or for good
when it cannot restart). The setting is reset before the disaster.

Run: .venv/bin/python bench/recovery.py [--orders N] [--write-seconds S].
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

import psycopg

from lib.config import load_settings
from lib.db import archive, wal_receiver
from lib.db.target import embedded_server
from lib.local_state import all_services
from lib.ops import backup, stack_runner
from lib.ops.rebuild import rebuild
from lib.services.auth.users import create_local_user

FILL_ORDERS = """
insert into execution_orders (user_id, symbol, category, side, order_type, qty, leverage, order_link_id,
  exchange_order_id, status, filled_qty, avg_fill_price, fee, environment, requested_at, placed_at,
  filled_at, closed_at, exit_price, close_reason, realized_pnl)
select %(user)s, 'BTCUSDT', 'linear', case when g %% 2 = 0 then 'Buy' else 'Sell' end, 'Market',
       0.01, 2, 'ax-' || md5(g::text), md5(g::text), 'filled', 0.01, 40000 + g %% 1000, 0.22, 'paper',
       now() - g * interval '1 minute', now() - g * interval '1 minute', now() - g * interval '1 minute',
       now() - g * interval '1 minute' + interval '30 minutes', 40100 + g %% 1000, 'TakeProfit', 0.56
from generate_series(1, %(n)s) g
"""
FILL_LOGS = """
insert into trade_logs (user_id, order_id, event, message)
select user_id, id, 'order_placed', 'bench' from execution_orders where user_id = %(user)s
"""


def _connect(env: dict[str, str]) -> psycopg.Connection:
    settings = load_settings(env)
    password = settings.database.embedded_superuser_password
    assert password is not None
    url = embedded_server(settings).admin_url(password.reveal(), settings.database.db_name)
    return psycopg.connect(url, autocommit=True, connect_timeout=5)


def _writer(env: dict[str, str], stop: threading.Event) -> None:
    """Commit a timestamped row every 20 ms until stopped or the server is gone."""
    try:
        with _connect(env) as conn:
            conn.execute("create table if not exists bench_commits (id bigserial primary key, t timestamptz)")
            while not stop.is_set():
                conn.execute("insert into bench_commits (t) values (clock_timestamp())")
                time.sleep(0.02)
    except psycopg.Error:
        return  # the kill


def _commit_ms(conn: psycopg.Connection, n: int) -> tuple[float, float]:
    """p50 and p95 of ``n`` single-row autocommit inserts, in ms."""
    conn.execute("create table if not exists bench_latency (id bigserial primary key, t timestamptz)")
    took = []
    for _ in range(n):
        started = time.perf_counter()
        conn.execute("insert into bench_latency (t) values (clock_timestamp())")
        took.append((time.perf_counter() - started) * 1000)
    took.sort()
    return took[n // 2], took[int(n * 0.95)]


def _sync_commit_costs(env: dict[str, str], backup_dir: Path) -> None:
    with _connect(env) as conn:
        p50, p95 = _commit_ms(conn, 300)
        print(
            f"commit latency as configured (not waiting for the receiver): p50 {p50:.2f} ms, p95 {p95:.2f} ms"
        )
        conn.execute(f"alter system set synchronous_standby_names = '{wal_receiver.APPLICATION_NAME}'")
        conn.execute("select pg_reload_conf()")
        deadline = time.monotonic() + 30
        while conn.execute(  # the receiver is the synchronous standby once the reload has reached everyone
            "select count(*) from pg_stat_replication where sync_state = 'sync'"
        ).fetchone() != (1,):
            assert time.monotonic() < deadline, "the receiver did not become the synchronous standby"
            time.sleep(0.05)
        p50, p95 = _commit_ms(conn, 300)
        print(f"the same with synchronous_standby_names = the receiver: p50 {p50:.2f} ms, p95 {p95:.2f} ms")
        os.kill(int(wal_receiver.read_state(backup_dir)["pid"]), signal.SIGKILL)
        started = time.monotonic()
        conn.execute("insert into bench_latency (t) values (clock_timestamp())")
        blocked = time.monotonic() - started
        print(f"with it, one commit while the receiver was SIGKILLed and restarted blocked {blocked:.2f} s")
        conn.execute("alter system reset synchronous_standby_names")
        conn.execute("select pg_reload_conf()")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--write-seconds", type=float, default=20.0)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="aitradex-bench-recovery-"))
    state = root / "state"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AITRADEX_") and k != "DATABASE_URL"},
        "AITRADEX_STATE_DIR": str(state),
        "AITRADEX_DB_NAME": "bench",
        "AITRADEX_BACKUP_DIR": str(root / "backups"),
        "AITRADEX_BACKUP_INTERVAL_HOURS": "0",
    }
    try:
        rebuild(env=env, serve=False)
        settings = load_settings(env)
        with _connect(env) as conn:
            user = create_local_user(conn, "bench-recovery@bench.local", settings.jwt_secret.reveal()).id
            conn.execute(FILL_ORDERS, {"user": user, "n": args.orders})
            conn.execute(FILL_LOGS, {"user": user})
        started = time.monotonic()
        info = backup.take_backup(settings)
        took, size = time.monotonic() - started, info.size_bytes / 2**20
        print(f"base backup of {args.orders} orders: {took:.1f} s, {size:.1f} MiB")
        stack_runner.ensure_running(settings, env)
        deadline = time.monotonic() + 60
        while not wal_receiver.receiver_status(settings).streaming:
            assert time.monotonic() < deadline, "the stack's WAL receiver did not start streaming"
            time.sleep(0.1)
        _sync_commit_costs(env, root / "backups")
        deadline = time.monotonic() + 60
        while not wal_receiver.receiver_status(settings).streaming:
            assert time.monotonic() < deadline, "the stack's WAL receiver did not stream again"
            time.sleep(0.1)

        stop = threading.Event()
        writer = threading.Thread(target=_writer, args=(env, stop), daemon=True)
        writer.start()
        time.sleep(args.write_seconds)  # the bench's workload duration, not a wait for a condition
        with _connect(env) as conn:
            segment, last_archived = conn.execute(  # type: ignore[misc]
                "select pg_walfile_name(pg_current_wal_lsn()), last_archived_wal from pg_stat_archiver"
            ).fetchone()
        os.kill(int((state / "pgdata" / "postmaster.pid").read_text().split()[0]), signal.SIGKILL)
        killed = time.time()
        stop.set()
        writer.join(timeout=10)
        shutil.rmtree(state / "pgdata")

        started = time.monotonic()
        report = rebuild(env=env, restore="latest")
        rto = time.monotonic() - started
        with _connect(env) as conn:
            orders = conn.execute("select count(*) from execution_orders").fetchone()[0]  # type: ignore[index]
            newest = conn.execute("select extract(epoch from max(t)) from bench_commits").fetchone()[0]  # type: ignore[index]
        reconciled = next((s.detail for s in report.steps if s.name == "reconcile"), "no reconcile step")
        print(
            f"disaster (SIGKILL, data folder deleted) -> rebuild --restore latest (stack, reconciliation): "
            f"RTO {rto:.1f} s (goal < 60 s), {orders} orders back (expected {args.orders})"
        )
        # The restore restarts the stack it stopped and reconciles it (clearing its halt) before the
        # rebuild's own reconcile step runs, which then finds trading resumed.
        print(f"reconcile (the rebuild's step, after the restore's own): {reconciled}")
        rpo = killed - float(newest) if newest is not None else float("nan")
        source = (
            "never archived (archive_timeout did not fire): the last commits came from the stream"
            if segment != last_archived and not (root / "backups" / archive.WAL_DIR / segment).exists()
            else "archived before the kill"
        )
        print(
            f"RPO {rpo:.3f} s of commits lost (goal < 1 s); the killed server's segment {segment} "
            f"was {source}"
        )
    finally:
        for name in all_services(state):
            stack_runner.stop_recorded(state, name)
        embedded_server(load_settings(env)).stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
