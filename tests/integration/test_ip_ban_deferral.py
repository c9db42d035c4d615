"""An IP ban mid-fan-out defers the orders it caught; a run after the ban sends them (issue 12).

The paper exchange allows 12 requests per minute per source address here, with a 1 s ban. The executor
sends from 127.0.0.7 with no limiter of its own (so it meets the exchange's limit), its users' wallets
cached and leverage set (each order is then one create), and the address's budget spent down to one
request. The first create passes, the next ones are answered 403: those orders stay ``requested`` (not
``rejected``), the signal goes back to the queue, and the next run, once the ban has lifted, sends
them with their own orderLinkId. Every user ends with exactly one order on the exchange's book.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from lib.crypto import KeyVault
from lib.db.session import Caller, Database
from lib.exchange.ports import Credentials
from lib.exchange.rate_limit import RateLimiter
from lib.exchange.trading import PybitExchange
from lib.ops.stack_replay import stack_symbols
from lib.paper_exchange import PaperExchangeConfig, running_paper_exchange
from lib.paper_exchange.client import AsyncPaperControls
from lib.paper_exchange.ratelimit import ExchangeLimits
from lib.services.execution.fanout import execute_pending
from lib.services.execution.pair import ensure_leverage
from lib.services.execution.run import Run
from tests.integration.execution_helpers import (
    LIVE_ENVIRONMENTS,
    PaperUser,
    Prefs,
    Seeder,
    Signals,
    entry_orders,
    executor_deps,
    order_rows,
)

ADDRESS = "127.0.0.7"
IP_REQUESTS = 12
BAN_S = 1.0
USERS = 3


@pytest.fixture(scope="module")
def paper_url() -> Iterator[str]:
    limits = ExchangeLimits(ip_requests=IP_REQUESTS, ip_window_s=60.0, ip_ban_s=BAN_S)
    config = PaperExchangeConfig(symbols=stack_symbols(), state_path=None, port=0, limits=limits)
    with running_paper_exchange(config) as url:
        yield url


async def spend_down(paper_url: str, address: str, *, leave: int) -> None:
    """Spend the address's budget at the exchange until ``leave`` requests remain in its window."""
    stats = await AsyncPaperControls(paper_url).stats()
    used = stats["requests_by_address"].get(address, 0)
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(base_url=paper_url, transport=transport, timeout=5) as client:
        for _ in range(IP_REQUESTS - leave - used):
            assert (await client.get("/v5/market/time")).status_code == 200


async def test_orders_caught_by_an_ip_ban_stay_requested_and_are_sent_after_it(
    db: Database, vault: KeyVault, paper_url: str, seeder: Seeder, signals: Signals
) -> None:
    users = await seeder.users(USERS, Prefs())
    # No limiter of the executor's own: it must meet the exchange's limit. Its pause after a 403 lasts a
    # little longer than the exchange's ban.
    exchange = PybitExchange(
        paper_url=paper_url,
        endpoints=dict.fromkeys(LIVE_ENVIRONMENTS, paper_url),
        limiter=RateLimiter(share=None),
        ban_cooldown_s=BAN_S + 0.3,
        source_address=ADDRESS,
    )
    deps = executor_deps(db, vault, paper_url, worker="test-ip-ban", exchange=exchange)
    signal_id = await signals.insert("SOLUSDT")

    # Warm: every wallet cached, leverage set (each order is then one create).
    async with db.read(Caller.service()) as conn:
        accounts = {
            r["user_id"]: r["id"]
            for r in await (
                await conn.execute(
                    "select user_id, id from user_trading_accounts where user_id = any(%s)",
                    ([u.id for u in users],),
                )
            ).fetchall()
        }
    warm = Run(deps, datetime.now(UTC))
    for user in users:
        creds = user_creds(user)
        await warm.wallet(accounts[user.id], creds)
        await ensure_leverage(warm, accounts[user.id], creds, "SOLUSDT", Prefs().leverage)
    await deps.filters("linear", "paper")
    await spend_down(paper_url, ADDRESS, leave=1)

    first = await execute_pending(deps, now=datetime.now(UTC), signal_ids=[signal_id])
    stats = await AsyncPaperControls(paper_url).stats()
    assert stats["ip_refused_403"] >= 1
    outcomes = {o.outcome for o in first.outcomes}
    assert "unknown" in outcomes
    assert not outcomes & {"rejected", "failed"}
    rows = await order_rows(db, signal_id=signal_id)
    assert "requested" in {r["status"] for r in rows}
    assert not {r["status"] for r in rows} & {"rejected", "failed"}
    assert await signals.status(signal_id) == "new"  # back in the queue, not given up

    # After the ban (bounded): runs until the signal is done; every user has exactly one order.
    deadline = time.monotonic() + 30
    while await signals.status(signal_id) != "executed":
        assert time.monotonic() < deadline, "the deferred orders were never sent"
        await asyncio.sleep(BAN_S / 2)
        await execute_pending(deps, now=datetime.now(UTC), signal_ids=[signal_id])
    rows = await order_rows(db, signal_id=signal_id)
    assert sorted(r["user_id"] for r in rows) == sorted(u.id for u in users)
    assert {r["status"] for r in rows} <= {"placed", "filled"}
    for user in users:
        assert [o["orderLinkId"] for o in await entry_orders(paper_url, user)] == [
            next(r["order_link_id"] for r in rows if r["user_id"] == user.id)
        ]


def user_creds(user: PaperUser) -> Credentials:
    return Credentials(environment=user.environment, api_key=user.api_key, api_secret=user.api_secret)
