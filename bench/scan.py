"""A 500-symbol scan against the paper exchange, database writes included: how fast, and how well the
rate limiter uses its budget.

The paper exchange bundles 8 pairs. This script derives 500 symbols from them (block-bootstrapped
log returns and candle shapes of the bundled 5-minute series, numpy ``default_rng(20261124)``), writes
them as ``<SYMBOL>-5m.csv.gz`` into a temporary folder and starts a paper exchange on that folder in its
own process (so it does not share a GIL with the scanner). The scanner runs in this process exactly as
``aitradex scan`` runs it (``lib.services.scanning.scanner.scan_many``: tickers + instruments, 300
klines per symbol, one vectorized ``unirail_core`` call, one insert), against a database of its own
(``aitradex_bench`` on the configured server, migrated and seeded like the real one, no servers
started), so no signal it stores is ever work for a real executor.

Figures printed:

1. limiter OFF: wall time and symbols/s of full scans (universe from tickers, 500 symbols), first with
   ``min_score=0`` (every candidate stored: the heaviest write) and then with the real threshold (80);
   each ``--repeats`` times (the paper exchange advanced one bar before each, so every insert is real),
   with the median, min and max, and the CPU seconds the server process and this process used in each
   scan (the machine has 2 shared cores: single runs vary, the load average is printed to show it);
2. limiter ON at 50% of Bybit's 600 requests / 5 s (300 per window): back-to-back full scans for
   ``--limited-seconds``; the grants in each 5-second window as a share of 300, the worst window, and
   the overall request rate as a share of 60 req/s.

Those four run on a paper exchange with its IP limit off (``--ip-limit 0``): they measure the scanner
and its limiter, not the exchange's bans.

With ``--hosts 1,4`` it measures the sharded scan instead (``bench/scan_hosts.py``): the same 500
symbols split over N scanner host processes, each with its own source address and its own limiter at
50 %, against a paper exchange with Bybit's limits ON; one JSON object per host count.

Run: .venv/bin/python bench/scan.py [--symbols 500] [--repeats 3] [--limited-seconds 60] [--hosts 1,4]
It is a benchmark, not a test: it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from lib.config import load_settings
from lib.core.timeframes import FIVE_MINUTES_MS
from lib.db.session import Caller, Database
from lib.db.target import database_target
from lib.errors import AitradexError
from lib.exchange.access import MarketAccess
from lib.exchange.rate_limit import RateLimiter
from lib.ops.rebuild import rebuild
from lib.paper_exchange.client import AsyncPaperControls, PaperControls
from lib.paper_exchange.paths import CLOCK
from lib.research.bundled_data import load_all
from lib.services.scanning.models import ScanRequest, ScanResult
from lib.services.scanning.scanner import format_summary, scan_many
from lib.services.scanning.settings import load_scan_settings
from lib.services.scanning.snapshot import DEFAULT_CONCURRENCY

SEED = 20261124
BENCH_DB = "aitradex_bench"
CANDLES = 1_000  # per derived symbol: 300 klines of history plus room to advance the replay
START_CANDLE = 600
BLOCK = 48  # bootstrap blocks of 4 hours keep some volatility clustering


def derive_data(folder: Path, count: int) -> tuple[list[str], int]:
    """Write ``count`` derived symbols into ``folder``; returns their names and their first open time."""
    rng = np.random.default_rng(SEED)
    bundled = load_all()
    # The complete time axis of the longest pair (some pairs have gaps; derived data has none).
    axis = max(bundled.values(), key=len).open_time_ms[:CANDLES]
    shapes = []
    for candles in bundled.values():
        prev = candles.close[:-1]
        shapes.append(
            (
                np.log(candles.close[1:] / prev),  # close-to-close log return
                candles.open[1:] / prev,  # gap at the open
                candles.high[1:] / np.maximum(candles.open[1:], candles.close[1:]),
                candles.low[1:] / np.minimum(candles.open[1:], candles.close[1:]),
                candles.volume[1:],
            )
        )
    names = []
    for i in range(count):
        ret, gap, up, down, vol = shapes[i % len(shapes)]
        starts = rng.integers(0, ret.size - BLOCK, size=CANDLES // BLOCK + 1)
        picks = (starts[:, None] + np.arange(BLOCK)).ravel()[:CANDLES]
        close = float(rng.uniform(0.001, 50.0)) * np.exp(np.cumsum(ret[picks]))
        prev = np.concatenate(([close[0] / np.exp(ret[picks[0]])], close[:-1]))
        open_ = prev * gap[picks]
        high = np.maximum(open_, close) * up[picks]
        low = np.minimum(open_, close) * down[picks]
        volume = vol[picks] * float(rng.uniform(0.2, 5.0))
        name = f"D{i:03d}USDT"
        rows = "\n".join(
            f"{t},{o:.8g},{h:.8g},{lo:.8g},{c:.8g},{v:.6f}"
            for t, o, h, lo, c, v in zip(axis.tolist(), open_, high, low, close, volume, strict=True)
        )
        with gzip.open(folder / f"{name}-5m.csv.gz", "wt", compresslevel=1) as fh:
            fh.write("open_time_ms,open,high,low,close,volume\n" + rows + "\n")
        names.append(name)
    return names, int(axis[0])


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far, from Linux's /proc (NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_paper(folder: Path, start_ms: int, *, limits: bool = False) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [sys.executable, "-m", "lib.paper_exchange", "--data", str(folder), "--port", str(port)]
    command += ["--no-state", "--start-time-ms", str(start_ms)]
    if not limits:
        command += ["--ip-limit", "0"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_until_up(process, url)
    return process, url


class CountingLimiter(RateLimiter):
    """The real limiter, remembering the clock reading it granted each request at."""

    def __init__(self, share: float | None) -> None:
        super().__init__(share, clock=self._clock_read)
        self.grants: list[float] = []
        self._last_read = 0.0

    def _clock_read(self) -> float:
        self._last_read = time.monotonic()
        return self._last_read

    async def acquire(self, *, max_pause_s: float | None = None) -> None:
        await super().acquire(max_pause_s=max_pause_s)
        # acquire holds the limiter's lock and reads the clock last for the grant it returns: this is
        # the time the limiter itself counted (a time taken here would be late by scheduling delays).
        self.grants.append(self._last_read)


class Progress:
    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.fetch_start = self.fetch_end = 0.0

    def universe(self, symbols: int) -> None:
        self.fetch_start = time.perf_counter()

    def fetched(self, symbol: str, ok: bool) -> None:
        self.fetch_end = time.perf_counter()


async def timed_scan(
    db: Database, access: MarketAccess, **request: object
) -> tuple[ScanResult, float, Progress]:
    progress = Progress()
    started = time.perf_counter()
    (result,) = await scan_many(
        [ScanRequest(timeframe="5", **request)],  # type: ignore[arg-type]
        db=db,
        market_access=access,
        progress=progress,
    )
    return result, time.perf_counter() - started, progress


async def advance(url: str) -> None:
    await AsyncPaperControls(url).advance(1)


def windows(grants: list[float], capacity: int, window_s: float) -> tuple[list[float], int]:
    """Grants per consecutive window (from the first grant) as shares of capacity, and the most grants
    in any window ``(t - window_s, t]`` (the limiter's own definition)."""
    times = np.array(grants)
    edges = np.arange(times[0], times[-1], window_s)
    counts = np.histogram(times, bins=np.append(edges, edges[-1] + window_s))[0]
    complete = counts[:-1] if times[-1] < edges[-1] + window_s else counts
    inside = np.searchsorted(times, times, side="right") - np.searchsorted(
        times, times - window_s, side="right"
    )
    return [c / capacity for c in complete], int(inside.max())


# -- the canned server: the paper exchange's own bytes, served without computing them -----------------


def _key(path: str, query: str) -> str:
    return path + "?" + "&".join(sorted(query.split("&"))) if query else path


def serve_canned(responses_file: Path, port: int) -> None:
    """Serve the captured responses (``{request key: body}``) on 127.0.0.1:``port`` until killed."""
    import pickle

    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    bodies: dict[str, bytes] = pickle.loads(responses_file.read_bytes())  # noqa: S301 (our own file)

    async def answer(request: Request) -> Response:
        body = bodies.get(_key(request.url.path, request.url.query))
        if body is None:
            return Response(
                b'{"retCode":10001,"retMsg":"not captured","result":{}}', media_type="application/json"
            )
        return Response(body, media_type="application/json")

    app = Starlette(routes=[Route("/{path:path}", answer, methods=["GET"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


async def capture(url: str, symbols: list[str], kline_limit: int, folder: Path) -> Path:
    """Fetch once every response a full scan asks the paper exchange for; save them for the canned server."""
    import pickle

    bodies: dict[str, bytes] = {}
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        requests: list[tuple[str, dict[str, str | int]]] = [
            (CLOCK, {}),
            ("/v5/market/tickers", {"category": "linear"}),
        ]
        requests.append(("/v5/market/instruments-info", {"category": "linear", "limit": 1000}))
        requests += [
            ("/v5/market/kline", {"category": "linear", "symbol": s, "interval": "5", "limit": kline_limit})
            for s in symbols
        ]
        for path, params in requests:
            response = await http.get(path, params=params)
            response.raise_for_status()
            bodies[_key(response.url.path, response.url.query.decode())] = response.content
    target = folder / "canned.pickle"
    target.write_bytes(pickle.dumps(bodies))
    return target


def start_canned(responses_file: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [sys.executable, __file__, "--serve-canned", str(responses_file), "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_until_up(process, url)
    return process, url


def wait_until_up(process: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            PaperControls(url, timeout_s=1).clock()
            return
        except AitradexError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit(f"{url} did not start")


# -- the measurements ----------------------------------------------------------------------------------


async def full_scans_unlimited(
    db: Database, url: str, server_pid: int, symbols: int, threshold: float, fresh: bool, repeats: int
) -> None:
    access = MarketAccess(paper_url=url, limiter=CountingLimiter(None))
    for label, request in (
        ("min_score=0, every candidate stored", {"min_score": 0.0}),
        (f"threshold {threshold:g} (the real one)", {}),
    ):
        print(f"   {label}:")
        walls = []
        for run in range(1, repeats + 1):
            if fresh:
                await advance(url)  # a fresh bar, so the inserts are real inserts
            server_cpu, own_cpu = cpu_s(server_pid), time.process_time()
            result, wall, progress = await timed_scan(db, access, max_symbols=symbols, **request)
            server_cpu, own_cpu = cpu_s(server_pid) - server_cpu, time.process_time() - own_cpu
            walls.append(wall)
            universe = progress.fetch_start - progress.started
            fetch = progress.fetch_end - progress.fetch_start
            print(
                f"      run {run}: {wall:.2f} s wall, {result.symbols_scanned / wall:.0f} symbols/s; clock + "
                f"universe {universe:.2f} s, {result.symbols_requested} klines {fetch:.2f} s "
                f"({result.symbols_requested / fetch:.0f} req/s), scoring + insert + scan_runs "
                f"{wall - universe - fetch:.2f} s; CPU: server {server_cpu:.2f} s, scanner {own_cpu:.2f} s"
            )
        print(
            f"      wall over {repeats} runs: median {np.median(walls):.2f} s, min {min(walls):.2f} s, "
            f"max {max(walls):.2f} s (load average now {load_average()})"
        )
        print("      last run: " + format_summary([result]).replace("\n", "\n      "))


async def limited_scans(db: Database, url: str, symbols: int, seconds: float, share: float) -> None:
    limiter = CountingLimiter(share)
    assert limiter.capacity is not None
    per_s = limiter.capacity / limiter.window_s
    print(
        f"   limiter at {share:.0%} of Bybit's 600 requests / 5 s: {limiter.capacity} per 5 s = "
        f"{per_s:.0f} req/s; back-to-back full scans for >= {seconds:.0f} s"
    )
    access = MarketAccess(paper_url=url, limiter=limiter)
    started = time.monotonic()
    walls = []
    while time.monotonic() - started < seconds:
        _, wall, _ = await timed_scan(db, access, max_symbols=symbols)
        walls.append(wall)
    grants = limiter.grants
    elapsed = grants[-1] - grants[0]
    shares, busiest = windows(grants, limiter.capacity, limiter.window_s)
    rate = (len(grants) - 1) / elapsed
    print(
        f"   {len(walls)} scans ({', '.join(f'{w:.1f}' for w in walls)} s): {len(grants)} requests in "
        f"{elapsed:.1f} s = {rate:.1f} req/s = {rate / per_s:.1%} of the budget "
        "(the opening burst of one full window included)"
    )
    complete = (
        f"mean {np.mean(shares):.1%}, min {min(shares):.1%} of {limiter.capacity}"
        if shares
        else "none complete"
    )
    print(
        f"   per complete 5-s window: {complete}; busiest 5-s window {busiest} requests "
        f"(the limit is {limiter.capacity})"
    )


async def main(args: argparse.Namespace) -> None:
    env = {**os.environ, "AITRADEX_DB_NAME": BENCH_DB}
    rebuild(env=env, serve=False)
    settings = load_settings(env)
    print(f"database: {BENCH_DB} on the configured server (migrated and seeded; no servers started)")
    print(f"machine: {os.cpu_count()} cores, load average {load_average()} (1, 5, 15 min) before the bench")

    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="aitradex-bench-") as tmp:
        folder = Path(tmp)
        data = folder / "data"
        data.mkdir()
        t = time.perf_counter()
        names, first_ms = derive_data(data, args.symbols)
        print(
            f"data: {len(names)} symbols DERIVED from the 8 bundled pairs (block bootstrap of returns and "
            f"candle shapes, numpy default_rng({SEED})), {CANDLES} 5-minute candles each, written to "
            f"{data} in {time.perf_counter() - t:.1f} s; the paper exchange serves that data_dir"
        )
        t = time.perf_counter()
        process, url = start_paper(data, first_ms + START_CANDLE * FIVE_MINUTES_MS)
        processes.append(process)
        print(f"paper exchange: {url}, own process, ready in {time.perf_counter() - t:.1f} s")
        try:
            async with Database(database_target(settings).app_url, max_size=4) as db:
                async with db.write(Caller.service()) as conn:
                    # The bench database is the bench's own: earlier runs' rows would turn inserts into
                    # conflicts (the replay starts at the same bar every time).
                    await conn.execute("delete from signals where symbol like 'D___USDT'")
                scan_settings = await load_scan_settings(db)
                threshold = scan_settings.threshold
                print(
                    f"scanner: timeframe 5, kline_limit {scan_settings.kline_limit}, unirail_core, "
                    f"concurrency {DEFAULT_CONCURRENCY}, threshold {threshold:g} (app_settings) "
                    "unless min_score=0 is said\n"
                )
                t = time.perf_counter()
                off = MarketAccess(paper_url=url, limiter=CountingLimiter(None))
                await timed_scan(db, off, symbols=tuple(names[:8]), dry_run=True)
                print(f"warm-up (8 symbols, dry run; numba loads kernels): {time.perf_counter() - t:.2f} s\n")

                print("1. against the paper exchange, rate limiter OFF, full scans, database writes included")
                await full_scans_unlimited(
                    db, url, process.pid, args.symbols, threshold, fresh=True, repeats=args.repeats
                )
                print("\n2. against the paper exchange, rate limiter ON")
                await limited_scans(db, url, args.symbols, args.paper_limited_seconds, 0.5)

                await advance(url)
                canned_file = await capture(url, names, scan_settings.kline_limit, folder)
                canned, canned_url = start_canned(canned_file)
                processes.append(canned)
                print(
                    "\n3. against a canned server (the paper exchange's own response bytes for this bar, "
                    "served by a minimal uvicorn app in its own process: the exchange's cost removed), "
                    "limiter OFF; one captured bar, so repeated runs store duplicates"
                )
                await full_scans_unlimited(
                    db, canned_url, canned.pid, args.symbols, threshold, fresh=False, repeats=args.repeats
                )
                print("\n4. against the canned server, rate limiter ON")
                await limited_scans(db, canned_url, args.symbols, args.limited_seconds, 0.5)

                async with db.write(Caller.service()) as conn:
                    await conn.execute(
                        "update signals set status = 'skipped' "
                        "where status = 'new' and symbol like 'D___USDT'"
                    )
                print(
                    "\nbench signals set to 'skipped' afterwards (the bench database has no executor anyway)"
                )
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each limiter-OFF full scan")
    parser.add_argument("--limited-seconds", type=float, default=60.0)
    parser.add_argument("--paper-limited-seconds", type=float, default=20.0)
    parser.add_argument(
        "--hosts",
        help="comma-separated host counts (e.g. 1,4): the sharded scan instead (bench/scan_hosts.py)",
    )
    parser.add_argument("--serve-canned", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.repeats < 1:
        parser.error("--repeats must be at least 1")
    if arguments.serve_canned:
        serve_canned(arguments.serve_canned, arguments.port)
    elif arguments.hosts:
        from scan_hosts import run as run_hosts

        try:
            counts = [int(n) for n in arguments.hosts.split(",")]
        except ValueError:
            parser.error("--hosts takes comma-separated integers, e.g. 1,4")
        if not counts or min(counts) < 1 or max(counts) > 200:
            parser.error("--hosts counts must be 1..200")
        asyncio.run(run_hosts(counts, arguments.symbols, arguments.repeats))
    else:
        asyncio.run(main(arguments))
