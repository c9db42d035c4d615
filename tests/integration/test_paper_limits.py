"""Bybit's limits on the paper exchange, over real HTTP (issue 12, item 1).

- 600 requests per window per source address: the 601st is HTTP 403 with Bybit's text, the address is
  banned for the configured period (1 s here instead of Bybit's ten minutes), then allowed again; another
  source address (a client bound to 127.0.0.2) is not affected;
- order create at 10 per second per account: the 11th is retCode 10006 with the ``X-Bapi-Limit*``
  headers, while another account's creates pass;
- the executor meets a real 10006 and retries with the same ``orderLinkId``: one order on the book.

The IP tests use a 60 s window, so a slow machine cannot let the first requests slide out of it before
the 601st is sent (the limit is the same 600).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from lib.app.wiring import exchange_clients
from lib.config import exchange_config, load_settings
from lib.crypto import KeyVault
from lib.db.session import Caller, Database
from lib.errors import ConfigError, IpBanned
from lib.exchange.ports import Credentials
from lib.exchange.rate_limit import RateLimiter
from lib.exchange.signing import signed_headers
from lib.exchange.trading import PybitExchange
from lib.ops.stack_replay import stack_symbols
from lib.paper_exchange import PaperExchangeConfig, create_paper_account, running_paper_exchange
from lib.paper_exchange.client import PaperControls
from lib.paper_exchange.ratelimit import IP_BAN_TEXT, ExchangeLimits
from lib.services.execution.fanout import execute_pending
from tests.integration.execution_helpers import Prefs, Seeder, Signals, entry_orders, executor_deps

BAN_S = 1.0
TIME_PATH = "/v5/market/time"


@pytest.fixture
def limited_exchange() -> Iterator[str]:
    limits = ExchangeLimits(ip_requests=600, ip_window_s=60.0, ip_ban_s=BAN_S)
    config = PaperExchangeConfig(symbols=stack_symbols(), state_path=None, port=0, limits=limits)
    with running_paper_exchange(config) as url:
        yield url


def from_address(url: str, address: str) -> httpx.Client:
    """A client whose connections leave from ``address`` (any of 127.0.0.0/8 works on Linux)."""
    return httpx.Client(base_url=url, timeout=5, transport=httpx.HTTPTransport(local_address=address))


def test_the_601st_request_is_a_403_ban_that_lifts_after_its_period_and_spares_other_addresses(
    limited_exchange: str,
) -> None:
    with (
        from_address(limited_exchange, "127.0.0.1") as first,
        from_address(limited_exchange, "127.0.0.2") as other,
    ):
        statuses = [first.get(TIME_PATH).status_code for _ in range(600)]
        assert statuses == [200] * 600
        refused = first.get(TIME_PATH)
        banned_at = time.monotonic()
        assert (refused.status_code, refused.text) == (403, IP_BAN_TEXT)
        # Every endpoint of the address is refused while the ban lasts, signed ones too.
        assert first.get("/v5/market/tickers", params={"category": "linear"}).status_code == 403
        assert first.get("/v5/account/wallet-balance").status_code == 403
        # Another source address has its own budget.
        assert other.get(TIME_PATH).status_code == 200
        # The ban ends after its period, not before: poll (bounded) until the address is served again.
        deadline = banned_at + BAN_S + 10
        while (answer := first.get(TIME_PATH)).status_code == 403:
            assert time.monotonic() < deadline, "the ban never lifted"
            time.sleep(0.05)
        assert answer.status_code == 200
        assert time.monotonic() - banned_at >= BAN_S
    stats = PaperControls(limited_exchange).stats()
    assert stats["ip_bans"] == 1
    assert stats["ip_refused_403"] >= 3


def test_the_controls_never_count_against_the_address(limited_exchange: str) -> None:
    controls = PaperControls(limited_exchange)
    for _ in range(650):
        controls.clock()
    with from_address(limited_exchange, "127.0.0.1") as client:
        assert client.get(TIME_PATH).status_code == 200


def test_an_exchange_with_the_ip_limit_off_never_bans() -> None:
    config = PaperExchangeConfig(
        symbols=stack_symbols(), state_path=None, port=0, limits=ExchangeLimits.off()
    )
    with running_paper_exchange(config) as url, from_address(url, "127.0.0.1") as client:
        assert {client.get(TIME_PATH).status_code for _ in range(700)} == {200}


def _create(client: httpx.AsyncClient, account: Any, body: str) -> Any:
    headers = signed_headers(
        api_key=account.api_key,
        api_secret=account.api_secret,
        timestamp_ms=int(time.time() * 1000),
        payload=body,
    )
    return client.post(
        "/v5/order/create", content=body, headers={**headers, "Content-Type": "application/json"}
    )


def test_the_11th_create_in_a_second_is_10006_with_bybits_headers_and_other_accounts_pass(
    limited_exchange: str,
) -> None:
    busy, calm = create_paper_account(limited_exchange), create_paper_account(limited_exchange)
    body = '{"category":"linear","symbol":"ETHUSDT","side":"Buy","orderType":"Market","qty":"0.01"}'

    async def burst() -> tuple[list[httpx.Response], list[httpx.Response]]:
        async with httpx.AsyncClient(base_url=limited_exchange, timeout=5) as client:
            mine = await asyncio.gather(*(_create(client, busy, body) for _ in range(11)))
            theirs = await asyncio.gather(*(_create(client, calm, body) for _ in range(3)))
            return list(mine), list(theirs)

    started_ms = int(time.time() * 1000)
    mine, theirs = asyncio.run(burst())
    codes = sorted(r.json()["retCode"] for r in mine)
    assert codes == [0] * 10 + [10006]
    limited = next(r for r in mine if r.json()["retCode"] == 10006)
    assert limited.json()["retMsg"] == "Too many visits!"
    assert (limited.headers["X-Bapi-Limit"], limited.headers["X-Bapi-Limit-Status"]) == ("10", "0")
    assert started_ms < int(limited.headers["X-Bapi-Limit-Reset-Timestamp"]) <= started_ms + 5000
    accepted = next(r for r in mine if r.json()["retCode"] == 0)
    assert accepted.headers["X-Bapi-Limit"] == "10"
    assert int(accepted.headers["X-Bapi-Limit-Status"]) in range(10)
    assert [r.json()["retCode"] for r in theirs] == [0, 0, 0]
    assert PaperControls(limited_exchange).stats()["rate_limited_10006"] == 1


async def test_the_executor_meets_a_real_10006_and_retries_with_the_same_order_link_id(
    db: Database, vault: KeyVault, paper_url: str, seeder: Seeder, signals: Signals
) -> None:
    user = await seeder.user(Prefs())
    signal_id = await signals.insert("ETHUSDT")
    deps = executor_deps(db, vault, paper_url, worker=f"test-10006-{uuid.uuid4().hex[:8]}")
    # Warm the executor's caches so the create is the first call after the burst below.
    await deps.filters("linear", "paper")
    # Someone else (another executor, a person) spends this second's ten creates on the account:
    # reduce-only orders with no position, refused 110017, each counted against the limit.
    reduce_only = (
        '{"category":"linear","symbol":"ETHUSDT","side":"Sell","orderType":"Market","qty":"0.01",'
        '"reduceOnly":true}'
    )
    before = (await _stats(paper_url))["rate_limited_10006"]
    async with httpx.AsyncClient(base_url=paper_url, timeout=5) as client:
        spent = await asyncio.gather(*(_create(client, user, reduce_only) for _ in range(10)))
    assert {r.json()["retCode"] for r in spent} == {110017}

    report = await execute_pending(deps, now=datetime.now(UTC), signal_ids=[signal_id])

    assert [o.outcome for o in report.outcomes] == ["placed"]
    assert (await _stats(paper_url))["rate_limited_10006"] > before
    async with db.read(Caller.service()) as conn:
        row = await (
            await conn.execute(
                "select status, order_link_id, attempts from execution_orders where signal_id = %s",
                (signal_id,),
            )
        ).fetchone()
    assert row is not None
    assert row["status"] in ("placed", "filled")
    assert row["attempts"] >= 2
    book = await entry_orders(paper_url, user)
    assert [o["orderLinkId"] for o in book] == [row["order_link_id"]]


async def _stats(url: str) -> dict[str, Any]:
    return await asyncio.to_thread(lambda: PaperControls(url).stats())


async def test_a_403_pauses_every_signed_call_of_the_process_instead_of_retrying_into_the_ban() -> None:
    limits = ExchangeLimits(ip_requests=3, ip_window_s=60.0, ip_ban_s=60.0)
    config = PaperExchangeConfig(symbols=stack_symbols(), state_path=None, port=0, limits=limits)
    with running_paper_exchange(config) as url:
        account = await asyncio.to_thread(create_paper_account, url)
        creds = Credentials("paper", account.api_key, account.api_secret)
        limiter = RateLimiter(share=None)
        exchange = PybitExchange(paper_url=url, limiter=limiter, max_pause_wait_s=1.0)
        for _ in range(3):
            await exchange.wallet_balance(creds)
        with pytest.raises(IpBanned):
            await exchange.wallet_balance(creds)
        assert limiter.pause_remaining() > 50
        sent = (await _stats(url))["requests"]
        with pytest.raises(IpBanned):
            await exchange.wallet_balance(creds)
        # Refused before it left the process: the exchange saw nothing more.
        assert (await _stats(url))["requests"] == sent


async def test_a_hosts_source_address_carries_its_market_and_signed_calls_and_is_counted_apart(
    test_env: dict[str, str],
) -> None:
    """``AITRADEX_SOURCE_ADDRESS`` binds both clients of a host (as every process wires them,
    ``exchange_clients``), on one IP budget: the exchange counts them per address."""
    settings = load_settings({**test_env, "AITRADEX_SOURCE_ADDRESS": "127.0.0.7"})
    assert settings.exchange.source_address == "127.0.0.7"
    config = PaperExchangeConfig(symbols=stack_symbols(), state_path=None, port=0)
    with running_paper_exchange(config) as url:
        account = await asyncio.to_thread(create_paper_account, url)
        creds = Credentials("paper", account.api_key, account.api_secret)
        market, exchange = exchange_clients(settings, paper_url=url)
        assert exchange.limiter is market.limiter
        async with market.client("paper") as client:
            await client.server_time()
            await client.server_time()
        await exchange.wallet_balance(creds)
        by_address = (await _stats(url))["requests_by_address"]
        assert by_address.get("127.0.0.7") == 3
        assert "127.0.0.1" not in by_address  # account creation is a /_paper control: never counted


def test_a_source_address_that_is_not_an_ip_is_refused() -> None:
    with pytest.raises(ConfigError, match="AITRADEX_SOURCE_ADDRESS"):
        exchange_config({"AITRADEX_SOURCE_ADDRESS": "host-a"})
    assert exchange_config({}).source_address is None
