"""``bench/fanout.py --hosts 1,2,4``: one signal for every bench user, fanned out by N executor hosts.

Each host is a process of its own (``bench/fanout.py --serve-host``) with its own source address
(127.0.0.10, 127.0.0.11, ...), so the paper exchange counts each against its own budget of 600 requests
per 5 s, and each keeps to the deployment's share of it with its own limiter, as a real host does. The
hosts run the executor host's loop (:func:`lib.ops.executor_host.serve`) on one Postgres and share the
signal through its shards.

For each host count, in order:

1. N hosts start and warm up as the single-host warm run does: leverage set for the round's symbol (a
   slice of the users each; the memo is shared in Postgres) and every user's wallet read into the host's
   own wallet cache (any host may get any user's shard). The cache's TTL is raised to 300 s so the
   warm-up's first reads are still warm when the signal comes;
2. after a pause of one window (5 s: every host starts with its budget unspent), the bench inserts one
   LONG signal and hands its id to the hosts (a line on their stdin: the hosts poll for it only, so the
   bench never claims anyone else's signal; the pickup a host's poll interval would add is saved);
3. when the signal is marked done, the hosts stop and report the wall time of each order's exchange
   acknowledgement and their CPU seconds; the figures are counted as in the single-host runs.

``ack_ms_*`` run from just before the signal's INSERT to each order's acknowledgement; ``total_s`` to
the last one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from lib.config import load_settings
from lib.core.clock import SystemClock
from lib.crypto import KeyVault
from lib.db.session import Database
from lib.db.target import database_target
from lib.exchange.access import MarketAccess
from lib.exchange.ports import Credentials
from lib.exchange.rate_limit import RateLimiter
from lib.exchange.trading import PybitExchange
from lib.ops.executor_host import serve
from lib.paper_exchange.client import AsyncPaperControls
from lib.services.execution.caches import WalletCache
from lib.services.execution.deps import ExecutorDeps
from lib.services.execution.pair import ensure_leverage
from lib.services.execution.run import Run
from lib.services.instruments.cache import get_filters

#: One symbol per host count (every user then has one position in each: under their maximum of 5).
HOST_SYMBOLS = ("ETHUSDT", "XRPUSDT", "LINKUSDT", "AVAXUSDT", "DOGEUSDT")
FIRST_ADDRESS = 10
WARM_WALLET_TTL_S = 300.0
WINDOW_S = 5.0


def host_address(index: int) -> str:
    return f"127.0.0.{FIRST_ADDRESS + index}"


class Trace:
    """Bench-only: wall time spent in a few store calls, and when each was first entered (s after t0)."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.calls: dict[str, list[float]] = {}

    def wrap(self, module: Any, name: str) -> None:
        inner = getattr(module, name)
        entry = self.calls.setdefault(name, [0, 0.0, -1.0])

        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            if entry[2] < 0:
                entry[2] = started - self.t0
            try:
                return await inner(*args, **kwargs)
            finally:
                entry[0] += 1
                entry[1] += time.perf_counter() - started

        setattr(module, name, timed)

    def report(self) -> dict[str, Any]:
        return {
            name: {"n": int(n), "total_s": round(total, 3), "first_at_s": round(first, 3)}
            for name, (n, total, first) in self.calls.items()
        }


def _trace() -> Trace:
    from lib.services.execution import budget, fanout, shards, targets
    from lib.stores import order_batches, signal_queue, signal_shards

    trace = Trace()
    for module, name in (
        (signal_queue, "expire_and_claim"),
        (signal_shards, "claim"),
        (signal_shards, "create"),
        (signal_shards, "finish"),
        (shards, "eligible_targets"),
        (fanout, "eligible_targets"),
        (targets, "loss_allowances"),
        (budget.create_budget, "take"),
        (order_batches, "reserve"),
        (order_batches, "record_results"),
    ):
        trace.wrap(module, name)
    return trace


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- the host (child) ------------------------------------------------------------------------------


async def _host_main(args: argparse.Namespace, users: dict[str, Any]) -> None:
    from fanout import LEVERAGE, TimedExchange, environments_at

    settings = load_settings()
    db = Database(database_target(settings).app_url, max_size=args.pool)
    await db.open()
    address = args.source_address
    limiter = RateLimiter(share=args.share)
    market = MarketAccess(paper_url=args.paper_url, limiter=limiter, source_address=address)
    timed = TimedExchange(
        PybitExchange(
            paper_url=args.paper_url,
            endpoints=environments_at(args.paper_url),
            threads=args.threads,
            limiter=limiter,
            source_address=address,
        ),
        clock=time.time,
    )

    async def filters(category: str, environment: str) -> Any:
        return await get_filters(db, market, category, SystemClock(), environment=environment)

    deps = ExecutorDeps(
        db=db,
        exchange=timed,
        vault=KeyVault(settings.master_keys),
        filters=filters,
        worker=f"bench-host:{address}:{os.getpid()}",
        wallets=WalletCache(ttl_s=WARM_WALLET_TTL_S),
        ip_wait=limiter.seconds_until,
    )
    if args.concurrency:
        deps.concurrency = args.concurrency
    try:
        keys = {u: Credentials("paper", k["api_key"], k["api_secret"]) for u, k in users["keys"].items()}
        accounts = {u: UUID(a) for u, a in users["accounts"].items()}
        warm_started = time.perf_counter()
        run = Run(deps, datetime.now(UTC))
        gate = asyncio.Semaphore(deps.concurrency)
        mine = sorted(keys)[args.slice_index :: args.slice_count]

        async def leverage(user_id: str) -> None:
            async with gate:
                await ensure_leverage(run, accounts[user_id], keys[user_id], args.symbol, LEVERAGE)

        async def wallet(user_id: str) -> None:
            async with gate:
                await run.wallet(accounts[user_id], keys[user_id])

        await asyncio.gather(*(leverage(u) for u in mine))
        await asyncio.gather(*(wallet(u) for u in sorted(keys)))
        await filters("linear", "paper")
        warm_s = time.perf_counter() - warm_started
        timed.acks.clear()
        timed.calls.clear()
        print(json.dumps({"ready": deps.worker, "warm_up_s": round(warm_s, 1)}), flush=True)
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        signal_id = UUID(line.strip())
        trace = _trace() if args.trace else None
        cpu_before = _cpu_s()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        report = await serve(deps, stop=stop, interval_s=args.interval_s, signal_ids=[signal_id])
        print(
            json.dumps(
                {
                    "address": address,
                    "acks": timed.acks,
                    "calls": timed.calls,
                    "cpu_s": round(_cpu_s() - cpu_before, 2),
                    "shards": report.shards,
                    "outcomes": report.outcomes,
                    "trace": trace.report() if trace is not None else None,
                }
            ),
            flush=True,
        )
    finally:
        await db.close()


def serve_host(args: argparse.Namespace) -> None:
    """Child mode: warm up, say ready, wait for the signal's id on stdin, serve until SIGTERM."""
    import uvloop

    uvloop.run(_host_main(args, json.loads(Path(args.users_file).read_text())))


# -- the bench (parent) ----------------------------------------------------------------------------


async def _signal_status(db: Database, signal_id: UUID) -> str:
    from fanout import signal_status

    return await signal_status(db, signal_id)


async def run_hosts(
    args: argparse.Namespace,
    db: Database,
    controls: AsyncPaperControls,
    paper_pid: int,
    users_file: Path,
    hosts: int,
    symbol: str,
) -> dict[str, Any]:
    """One round: ``hosts`` host processes, one signal of ``symbol``; the figures as a dict."""
    from fanout import cpu_seconds, duplicates, exchange_delta, insert_signal, percentile

    children = []
    for index in range(hosts):
        command = [
            sys.executable,
            str(Path(__file__).with_name("fanout.py")),
            "--serve-host",
            "--paper-url",
            controls.base_url,
            "--source-address",
            host_address(index),
            "--users-file",
            str(users_file),
            "--symbol",
            symbol,
            "--slice-index",
            str(index),
            "--slice-count",
            str(hosts),
            "--share",
            str(args.share),
            "--threads",
            str(args.threads),
            "--pool",
            str(args.pool),
            *(["--concurrency", str(args.concurrency)] if args.concurrency else []),
            *(["--trace"] if args.trace else []),
        ]
        children.append(
            await asyncio.create_subprocess_exec(
                *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
            )
        )
    try:
        ready = []
        for child in children:
            assert child.stdout is not None
            line = await child.stdout.readline()
            assert line, "a host exited during its warm-up"
            ready.append(json.loads(line))
        await asyncio.sleep(WINDOW_S + 0.5)  # every host's window empty again
        stats_before = await controls.stats()
        cpu_before = cpu_seconds(paper_pid)
        t_insert = time.time()
        signal_id = await insert_signal(db, controls.base_url, datetime.now(UTC), symbol)
        for child in children:
            assert child.stdin is not None
            child.stdin.write(f"{signal_id}\n".encode())
            await child.stdin.drain()
        deadline = time.monotonic() + args.round_timeout_s
        while (status := await _signal_status(db, signal_id)) == "processing" or status == "new":
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        done_s = time.time() - t_insert
        cpu_after = cpu_seconds(paper_pid)
        stats_after = await controls.stats()
        reports = []
        for child in children:
            child.send_signal(signal.SIGTERM)
            out, _ = await asyncio.wait_for(child.communicate(), timeout=60)
            reports.append(json.loads(out.decode().strip().splitlines()[-1]))
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
                await asyncio.wait_for(child.wait(), timeout=30)
    acks = sorted(a for r in reports for a in r["acks"])
    latencies_ms = [(a - t_insert) * 1000 for a in acks]
    placed = len(acks)
    counted = exchange_delta(stats_before, stats_after)
    calls = sum(counted["requests"].values())
    total_s = (acks[-1] - t_insert) if acks else done_s
    return {
        "phase": "warm",
        "hosts": hosts,
        "users": args.users,
        "symbol": symbol,
        "total_s": round(total_s, 3),
        "orders_per_s": round(placed / total_s, 1) if total_s > 0 else None,
        "ack_ms_p50": round(statistics.median(latencies_ms), 1) if latencies_ms else None,
        "ack_ms_p95": round(percentile(latencies_ms, 0.95), 1) if latencies_ms else None,
        "exchange_calls_per_order": round(calls / placed, 3) if placed else None,
        "rate_limited_10006": counted["rate_limited_10006"],
        "bans_403": counted["bans_403"],
        "duplicates": duplicates(stats_after, symbol),
        "acknowledged": placed,
        "signal_status": status,
        "signal_done_s": round(done_s, 3),
        "exchange_requests": counted["requests"],
        "requests_by_address": {
            a: n - stats_before["requests_by_address"].get(a, 0)
            for a, n in stats_after["requests_by_address"].items()
            if n != stats_before["requests_by_address"].get(a, 0)
        },
        "per_host": [
            {
                "address": r["address"],
                "orders": len(r["acks"]),
                "first_ack_ms": round((min(r["acks"]) - t_insert) * 1000, 1) if r["acks"] else None,
                "last_ack_ms": round((max(r["acks"]) - t_insert) * 1000, 1) if r["acks"] else None,
                "shards": r["shards"],
                "cpu_s": r["cpu_s"],
                "warm_up_s": w["warm_up_s"],
                **({"trace": r["trace"]} if r.get("trace") else {}),
            }
            for r, w in zip(reports, ready, strict=True)
        ],
        "cpu_s_during_run": {
            "hosts": round(sum(r["cpu_s"] for r in reports), 2),
            **{k: round(cpu_after[k] - v, 2) for k, v in cpu_before.items() if k != "executor"},
        },
    }
