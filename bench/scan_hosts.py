"""``bench/scan.py --hosts 1,4``: the 500-symbol scan sharded over N scanner hosts, each its own process
with its own source address (127.0.0.41, .42, ...) and its own IP limiter at 50 % of Bybit's 600
requests / 5 s, against a paper exchange that enforces Bybit's limits (600 per 5 s per address, 403 ban).

For each host count:

1. start N ``aitradex scanner --loop`` processes (``-t 5 -a unirail_core``, a scope of their own, on the
   bench database) and wait until every lease is live;
2. wait for the bar they find at start to be scanned (the warm-up: imports, numba kernels), then wait
   5.5 s so every limiter starts from an empty window, as a candle close five minutes after the last
   would find it;
3. ``--repeats`` times: advance the paper exchange one candle, and time from its answer until every
   bucket of the new bar is finished (``scan_claims``), then 5.5 s again;
4. stop the hosts (SIGTERM) and print one JSON object: the wall times, the CPU seconds each host process
   and the paper exchange used per bar (/proc; the machine's 2 cores are shared by all of them, which
   matters), requests per source address per bar, 403s, and each host's share of the symbols.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import scan as base

from lib.config import load_settings
from lib.core.timeframes import FIVE_MINUTES_MS
from lib.db.session import Caller, Database
from lib.db.target import database_target
from lib.exchange.market_clock import PaperClock
from lib.ops.rebuild import rebuild
from lib.paper_exchange.client import AsyncPaperControls
from lib.services.scanning.candidates import utc
from lib.services.scanning.sharded import closed_bar_ms
from lib.services.scanning.sharding import by_bucket
from lib.stores import scan_shards
from lib.stores.scan_shards import Bar

ROOT = Path(__file__).resolve().parents[1]
WINDOW_PAUSE_S = 5.5
FIRST_ADDRESS = 41


def start_hosts(
    n: int, url: str, scope: str, env: dict[str, str], logs: Path
) -> list[subprocess.Popen[bytes]]:
    processes = []
    for i in range(n):
        command = [sys.executable, "-m", "lib.cli", "scanner", "--loop"]
        command += ["--source-address", f"127.0.0.{FIRST_ADDRESS + i}", "--paper-url", url, "--scope", scope]
        command += ["--host-id", f"bench-{n}-{i}", "-t", "5", "-a", "unirail_core", "--poll-s", "0.05"]
        command += ["--max-seconds", "1800"]
        log = (logs / f"host-{n}-{i}.log").open("wb")
        processes.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log))
    return processes


async def wait_live(db: Database, scope: str, n: int, processes: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + 120
    while len(await scan_shards.live_hosts(db, scope)) < n:
        if any(p.poll() is not None for p in processes) or time.monotonic() > deadline:
            raise SystemExit("a scanner host did not start (see its log)")
        await asyncio.sleep(0.05)


async def wait_complete(db: Database, bar: Bar, timeout_s: float = 300.0) -> None:
    """Poll until every non-empty bucket of ``bar`` is finished (20 ms polls)."""
    deadline = time.monotonic() + timeout_s
    buckets: int | None = None
    while True:
        if buckets is None:
            recorded = await scan_shards.shared_universe(db, bar)
            if recorded is not None:
                buckets = len(by_bucket(recorded.symbols, recorded.buckets))
        if buckets is not None and (await scan_shards.progress(db, bar))[1] >= buckets:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"bar {bar.bar_time} was not scanned within {timeout_s:.0f} s")
        await asyncio.sleep(0.02)


async def shares(db: Database, bar: Bar) -> dict[str, int]:
    async with db.read(Caller.service()) as conn:
        cursor = await conn.execute(
            "select host_id, sum(cardinality(symbols)) as n from scan_claims "
            "where scope = %s and timeframe = %s and bar_time = %s group by host_id order by host_id",
            bar.key(),
        )
        return {r["host_id"]: int(r["n"]) for r in await cursor.fetchall()}


async def bench_hosts(
    db: Database, url: str, paper_pid: int, n: int, repeats: int, env: dict[str, str], logs: Path
) -> dict[str, Any]:
    scope = f"bench:{uuid.uuid4().hex[:8]}"
    processes = start_hosts(n, url, scope, env, logs)
    controls = AsyncPaperControls(url)
    try:
        await wait_live(db, scope, n, processes)
        now_ms = await PaperClock(url).now_ms()
        await wait_complete(db, Bar(scope, "5", utc(closed_bar_ms("5", now_ms))))
        await asyncio.sleep(WINDOW_PAUSE_S)
        walls, advance_s, host_cpu, paper_cpu, per_address, refused, share_rows = [], [], [], [], [], 0, []
        for _ in range(repeats):
            cpu0 = [base.cpu_s(p.pid) for p in processes]
            paper0, stats0 = base.cpu_s(paper_pid), await controls.stats()
            t = time.perf_counter()
            view = await controls.advance(1)
            started = time.perf_counter()
            bar = Bar(scope, "5", utc(closed_bar_ms("5", view.time_ms)))
            await wait_complete(db, bar)
            walls.append(time.perf_counter() - started)
            advance_s.append(started - t)
            host_cpu.append([round(base.cpu_s(p.pid) - c, 2) for p, c in zip(processes, cpu0, strict=True)])
            paper_cpu.append(round(base.cpu_s(paper_pid) - paper0, 2))
            stats1 = await controls.stats()
            per_address.append(
                {
                    a: stats1["requests_by_address"].get(a, 0) - stats0["requests_by_address"].get(a, 0)
                    for a in (f"127.0.0.{FIRST_ADDRESS + i}" for i in range(n))
                }
            )
            refused += stats1["ip_refused_403"] - stats0["ip_refused_403"]
            share_rows.append(await shares(db, bar))
            await asyncio.sleep(WINDOW_PAUSE_S)
    finally:
        for p in processes:
            p.terminate()
        for p in processes:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
    return {
        "hosts": n,
        "symbols": sum(share_rows[-1].values()),
        "bars": repeats,
        "wall_s": [round(w, 2) for w in walls],
        "wall_s_median": round(float(np.median(walls)), 2),
        "advance_s_median": round(float(np.median(advance_s)), 3),
        "cpu_s_per_host_per_bar": host_cpu,
        "paper_exchange_cpu_s_per_bar": paper_cpu,
        "requests_by_address_per_bar": per_address,
        "symbols_by_host_last_bar": share_rows[-1],
        "bans_403": refused,
        "limiter_share": 0.5,
        "load_average": base.load_average(),
    }


async def run(host_counts: list[int], symbols: int, repeats: int) -> None:
    env = {**os.environ, "AITRADEX_DB_NAME": base.BENCH_DB}
    rebuild(env=env, serve=False)
    settings = load_settings(env)
    print(
        f"# database {base.BENCH_DB}; machine: {os.cpu_count()} cores, load average {base.load_average()}",
        file=sys.stderr,
    )
    with tempfile.TemporaryDirectory(prefix="aitradex-bench-hosts-") as tmp:
        folder = Path(tmp)
        data = folder / "data"
        data.mkdir()
        names, first_ms = base.derive_data(data, symbols)
        process, url = base.start_paper(data, first_ms + base.START_CANDLE * FIVE_MINUTES_MS, limits=True)
        print(f"# {len(names)} derived symbols; paper exchange {url} with Bybit's limits on", file=sys.stderr)
        try:
            async with database_target(settings).database(max_size=4) as db:
                async with db.write(Caller.service()) as conn:
                    await conn.execute("delete from signals where symbol like 'D___USDT'")
                for n in host_counts:
                    result = await bench_hosts(db, url, process.pid, n, repeats, env, folder)
                    print(json.dumps(result), flush=True)
                async with db.write(Caller.service()) as conn:
                    await conn.execute(
                        "update signals set status = 'skipped' "
                        "where status = 'new' and symbol like 'D___USDT'"
                    )
        finally:
            process.terminate()
            process.wait(timeout=10)
