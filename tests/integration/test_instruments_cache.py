"""The shared instruments cache against the real database and the paper exchange over HTTP.

Exchange traffic is counted by :class:`CountingMarket`, a market source that records every instruments
fetch and serves every environment from the test paper exchange. Each test caches under its own
environment label (``test-<uuid>``): its entry in the category's row is its alone, so tests running
at the same time (here or in another session on this database) never see each other's entries, and
the fixture removes the entry afterwards. Time is a :class:`FixedClock` started at the real time and
moved only by the test. ``memo=None`` everywhere but in the memo's own test: these tests are about
the shared row, not the per-process copy.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg.types.json import Jsonb

from lib.core.clock import FixedClock
from lib.db.session import Caller, Database
from lib.errors import ExchangeRejected, ExchangeUnavailable
from lib.exchange.access import MarketAccess
from lib.exchange.market import MarketDataClient, RetryPolicy
from lib.exchange.models import Instrument
from lib.services.instruments.cache import get_filters, get_snapshot
from lib.services.instruments.memo import LocalMemo
from tests.integration.pooler_proxy import POOLS, pool_for

CATEGORY = "spot"  # the RLS matrix owns the 'inverse' row; 'linear' is what the functions use most
TTL = timedelta(seconds=300)  # app_settings instruments_cache.ttl_seconds, as seeded


@pytest.fixture(params=POOLS)
def db(request: pytest.FixtureRequest, db: Database) -> Database:
    """Every test twice: directly, and through a transaction-mode pooler (prepared statements off)."""
    return pool_for(request, db)


class _CountingClient:
    def __init__(self, inner: MarketDataClient, market: CountingMarket) -> None:
        self._inner = inner
        self._fetches = market.fetches
        self._entered = market.entered
        self._gate = market.gate

    async def instruments(self, category: str) -> list[Instrument]:
        self._fetches.append(category)
        self._entered.set()
        if self._gate is not None:
            await self._gate.wait()
        return await self._inner.instruments(category)


@dataclass
class CountingMarket:
    """Market access that counts instruments fetches; every environment is the paper exchange at ``url``.

    ``entered`` is set when a fetch starts; ``gate``, when given, holds each fetch (already counted) until
    the test opens it. Retries are off, so an unreachable ``url`` fails at once instead of after a backoff.
    """

    url: str
    fetches: list[str] = field(default_factory=list)
    gate: asyncio.Event | None = None
    entered: asyncio.Event = field(default_factory=asyncio.Event)

    @asynccontextmanager
    async def client(self, environment: str) -> AsyncIterator[_CountingClient]:
        access = MarketAccess(paper_url=self.url)
        async with access.client("paper", retry=RetryPolicy(max_attempts=1)) as inner:
            yield _CountingClient(inner, self)


@pytest.fixture
def market(paper_exchange_url: str) -> CountingMarket:
    return CountingMarket(paper_exchange_url)


@pytest.fixture
def unreachable_url() -> Iterator[str]:
    """An address where nothing listens: the port is bound (so nobody else takes it) but never listened on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime.now(UTC))


@pytest.fixture
async def environment(db: Database) -> AsyncIterator[str]:
    """A fresh environment label; its entries are removed from every row afterwards."""
    label = f"test-{uuid.uuid4().hex[:12]}"
    yield label
    async with db.write(Caller.service()) as conn:
        await conn.execute(
            "update instruments_cache set payload = payload #- array['environments', %s] "
            "where payload -> 'environments' ? %s",
            (label, label),
        )


async def stored_entry(db: Database, category: str, environment: str) -> dict[str, Any] | None:
    async with db.read(Caller.service()) as conn:
        row = await (
            await conn.execute(
                "select payload -> 'environments' -> %s as entry from instruments_cache where category = %s",
                (environment, category),
            )
        ).fetchone()
    return None if row is None else row["entry"]


async def row_counts(db: Database) -> dict[str, int]:
    async with db.read(Caller.service()) as conn:
        rows = await (
            await conn.execute("select category, count(*) as n from instruments_cache group by category")
        ).fetchall()
    return {r["category"]: r["n"] for r in rows}


async def test_the_first_call_fills_the_category_row_from_the_exchange(
    db: Database, market: CountingMarket, clock: FixedClock, environment: str, paper_exchange_url: str
) -> None:
    filters = await get_filters(db, market, CATEGORY, clock, environment=environment, memo=None)

    assert market.fetches == [CATEGORY]
    async with MarketAccess(paper_url=paper_exchange_url).client("paper") as direct:
        listed = {i.symbol: i for i in await direct.instruments(CATEGORY)}
    assert sorted(filters) == sorted(listed)
    eth = filters["ETHUSDT"]
    assert (eth.tick_size, eth.qty_step, eth.min_qty, eth.max_qty, eth.min_notional, eth.status) == (
        listed["ETHUSDT"].tick_size,
        listed["ETHUSDT"].qty_step,
        listed["ETHUSDT"].min_qty,
        listed["ETHUSDT"].max_qty,
        listed["ETHUSDT"].min_notional,
        "Trading",
    )
    entry = await stored_entry(db, CATEGORY, environment)
    assert entry is not None
    assert sorted(entry["instruments"]) == sorted(listed)
    assert entry["instruments"]["ETHUSDT"]["tick_size"] == str(listed["ETHUSDT"].tick_size)
    assert datetime.fromisoformat(entry["fetched_at"]) == clock.now()
    assert datetime.fromisoformat(entry["expires_at"]) == clock.now() + TTL


async def test_a_second_call_within_the_ttl_does_not_reach_the_exchange(
    db: Database, market: CountingMarket, clock: FixedClock, environment: str
) -> None:
    first = await get_snapshot(db, market, CATEGORY, clock, environment=environment, memo=None)
    clock.advance(seconds=TTL.total_seconds() - 1)

    second = await get_snapshot(db, market, CATEGORY, clock, environment=environment, memo=None)

    assert market.fetches == [CATEGORY]
    assert second.fetched_at == first.fetched_at
    assert second.filters == first.filters
    assert not second.stale


async def test_an_expired_entry_is_refreshed_from_the_exchange(
    db: Database, market: CountingMarket, clock: FixedClock, environment: str
) -> None:
    first = await get_snapshot(db, market, CATEGORY, clock, environment=environment, memo=None)
    clock.advance(seconds=TTL.total_seconds() + 1)

    second = await get_snapshot(db, market, CATEGORY, clock, environment=environment, memo=None)

    assert market.fetches == [CATEGORY, CATEGORY]
    assert second.fetched_at == clock.now() > first.fetched_at
    assert not second.stale
    entry = await stored_entry(db, CATEGORY, environment)
    assert entry is not None
    assert datetime.fromisoformat(entry["expires_at"]) == clock.now() + TTL


async def test_ten_concurrent_callers_on_an_expired_entry_cause_exactly_one_fetch(
    db: Database, market: CountingMarket, clock: FixedClock, environment: str
) -> None:
    await get_snapshot(db, market, CATEGORY, clock, environment=environment, memo=None)
    clock.advance(seconds=TTL.total_seconds() + 1)

    results = await asyncio.gather(
        *(get_snapshot(db, market, CATEGORY, clock, environment=environment, memo=None) for _ in range(10))
    )

    assert market.fetches == [CATEGORY, CATEGORY]  # the fill, then one refresh for all ten
    assert all(r.filters == results[0].filters for r in results)
    assert any(not r.stale and r.fetched_at == clock.now() for r in results)


async def test_ten_concurrent_callers_with_nothing_cached_cause_exactly_one_fetch_and_all_get_filters(
    db: Database, market: CountingMarket, clock: FixedClock, environment: str
) -> None:
    results = await asyncio.gather(
        *(get_snapshot(db, market, CATEGORY, clock, environment=environment, memo=None) for _ in range(10))
    )

    assert market.fetches == [CATEGORY]
    assert all("ETHUSDT" in r.filters and not r.stale for r in results)


async def _waiting_for_lock(db: Database, key: str) -> int:
    async with db.read(Caller.service()) as conn:
        row = await (
            await conn.execute(
                "select count(*) as n from pg_locks where locktype = 'advisory' and not granted "
                "and objsubid = 1 and ((classid::bigint << 32) | objid::bigint) = hashtext(%s)::bigint",
                (key,),
            )
        ).fetchone()
    assert row is not None
    return int(row["n"])


async def _until_waiting(db: Database, key: str) -> None:
    """Return once a transaction waits on the refresh lock ``key`` (fail after 10 s)."""
    async with asyncio.timeout(10):
        # Another session's lock wait is visible only in pg_locks: nothing in this process can signal it.
        while await _waiting_for_lock(db, key) == 0:  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def test_a_caller_with_nothing_cached_waits_for_the_running_refresh_and_uses_its_result(
    db: Database, paper_exchange_url: str, clock: FixedClock, environment: str
) -> None:
    market = CountingMarket(paper_exchange_url, gate=asyncio.Event())
    refresher = asyncio.create_task(
        get_snapshot(db, market, CATEGORY, clock, environment=environment, memo=None)
    )
    # The refresher holds the lock once it is inside its fetch.
    await asyncio.wait_for(market.entered.wait(), timeout=10)
    waiter = asyncio.create_task(
        get_snapshot(db, market, CATEGORY, clock, environment=environment, memo=None)
    )
    await _until_waiting(db, f"instruments:{CATEGORY}:{environment}")

    assert market.gate is not None
    market.gate.set()
    refreshed, waited = await asyncio.gather(refresher, waiter)

    assert market.fetches == [CATEGORY]
    assert waited.fetched_at == refreshed.fetched_at
    assert waited.filters == refreshed.filters


async def test_a_caller_waiting_on_a_refresh_that_fails_answers_unavailable_without_fetching_again(
    db: Database, unreachable_url: str, clock: FixedClock, environment: str
) -> None:
    market = CountingMarket(unreachable_url, gate=asyncio.Event())
    refresher = asyncio.create_task(
        get_snapshot(db, market, CATEGORY, clock, environment=environment, memo=None)
    )
    await asyncio.wait_for(market.entered.wait(), timeout=10)
    waiter = asyncio.create_task(
        get_snapshot(db, market, CATEGORY, clock, environment=environment, memo=None)
    )
    await _until_waiting(db, f"instruments:{CATEGORY}:{environment}")

    assert market.gate is not None
    market.gate.set()
    outcomes = await asyncio.gather(refresher, waiter, return_exceptions=True)

    assert [type(o) for o in outcomes] == [ExchangeUnavailable, ExchangeUnavailable]
    assert market.fetches == [CATEGORY]


async def test_an_exchange_outage_with_an_expired_entry_serves_the_stale_filters_and_logs_it(
    db: Database,
    market: CountingMarket,
    unreachable_url: str,
    clock: FixedClock,
    environment: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cached = await get_snapshot(db, market, CATEGORY, clock, environment=environment, memo=None)
    clock.advance(seconds=TTL.total_seconds() + 1)
    down = CountingMarket(unreachable_url)

    with caplog.at_level(logging.WARNING, logger="aitradex.instruments"):
        served = await get_snapshot(db, down, CATEGORY, clock, environment=environment, memo=None)

    assert down.fetches == [CATEGORY]
    assert served.stale
    assert served.filters == cached.filters
    assert served.fetched_at == cached.fetched_at
    logged = [r.getMessage() for r in caplog.records if r.name == "aitradex.instruments"]
    assert logged == ["instruments_cache_serving_stale"]
    entry = await stored_entry(db, CATEGORY, environment)
    assert entry is not None
    assert datetime.fromisoformat(entry["fetched_at"]) == cached.fetched_at  # nothing was overwritten


async def test_an_exchange_outage_with_nothing_cached_raises_the_retryable_exchange_unavailable(
    db: Database, unreachable_url: str, clock: FixedClock, environment: str
) -> None:
    down = CountingMarket(unreachable_url)

    with pytest.raises(ExchangeUnavailable) as raised:
        await get_snapshot(db, down, CATEGORY, clock, environment=environment, memo=None)

    assert raised.value.retryable
    assert raised.value.details["category"] == CATEGORY
    assert down.fetches == [CATEGORY]
    assert await stored_entry(db, CATEGORY, environment) is None


async def test_an_exchange_refusal_with_nothing_cached_is_raised_as_the_refusal_not_as_retryable(
    db: Database, market: CountingMarket, clock: FixedClock, environment: str
) -> None:
    # The paper exchange lists linear and spot only; 'option' can have no row, so nothing is touched.
    with pytest.raises(ExchangeRejected) as raised:
        await get_snapshot(db, market, "option", clock, environment=environment, memo=None)

    assert not raised.value.retryable
    assert raised.value.ret_code == 10001
    assert market.fetches == ["option"]


async def test_an_unreadable_entry_is_fetched_again_rather_than_trusted(
    db: Database, market: CountingMarket, clock: FixedClock, environment: str
) -> None:
    async with db.write(Caller.service()) as conn:
        await conn.execute(
            "insert into instruments_cache (category, payload, fetched_at, expires_at) "
            "values (%(c)s, jsonb_build_object('format', 1, 'environments', '{}'::jsonb), %(t)s, %(e)s) "
            "on conflict (category) do nothing",
            {"c": CATEGORY, "t": clock.now(), "e": clock.now() + TTL},
        )
        await conn.execute(
            "update instruments_cache set payload = jsonb_set(payload, array['environments', %s], %s) "
            "where category = %s",
            (environment, Jsonb({"fetched_at": clock.now().isoformat(), "instruments": "garbage"}), CATEGORY),
        )

    filters = await get_filters(db, market, CATEGORY, clock, environment=environment, memo=None)

    assert market.fetches == [CATEGORY]
    assert "ETHUSDT" in filters
    entry = await stored_entry(db, CATEGORY, environment)
    assert entry is not None
    assert "ETHUSDT" in entry["instruments"]


async def test_the_table_keeps_one_row_per_category_whatever_is_refreshed(
    db: Database, market: CountingMarket, clock: FixedClock, environment: str
) -> None:
    other = f"{environment}-other"
    try:
        await get_snapshot(db, market, "linear", clock, environment=environment, memo=None)
        for _ in range(3):
            clock.advance(seconds=TTL.total_seconds() + 1)
            for category in ("linear", "spot"):
                for env in (environment, other):
                    await get_snapshot(db, market, category, clock, environment=env, memo=None)

        counts = await row_counts(db)
        assert len(market.fetches) == 1 + 3 * 4
        assert (counts["linear"], counts["spot"]) == (1, 1)
        for category in ("linear", "spot"):  # both environments live side by side in the one row
            assert await stored_entry(db, category, environment) is not None
            assert await stored_entry(db, category, other) is not None
    finally:
        async with db.write(Caller.service()) as conn:
            await conn.execute(
                "update instruments_cache set payload = payload #- array['environments', %s]", (other,)
            )


async def test_the_process_memo_answers_repeat_calls_without_the_database_for_a_few_seconds(
    db: Database, market: CountingMarket, clock: FixedClock, environment: str
) -> None:
    memo = LocalMemo(ttl_s=5)
    first = await get_snapshot(db, market, CATEGORY, clock, environment=environment, memo=memo)
    async with db.write(Caller.service()) as conn:  # the shared entry disappears behind the memo's back
        await conn.execute(
            "update instruments_cache set payload = payload #- array['environments', %s] where category = %s",
            (environment, CATEGORY),
        )
    clock.advance(seconds=4)

    remembered = await get_snapshot(db, market, CATEGORY, clock, environment=environment, memo=memo)

    assert remembered is first
    assert market.fetches == [CATEGORY]
    assert await stored_entry(db, CATEGORY, environment) is None

    clock.advance(seconds=2)
    refetched = await get_snapshot(db, market, CATEGORY, clock, environment=environment, memo=memo)

    assert market.fetches == [CATEGORY, CATEGORY]
    assert refetched.fetched_at == clock.now()
