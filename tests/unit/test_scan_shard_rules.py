"""Rendezvous buckets (lib/services/scanning/sharding.py) and once-per-tick jobs with a fake election."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from lib.app.scheduler import Every, Job, Scheduler
from lib.services.scanning.sharding import BUCKETS, bucket_of, by_bucket, owner, share_of

SYMBOLS = [f"S{i:03d}USDT" for i in range(500)]
HOSTS = ["host-a", "host-b", "host-c", "host-d"]


def owners(hosts: list[str]) -> dict[int, str | None]:
    return {b: owner(b, hosts) for b in range(BUCKETS)}


def test_a_symbol_always_falls_in_the_same_bucket() -> None:
    assert [bucket_of(s) for s in SYMBOLS] == [bucket_of(s) for s in SYMBOLS]
    assert bucket_of("BTCUSDT") == bucket_of("BTCUSDT", BUCKETS)
    assert min(bucket_of(s) for s in SYMBOLS) >= 0
    assert max(bucket_of(s) for s in SYMBOLS) < BUCKETS


def test_the_shares_of_the_hosts_cover_the_universe_once() -> None:
    shares = [share_of(h, HOSTS, SYMBOLS) for h in HOSTS]
    symbols = [s for share in shares for bucket in share.values() for s in bucket]
    assert sorted(symbols) == sorted(SYMBOLS)
    # Roughly even: every host within a third of the fair 125.
    assert all(80 <= sum(len(v) for v in share.values()) <= 170 for share in shares)


def test_a_host_leaving_moves_only_its_own_buckets() -> None:
    before = owners(HOSTS)
    after = owners(["host-a", "host-b", "host-d"])
    moved = {b for b in range(BUCKETS) if before[b] != after[b]}
    assert moved == {b for b in range(BUCKETS) if before[b] == "host-c"}
    assert moved  # it had some


def test_a_host_joining_takes_buckets_only_for_itself() -> None:
    before = owners(HOSTS)
    after = owners([*HOSTS, "host-e"])
    moved = {b for b in range(BUCKETS) if before[b] != after[b]}
    assert moved
    assert {after[b] for b in moved} == {"host-e"}


def test_the_order_hosts_are_listed_in_does_not_matter() -> None:
    assert owners(HOSTS) == owners(list(reversed(HOSTS)))
    assert owner(3, []) is None


def test_by_bucket_keeps_the_universe_order_within_a_bucket() -> None:
    grouped = by_bucket(SYMBOLS)
    for bucket, symbols in grouped.items():
        assert symbols == [s for s in SYMBOLS if bucket_of(s) == bucket]
    assert sum(len(v) for v in grouped.values()) == len(SYMBOLS)


@dataclass
class FakeElection:
    """Leads the ticks in ``wins``; records every claim; raises when ``broken``."""

    wins: set[str] = field(default_factory=set)
    claims: list[tuple[str, str]] = field(default_factory=list)
    broken: bool = False

    async def claim(self, job: str, tick: str) -> bool:
        self.claims.append((job, tick))
        if self.broken:
            raise OSError("database unreachable")
        return tick in self.wins


@dataclass
class NoMarket:
    async def now_ms(self) -> int:
        raise AssertionError("no candle job here")


async def test_a_once_per_tick_job_runs_only_on_the_ticks_this_scheduler_leads() -> None:
    runs: Counter[str] = Counter()

    async def leader() -> None:
        runs["leader"] += 1

    async def everywhere() -> None:
        runs["everywhere"] += 1

    mono, wall = [0.0], [6_000.0]
    election = FakeElection(wins={"every:60:101"})
    scheduler = Scheduler(
        [Job("leader", Every(60), leader, once_per_tick=True), Job("everywhere", Every(60), everywhere)],
        market_clock=NoMarket(),
        monotonic=lambda: mono[0],
        wall=lambda: wall[0],
        election=election,
    )
    first = await scheduler.tick()  # tick every:60:100, led elsewhere
    assert first.led_elsewhere == ("leader",)
    assert first.started == ("everywhere",)
    mono[0], wall[0] = 60.0, 6_060.0
    second = await scheduler.tick()  # tick every:60:101, led here
    assert set(second.started) == {"leader", "everywhere"}
    assert runs == Counter({"leader": 1, "everywhere": 2})
    assert [c for c in election.claims if c[0] == "everywhere"] == []  # never asked for the others


async def test_a_failing_election_runs_nothing_rather_than_risk_twice() -> None:
    runs: list[int] = []

    async def leader() -> None:
        runs.append(1)

    scheduler = Scheduler(
        [Job("leader", Every(60), leader, once_per_tick=True)],
        market_clock=NoMarket(),
        election=FakeElection(broken=True),
    )
    report = await scheduler.tick()
    assert report.led_elsewhere == ("leader",)
    assert runs == []


async def test_without_an_election_a_once_per_tick_job_runs_on_every_tick() -> None:
    runs: list[int] = []

    async def leader() -> None:
        runs.append(1)

    scheduler = Scheduler([Job("leader", Every(60), leader, once_per_tick=True)], market_clock=NoMarket())
    assert (await scheduler.tick()).started == ("leader",)
    assert runs == [1]
