"""Three executor hosts on one Postgres, under load, against a paper exchange enforcing Bybit's limits.

Three ``aitradex executor --loop`` processes, bound to 127.0.0.2, 127.0.0.3 and 127.0.0.4 (each its own
IP budget at the exchange), share signals for 120 users through the signals' shards (issue 12, items 2
and 3). The verdict comes from the exchange itself (``/_paper/stats``): every (signal, user) has exactly
one order on the book, no account went past 10 creates per second (the exchange refuses above that:
0 refusals), no address was banned (0 403s), and every host's address shows among those the exchange
served (the work was shared). Then one host is killed (SIGKILL) in the middle of a fan-out, holding
shards with reserved, unsent orders: the other two take the shards over once their lease runs out,
send the reserved rows with their own orderLinkId, and finish the signal; still exactly once.

The users trade ``quantum_ai`` on the 240-minute timeframe, which no other test's users do, so a host
polling the whole queue never places an order of another test's signal for them.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest

from lib.config import Settings
from lib.crypto import KeyVault
from lib.db.session import Caller, Database
from lib.ops.stack_replay import stack_symbols
from lib.paper_exchange import PaperExchangeConfig, running_paper_exchange
from lib.paper_exchange.client import AsyncPaperControls
from lib.paper_exchange.ratelimit import ExchangeLimits
from lib.stores import signal_shards
from tests.integration.execution_helpers import PaperUser, Prefs, Seeder, Signals, order_rows
from tests.integration.hosts import Host, Hosts, executor_args

USERS = 120
ADDRESSES = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
LOAD_SYMBOLS = ("ETHUSDT", "SOLUSDT", "XRPUSDT")
KILL_SYMBOL = "LINKUSDT"
LEASE_S = 2.0
PREFS = Prefs(algorithms=("quantum_ai",), timeframes=("240",), max_open_positions=10)
SIGNAL = {"algorithm": "quantum_ai", "timeframe": "240"}
DONE = ("executed", "skipped")


@pytest.fixture(scope="module")
def paper_url() -> Iterator[str]:
    """A paper exchange enforcing Bybit's limits (600 requests per 5 s per address, 10 creates per
    second per account), with a 2 s ban instead of ten minutes."""
    limits = ExchangeLimits(ip_ban_s=2.0)
    config = PaperExchangeConfig(symbols=stack_symbols(), state_path=None, port=0, limits=limits)
    with running_paper_exchange(config) as url:
        yield url


@pytest.fixture
async def users(
    db: Database, settings: Settings, owner_conn: psycopg.Connection, vault: KeyVault, paper_url: str
) -> AsyncIterator[list[PaperUser]]:
    seeder = Seeder(owner_conn, settings.jwt_secret.reveal(), db, vault, paper_url)
    try:
        yield await seeder.users(USERS, PREFS)
    finally:
        seeder.close()


@pytest.fixture
async def hosts(test_env: dict[str, str], tmp_path: Path) -> AsyncIterator[Hosts]:
    group = Hosts(test_env, tmp_path)
    try:
        yield group
    finally:
        await group.close()


async def wait_until_done(signals: Signals, ids: list[UUID], *, timeout_s: float) -> None:
    """Bounded: every signal marked executed or skipped within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        states = [await signals.status(i) for i in ids]
        if all(s in DONE for s in states):
            return
        assert time.monotonic() < deadline, f"signals not done in {timeout_s} s: {states}"
        await asyncio.sleep(0.1)


def orders_by_symbol(stats: dict[str, Any]) -> dict[str, list[int]]:
    """Per symbol: each account's number of entry orders (carrying an orderLinkId) on the book."""
    found: dict[str, list[int]] = {}
    for by_symbol in stats["orders_by_account"].values():
        for symbol, count in by_symbol.items():
            found.setdefault(symbol, []).append(count)
    return found


async def test_three_hosts_execute_every_signal_for_every_user_exactly_once_inside_the_limits(
    db: Database,
    paper_url: str,
    users: list[PaperUser],
    signals: Signals,
    hosts: Hosts,
) -> None:
    controls = AsyncPaperControls(paper_url)
    started = [await hosts.start(a, executor_args(paper_url, lease_s=LEASE_S)) for a in ADDRESSES]

    # Under load: three signals for all 120 users at once, nothing cached (wallet, leverage, create).
    load = [await signals.insert(symbol, **SIGNAL) for symbol in LOAD_SYMBOLS]
    await wait_until_done(signals, load, timeout_s=60)

    stats = await controls.stats()
    # Exactly once, on the exchange's own book: one order per account per signal's symbol.
    by_symbol = orders_by_symbol(stats)
    for symbol in LOAD_SYMBOLS:
        assert sorted(by_symbol.get(symbol, [])) == [1] * USERS, symbol
    for signal_id in load:
        rows = await order_rows(db, signal_id=signal_id)
        assert sorted(r["user_id"] for r in rows) == sorted(u.id for u in users)
        assert {r["status"] for r in rows} <= {"placed", "filled"}
        assert await signals.status(signal_id) == "executed"
        shards = await signal_shards.shard_states(db, signal_id)
        assert shards
        assert {s["status"] for s in shards} == {"done"}
        assert sum(int(str(s["users"])) for s in shards) == USERS
    # Inside the limits: no account above 10 creates per second (the exchange refused none), no ban.
    assert stats["rate_limited_10006"] == 0
    assert stats["ip_refused_403"] == 0
    assert stats["ip_bans"] == 0
    # The work was shared: every host's address sent requests, and held shards.
    by_address = stats["requests_by_address"]
    assert all(by_address.get(address, 0) > 0 for address in ADDRESSES), by_address
    holders = await shard_holders(db, load)
    assert all(any(h.endswith(host.worker_prefix) for h in holders) for host in started), holders

    # A host killed mid-fan-out. It comes back slow (5 % of its IP budget), so it is surely still
    # working when killed: holding shards, with orders reserved (requested) and not yet sent.
    victim = started[2]
    await hosts.stop(victim)
    victim = await hosts.start(
        victim.address, executor_args(paper_url, lease_s=LEASE_S, extra=["--share", "0.05"])
    )
    # The two others pause, so the slow host claims the signal and its first wave of shards.
    for host in started[:2]:
        host.process.send_signal(signal.SIGSTOP)
    kill_signal = await signals.insert(KILL_SYMBOL, **SIGNAL)
    held = await wait_for_requested_rows(db, kill_signal, victim, timeout_s=30)
    await hosts.kill(victim)
    for host in started[:2]:
        host.process.send_signal(signal.SIGCONT)
    await wait_until_done(signals, [kill_signal], timeout_s=60)

    stats = await controls.stats()
    assert sorted(orders_by_symbol(stats).get(KILL_SYMBOL, [])) == [1] * USERS
    rows = await order_rows(db, signal_id=kill_signal)
    assert sorted(r["user_id"] for r in rows) == sorted(u.id for u in users)
    assert {r["status"] for r in rows} <= {"placed", "filled"}
    assert await signals.status(kill_signal) == "executed"
    # The victim's shards were taken over and finished by the others.
    after = {int(str(s["shard"])): s for s in await signal_shards.shard_states(db, kill_signal)}
    for shard in held:
        assert after[shard]["status"] == "done"
        assert not str(after[shard]["claimed_by"]).endswith(victim.worker_prefix)
    assert stats["rate_limited_10006"] == 0
    assert stats["ip_refused_403"] == 0

    summaries = [await hosts.stop(h) for h in started[:2]]
    assert all(s["runs"] > 0 for s in summaries)


async def shard_holders(db: Database, signal_ids: list[UUID]) -> set[str]:
    """The executors that last held a shard of these signals."""
    holders: set[str] = set()
    for signal_id in signal_ids:
        holders |= {str(s["claimed_by"]) for s in await signal_shards.shard_states(db, signal_id)}
    return holders


async def wait_for_requested_rows(
    db: Database, signal_id: UUID, host: Host, *, timeout_s: float
) -> list[int]:
    """Bounded: until ``host`` holds shards of the signal and some order of it is reserved and unsent;
    the shards it holds."""
    deadline = time.monotonic() + timeout_s
    while True:
        shards = await signal_shards.shard_states(db, signal_id)
        held = [
            int(str(s["shard"]))
            for s in shards
            if s["status"] == "processing" and str(s["claimed_by"]).endswith(host.worker_prefix)
        ]
        async with db.read(Caller.service()) as conn:
            row = await (
                await conn.execute(
                    "select count(*) as n from execution_orders "
                    "where signal_id = %s and status = 'requested'",
                    (signal_id,),
                )
            ).fetchone()
        if held and row is not None and row["n"] > 0:
            return held
        assert time.monotonic() < deadline, f"the host never held a shard with a reserved order: {shards}"
        await asyncio.sleep(0.02)
