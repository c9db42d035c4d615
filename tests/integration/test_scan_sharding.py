"""Scans sharded across scanner hosts (issue 12, item 5): real Postgres, a paper exchange over HTTP with
Bybit's limits on, hosts that send from their own source addresses (127.0.0.21, .22, ...).

- three hosts over several bars of three timeframes: every (timeframe, bar, symbol) is scanned exactly
  once, shown three ways: the claim rows (disjoint, covering the bar's universe), the scorer's calls,
  and the exchange's own counts of kline requests, in total and per source address;
- a host killed (SIGKILL, a real process) right after it claimed its share: the other two take over
  its claims once its lease expires; nothing missing, nothing twice; the next bar is split between
  the survivors only;
- two hosts claiming the same buckets at once (they disagree about who owns them) split them;
- two schedulers on one database: each once-per-tick job runs once per tick.

Each test has a scope of its own (``test:<uuid>``), so its claims never meet another test's or an
earlier run's, whatever bars the exchanges replay.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lib.app.scheduler import CandleClose, DatabaseElection, Every, Job, Scheduler
from lib.config import Settings
from lib.core.candles import Candidate, CandlePanel
from lib.db.session import Caller, Database
from lib.errors import Forbidden
from lib.exchange.access import MarketAccess
from lib.exchange.market_clock import PaperClock
from lib.exchange.rate_limit import RateLimiter
from lib.ops.stack_replay import replay_start_ms, stack_symbols
from lib.paper_exchange import PaperExchangeConfig, running_paper_exchange
from lib.paper_exchange.client import AsyncPaperControls
from lib.services.scanning.settings import ScanSettings, load_scan_settings
from lib.services.scanning.sharded import PassResult, ShardHost, keep_lease, scan_bar
from lib.stores import scan_shards
from lib.stores.scan_shards import Bar

ROOT = Path(__file__).resolve().parents[2]
KLINE = "/v5/market/kline"
TIMEFRAMES = ("5", "15", "60")
ALGORITHMS = ("unirail_core", "quantum_ai")
DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def paper_url() -> Iterator[str]:
    """A paper exchange of this module's own, with Bybit's limits on (600 requests / 5 s per address).

    Its replay starts three days before the stack's, so the bars scanned here (recorded in scan_runs,
    which other tests count) are never bars the stack's own replay scans; eleven days of history
    still give hourly bars the 200 that scoring needs.
    """
    start_ms = replay_start_ms() - 3 * DAY_MS
    config = PaperExchangeConfig(symbols=stack_symbols(), state_path=None, port=0, start_time_ms=start_ms)
    with running_paper_exchange(config) as url:
        yield url


@pytest.fixture
async def scan_settings(db: Database) -> ScanSettings:
    return await load_scan_settings(db)


@dataclass
class CountingScorer:
    """Records every (algorithm, timeframe, bar, symbol) it is asked to score; scores nothing."""

    calls: list[tuple[str, int, int, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, algorithm: str, panel: CandlePanel) -> Sequence[Candidate]:
        times = panel.open_time_ms
        width = int(times[-1] - times[-2])
        with self.lock:
            self.calls += [(algorithm, width, int(times[-1]), s) for s in panel.symbols]
        return []


@dataclass
class Host:
    """One in-process scanner host: its identity, its own source address and its own IP budget."""

    shard: ShardHost
    access: MarketAccess


def make_host(url: str, scope: str, address: str, lease_s: float = 10.0) -> Host:
    # A lease far longer than any stall of a loaded machine: these hosts never die, so no lease of
    # theirs may lapse mid-test and move buckets between them.
    host_id = f"test-host-{address}-{uuid.uuid4().hex[:6]}"
    shard = ShardHost(scope, host_id=host_id, source_address=address, lease_s=lease_s)
    return Host(shard, MarketAccess(paper_url=url, limiter=RateLimiter(0.5), source_address=address))


async def run_bar(
    db: Database,
    url: str,
    host: Host,
    timeframe: str,
    settings: ScanSettings,
    scorer: CountingScorer,
) -> list[PassResult]:
    async with host.access.client("paper") as market:
        return await scan_bar(
            host.shard,
            timeframe,
            ALGORITHMS,
            db=db,
            market=market,
            clock=PaperClock(url),
            settings=settings,
            scorer=scorer,
            poll_s=0.1,
            deadline_s=60.0,
        )


async def claims_of(db: Database, scope: str) -> list[dict[str, Any]]:
    async with db.read(Caller.service()) as conn:
        cursor = await conn.execute(
            "select timeframe, bar_time, bucket, host_id, symbols, takeovers, finished_at "
            "from scan_claims where scope = %s order by timeframe, bar_time, bucket",
            (scope,),
        )
        return list(await cursor.fetchall())


async def universes_of(db: Database, scope: str) -> dict[tuple[str, Any], dict[str, Any]]:
    async with db.read(Caller.service()) as conn:
        cursor = await conn.execute(
            "select timeframe, bar_time, symbols, created_by from scan_universes where scope = %s", (scope,)
        )
        return {(r["timeframe"], r["bar_time"]): dict(r) for r in await cursor.fetchall()}


async def stats(url: str) -> dict[str, Any]:
    return await AsyncPaperControls(url).stats()


def exactly_once(
    claims: list[dict[str, Any]], universes: dict[tuple[str, Any], dict[str, Any]]
) -> dict[tuple[str, Any], Counter[str]]:
    """Assert every bar's claims are finished, disjoint and cover its universe; symbols per host."""
    by_bar: dict[tuple[str, Any], list[dict[str, Any]]] = {}
    for c in claims:
        by_bar.setdefault((c["timeframe"], c["bar_time"]), []).append(c)
    assert set(by_bar) == set(universes)
    shares: dict[tuple[str, Any], Counter[str]] = {}
    for key, rows in by_bar.items():
        assert all(r["finished_at"] is not None for r in rows), key
        scanned = [s for r in rows for s in r["symbols"]]
        assert sorted(scanned) == sorted(universes[key]["symbols"]), key  # each symbol once, none missing
        shares[key] = Counter({r["host_id"]: 0 for r in rows})
        for r in rows:
            shares[key][r["host_id"]] += len(r["symbols"])
    return shares


def kline_requests(before: dict[str, Any], after: dict[str, Any]) -> int:
    return int(after["requests"].get(KLINE, 0)) - int(before["requests"].get(KLINE, 0))


def by_address(before: dict[str, Any], after: dict[str, Any], address: str) -> int:
    return int(after["requests_by_address"].get(address, 0)) - int(
        before["requests_by_address"].get(address, 0)
    )


async def test_three_hosts_scan_every_bar_of_every_timeframe_exactly_once(
    db: Database, paper_url: str, scan_settings: ScanSettings
) -> None:
    scope = f"test:{uuid.uuid4()}"
    hosts = [make_host(paper_url, scope, f"127.0.0.{n}") for n in (21, 22, 23)]
    scorer = CountingScorer()
    controls = AsyncPaperControls(paper_url)
    before = await stats(paper_url)
    async with keep_lease(db, hosts[0].shard), keep_lease(db, hosts[1].shard), keep_lease(db, hosts[2].shard):
        for step in range(4):
            if step:
                await controls.advance(4)  # 20 minutes: a 15-minute bar closes on some steps
            for timeframe in TIMEFRAMES:
                passes = await asyncio.gather(
                    *(run_bar(db, paper_url, h, timeframe, scan_settings, scorer) for h in hosts)
                )
                assert all(p[-1].complete for p in passes)
    after = await stats(paper_url)

    universes = await universes_of(db, scope)
    claims = await claims_of(db, scope)
    shares = exactly_once(claims, universes)
    bars = Counter(tf for tf, _ in universes)
    assert bars["5"] == 4
    assert bars["60"] >= 1
    assert bars["15"] >= 2
    symbols = len(stack_symbols())
    assert all(len(u["symbols"]) == symbols for u in universes.values())
    # The work was shared: every host scanned part of every 5-minute bar.
    ids = {h.shard.host_id for h in hosts}
    for (tf, _), share in shares.items():
        if tf == "5":
            assert set(share) == ids
            assert all(n > 0 for n in share.values())

    # The scorer saw each (algorithm, timeframe, bar, symbol) exactly once.
    seen = Counter(scorer.calls)
    assert set(seen.values()) == {1}
    assert len(seen) == len(ALGORITHMS) * symbols * len(universes)

    # The exchange agrees: one kline request per (timeframe, bar, symbol), from the host that claimed it.
    total = sum(len(u["symbols"]) for u in universes.values())
    assert kline_requests(before, after) == total
    for host in hosts:
        address = host.shard.source_address
        assert address is not None
        claimed = sum(len(c["symbols"]) for c in claims if c["host_id"] == host.shard.host_id)
        recorded = sum(1 for u in universes.values() if u["created_by"] == host.shard.host_id)
        assert by_address(before, after, address) == claimed + 2 * recorded  # + tickers, instruments
    assert (after["ip_bans"], after["ip_refused_403"]) == (before["ip_bans"], before["ip_refused_403"])

    # scan_runs: one row per host per algorithm per (timeframe, bar), with that host's share.
    async with db.read(Caller.service()) as conn:
        cursor = await conn.execute(
            "select host_id, timeframe, bar_time, algorithm, symbols_requested, status from scan_runs "
            "where host_id = any(%s)",
            (list(ids),),
        )
        runs = list(await cursor.fetchall())
    assert len(runs) == len(ALGORITHMS) * sum(len(share) for share in shares.values())
    for run in runs:
        assert run["status"] in ("succeeded", "partial")
        share = shares[(run["timeframe"], run["bar_time"])]
        assert run["symbols_requested"] == share[run["host_id"]]


async def start_killed_host(
    test_env: dict[str, str], url: str, scope: str, host_id: str
) -> asyncio.subprocess.Process:
    """A scanner host in its own process, armed to die (SIGKILL) right after it claims its share.

    Its lease (5 s) is what the survivors wait out before they take its claims over.
    """
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lib.cli",
        "scanner",
        "--loop",
        "--source-address",
        "127.0.0.24",
        "--paper-url",
        url,
        "--scope",
        scope,
        "--host-id",
        host_id,
        "--lease-s",
        "5",
        "--poll-s",
        "0.1",
        "--max-seconds",
        "120",
        "-t",
        "5",
        cwd=ROOT,
        env={**test_env, "AITRADEX_FAILPOINTS": "scanner.after_claim=kill"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def wait_live(db: Database, scope: str, host_id: str, process: asyncio.subprocess.Process) -> None:
    for _ in range(600):  # 60 s at most
        if host_id in await scan_shards.live_hosts(db, scope):
            return
        assert process.returncode is None, await process.communicate()
        await asyncio.sleep(0.1)
    raise AssertionError("the scanner host process never took its lease")


async def test_a_host_killed_after_claiming_its_share_is_taken_over_and_its_share_rebalanced(
    db: Database, paper_url: str, scan_settings: ScanSettings, test_env: dict[str, str]
) -> None:
    scope = f"test:{uuid.uuid4()}"
    survivors = [make_host(paper_url, scope, f"127.0.0.{n}") for n in (25, 26)]
    killed_id = f"test-killed-{uuid.uuid4().hex[:6]}"
    scorer = CountingScorer()
    before = await stats(paper_url)
    async with keep_lease(db, survivors[0].shard), keep_lease(db, survivors[1].shard):
        process = await start_killed_host(test_env, paper_url, scope, killed_id)
        try:
            await wait_live(db, scope, killed_id, process)
            scans = asyncio.gather(
                *(run_bar(db, paper_url, h, "5", scan_settings, scorer) for h in survivors)
            )
            await asyncio.wait_for(process.wait(), timeout=60)
            assert process.returncode == -signal.SIGKILL
            first = await asyncio.wait_for(scans, timeout=60)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert all(p[-1].complete for p in first)
        mid = await stats(paper_url)
        # The next bar: the dead host's lease has expired, so the survivors split the whole universe.
        await AsyncPaperControls(paper_url).advance(1)
        second = await asyncio.gather(
            *(run_bar(db, paper_url, h, "5", scan_settings, scorer) for h in survivors)
        )
        assert all(p[-1].complete for p in second)
    after = await stats(paper_url)

    universes = await universes_of(db, scope)
    claims = await claims_of(db, scope)
    shares = exactly_once(claims, universes)
    assert len(universes) == 2
    first_bar, second_bar = sorted(universes)
    taken = [c for c in claims if c["bar_time"] == first_bar[1] and c["takeovers"] > 0]
    assert taken, "the killed host claimed buckets: they must have been taken over"
    assert {c["host_id"] for c in taken} <= {h.shard.host_id for h in survivors}
    assert killed_id not in shares[first_bar]
    assert killed_id not in shares[second_bar]
    assert all(c["takeovers"] == 0 for c in claims if c["bar_time"] == second_bar[1])
    assert set(shares[second_bar]) == {h.shard.host_id for h in survivors}
    # The killed host fetched no klines (it died before); the survivors fetched each symbol once.
    assert kline_requests(before, after) == sum(len(u["symbols"]) for u in universes.values())
    assert kline_requests(before, mid) == len(universes[first_bar]["symbols"])
    assert set(Counter(scorer.calls).values()) == {1}


async def test_hosts_that_both_think_they_own_the_same_buckets_split_them(db: Database) -> None:
    scope = f"test:{uuid.uuid4()}"
    bar = Bar(scope, "5", datetime_at(0))
    universe = scan_shards.BarUniverse(256, tuple(f"X{i}USDT" for i in range(40)))
    await scan_shards.put_universe(db, bar, universe, "a")
    wanted = {b: [f"X{b}USDT"] for b in range(40)}
    async with (
        keep_lease(db, ShardHost(scope, host_id=f"a-{scope}")),
        keep_lease(db, ShardHost(scope, host_id=f"b-{scope}")),
    ):
        won_a, won_b = await asyncio.gather(
            scan_shards.claim(db, bar, f"a-{scope}", wanted), scan_shards.claim(db, bar, f"b-{scope}", wanted)
        )
        assert not set(won_a) & set(won_b)
        assert sorted([*won_a, *won_b]) == list(range(40))
        # A live host's unfinished claims are not taken over by the other.
        assert await scan_shards.claim(db, bar, f"b-{scope}", {b: wanted[b] for b in won_a}) == []
    # Both leases ended (dropped here by expiry would take 10 s; drop them): a third host takes over all.
    await scan_shards.drop_lease(db, f"a-{scope}")
    await scan_shards.drop_lease(db, f"b-{scope}")
    async with keep_lease(db, ShardHost(scope, host_id=f"c-{scope}")):
        assert await scan_shards.claim(db, bar, f"c-{scope}", wanted) == list(range(40))
        assert await scan_shards.finish(db, bar, list(range(40)), f"a-{scope}") == []  # fenced out
        assert await scan_shards.finish(db, bar, list(range(40)), f"c-{scope}") == list(range(40))
    await scan_shards.drop_lease(db, f"c-{scope}")


def datetime_at(offset_min: int) -> Any:
    from datetime import UTC, datetime, timedelta

    return datetime(2030, 1, 1, tzinfo=UTC) + timedelta(minutes=offset_min)


@dataclass
class FakeMarketClock:
    at_ms: int

    async def now_ms(self) -> int:
        return self.at_ms


async def test_two_schedulers_on_one_database_run_each_leader_job_once_per_tick(db: Database) -> None:
    suffix = uuid.uuid4().hex[:8]
    runs: Counter[tuple[str, str]] = Counter()
    everywhere: Counter[str] = Counter()
    clock = FakeMarketClock(1_900_000_000_000 // 300_000 * 300_000 + 1_000)
    wall = [1_900_000_000.0]
    mono = [0.0]

    def scheduler(name: str) -> Scheduler:
        async def leader_candle() -> None:
            runs[("candle", name)] += 1

        async def leader_every() -> None:
            runs[("every", name)] += 1

        async def shared() -> None:
            everywhere[name] += 1

        jobs = [
            Job(f"test-track-{suffix}", CandleClose("5"), leader_candle, once_per_tick=True),
            Job(f"test-minute-{suffix}", Every(60), leader_every, once_per_tick=True),
            Job(f"test-scan-{suffix}", CandleClose("5"), shared),
        ]
        return Scheduler(
            jobs,
            market_clock=clock,
            monotonic=lambda: mono[0],
            wall=lambda: wall[0],
            election=DatabaseElection(db, f"{name}-{suffix}"),
        )

    a, b = scheduler("a"), scheduler("b")
    await asyncio.gather(a.tick(), b.tick())  # the baseline for candles; the Every jobs' first tick
    assert sum(n for (kind, _), n in runs.items() if kind == "every") == 1
    ticks = 5
    for _ in range(ticks):
        clock.at_ms += 300_000
        wall[0] += 60
        mono[0] += 60
        reports = await asyncio.gather(a.tick(), b.tick())
        led = [r for r in reports if f"test-track-{suffix}" in r.started]
        assert len(led) == 1
        other = next(r for r in reports if r is not led[0])
        assert f"test-track-{suffix}" in other.led_elsewhere
    assert sum(n for (kind, _), n in runs.items() if kind == "candle") == ticks
    assert sum(n for (kind, _), n in runs.items() if kind == "every") == ticks + 1
    assert everywhere == Counter({"a": ticks, "b": ticks})  # a job for every host runs on each
    # A scheduler that reaches a tick after its leader finished does not run it again.
    report = await scheduler("late").tick()
    assert report.led_elsewhere == (f"test-minute-{suffix}",)
    assert report.started == ()


@pytest.mark.parametrize("who", ["anon", "user"])
async def test_the_shard_tables_are_the_services_alone(db: Database, who: str) -> None:
    caller = (
        Caller.anon()
        if who == "anon"
        else Caller.from_claims({"role": "authenticated", "sub": str(uuid.uuid4())})
    )
    for table in ("scanner_hosts", "scan_universes", "scan_claims", "scheduler_ticks"):
        with pytest.raises(Forbidden):
            async with db.read(caller) as conn:
                await conn.execute(f"select * from {table} limit 1")


async def test_the_stacks_schedulers_run_the_tracker_on_the_tick_leader_only_and_the_rest_everywhere(
    settings: Settings,
) -> None:
    from lib.app.pipeline import build_scheduler
    from lib.app.wiring import close_services, open_services

    services = await open_services(settings, pool_size=2)
    try:
        options: dict[str, Any] = {"timeframes": ("5", "60"), "algorithms": ("unirail_core",)}
        live, _ = build_scheduler(services, environment="mainnet", paper_url=None, **options)
        assert {j.name: j.once_per_tick for j in live.jobs} == {
            "scan:5": False,
            "scan:60": False,
            "lease": False,
            "execute": False,
            "track": True,
        }
        paper = f"http://127.0.0.1:9/{uuid.uuid4().hex}"  # never contacted: only names the scope
        pipelines = [
            build_scheduler(services, environment="paper", paper_url=paper, **options)[1] for _ in "ab"
        ]
        assert pipelines[0].host.host_id != pipelines[1].host.host_id
        assert pipelines[0].host.scope == pipelines[1].host.scope == f"paper:{paper}"
        for candle in range(3):
            tick = f"{pipelines[0].host.scope}|candle:5:{candle}"
            won = await asyncio.gather(*(p.leads("track", tick) for p in pipelines))
            assert sorted(won) == [False, True]
        # A stopping stack drops its pipeline's lease (lib/ops/stack_runner.py): its share moves at once.
        for pipeline in pipelines:
            await pipeline.renew_lease()
        scope = pipelines[0].host.scope
        assert sorted(await scan_shards.live_hosts(services.db, scope)) == sorted(
            p.host.host_id for p in pipelines
        )
        await pipelines[0].drop_lease()
        assert await scan_shards.live_hosts(services.db, scope) == [pipelines[1].host.host_id]
        await pipelines[1].drop_lease()
    finally:
        await close_services(services)


async def test_a_scanner_host_process_stops_on_sigterm_and_drops_its_lease(
    db: Database, paper_url: str, test_env: dict[str, str]
) -> None:
    scope = f"test:{uuid.uuid4()}"
    host_id = f"test-sigterm-{uuid.uuid4().hex[:6]}"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lib.cli",
        "scanner",
        "--loop",
        "--source-address",
        "127.0.0.27",
        "--paper-url",
        paper_url,
        "--scope",
        scope,
        "--host-id",
        host_id,
        "--max-seconds",
        "120",
        "-t",
        "5",
        "-a",
        "unirail_core",
        cwd=ROOT,
        env=test_env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await wait_live(db, scope, host_id, process)
        # Alone in its scope, it scans the whole bar it finds at start.
        for _ in range(600):
            claims = await claims_of(db, scope)
            if claims and all(c["finished_at"] is not None for c in claims):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the host never finished its bar")
        assert {c["host_id"] for c in claims} == {host_id}
        process.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0
    assert json.loads(out.decode().strip().splitlines()[-1])["host"] == host_id
    async with db.read(Caller.service()) as conn:
        row = await (
            await conn.execute("select 1 from scanner_hosts where host_id = %s", (host_id,))
        ).fetchone()
    assert row is None  # dropped at once, not left to expire
