"""``trading-activity`` and the executor's exits through HTTP, against a paper exchange of this module's own.

Users connect paper accounts through ``trading-account`` and trade through ``execute_trade``; the
tracker (called directly, as the scheduler would) records fills and closes while this module moves the
replay clock. Every figure the function answers is checked against the exchange's own fills (prices,
quantities, fees), never against a hard-coded number.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import httpx
import pytest
from pybit.unified_trading import HTTP

from lib.config import Settings
from lib.crypto import KeyVault
from lib.db.session import Caller, Database
from lib.exchange.access import MarketAccess
from lib.exchange.trading import PybitExchange
from lib.http.server import create_functions_app, serve_in_thread
from lib.ops.stack_replay import stack_symbols
from lib.paper_exchange import PaperExchangeConfig, running_paper_exchange
from lib.paper_exchange.server import create_paper_account
from lib.services.auth.users import LocalUser
from lib.services.execution.exits import close_order_link_id
from lib.services.tracking import track_orders
from tests.functions.conftest import bearer
from tests.integration.execution_helpers import advance_clock, current_price, tracker_deps

ACTIVITY = "/functions/v1/trading-activity"
EXECUTOR = "/functions/v1/aitradex1-trade-executor"
MAX_CANDLES = 600


@pytest.fixture
def vault(settings: Settings) -> KeyVault:
    """The stack's key vault (the same master keys the functions server uses)."""
    return KeyVault(settings.master_keys)


@pytest.fixture(scope="module")
def paper() -> Iterator[str]:
    """This module's own paper exchange: its clock moves only when these tests move it."""
    config = PaperExchangeConfig(symbols=stack_symbols(), state_path=None, port=0)
    with running_paper_exchange(config) as url:
        yield url


@pytest.fixture(scope="module")
def server(settings: Settings, paper: str) -> Iterator[str]:
    everywhere = {env: paper for env in ("mainnet", "testnet", "demo")}
    app = create_functions_app(
        settings,
        exchange=PybitExchange(paper_url=paper, endpoints=everywhere),
        market=MarketAccess(paper_url=paper),
    )
    with serve_in_thread(app) as url:
        yield url


@pytest.fixture
async def api(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server, timeout=60) as client:
        yield client


class Trader:
    """A signed-in user with a paper account, trading through the functions."""

    def __init__(self, api: httpx.AsyncClient, user: LocalUser, paper: str, key: str, secret: str) -> None:
        self.api, self.user, self.paper = api, user, paper
        self.session = HTTP(api_key=key, api_secret=secret, max_retries=1, retry_codes={-1})
        self.session.endpoint = paper

    @property
    def id(self) -> UUID:
        return UUID(self.user.id)

    async def call(self, url: str, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
        response = await self.api.post(url, json=body, headers=bearer(self.user.token))
        assert response.status_code == status, response.text
        answer: dict[str, Any] = response.json()
        return answer

    async def activity(self, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
        return await self.call(ACTIVITY, body, status)

    async def trade(self, symbol: str, side: str, *, sl_pct: str, tp_pct: str, amount: str = "400") -> str:
        """A manual market order with SL and TP ``sl_pct``/``tp_pct`` % away; its order id."""
        price = await current_price(self.paper, symbol)
        sign = Decimal(1) if side == "Buy" else Decimal(-1)
        body = {
            "action": "execute_trade",
            "symbol": symbol,
            "side": side,
            "amount_usd": amount,
            "client_order_id": uuid.uuid4().hex[:20],
            "stop_loss": str(price * (1 - sign * Decimal(sl_pct) / 100)),
            "take_profit": str(price * (1 + sign * Decimal(tp_pct) / 100)),
        }
        answer = await self.call(EXECUTOR, body)
        assert answer["outcome"] in ("placed", "filled"), answer
        orders = (await self.activity({"action": "orders", "symbol": symbol, "limit": 1}))["orders"]
        assert orders[0]["order_link_id"] == answer["order_link_id"]
        return str(orders[0]["id"])

    def exchange_orders(self) -> list[dict[str, Any]]:
        """Every order the exchange holds for this account (open and closed), newest first."""
        found: list[dict[str, Any]] = []
        for open_only in (0, 1):
            cursor = None
            while True:
                params: dict[str, Any] = {
                    "category": "linear",
                    "settleCoin": "USDT",
                    "openOnly": open_only,
                    "limit": 50,
                }
                if cursor:
                    params["cursor"] = cursor
                result = self.session.get_open_orders(**params)["result"]
                found.extend(result["list"])
                cursor = result.get("nextPageCursor")
                if not cursor:
                    break
        unique = {o["orderId"]: o for o in found}
        return sorted(unique.values(), key=lambda o: int(o["createdTime"]), reverse=True)


@pytest.fixture
async def trader(api: httpx.AsyncClient, make_user: Callable[[], LocalUser], paper: str) -> Callable[[], Any]:
    async def factory() -> Trader:
        user = make_user()
        account = create_paper_account(paper, "10000")
        body = {
            "action": "connect",
            "environment": "paper",
            "api_key": account.api_key,
            "api_secret": account.api_secret,
        }
        response = await api.post("/functions/v1/trading-account", json=body, headers=bearer(user.token))
        assert response.status_code == 200, response.text
        return Trader(api, user, paper, account.api_key, account.api_secret)

    return factory


async def track_until_closed(
    db: Database, vault: KeyVault, paper: str, traders: list[Trader], order_ids: list[str]
) -> None:
    """Advance the replay a few candles at a time, tracking, until every order's position closed."""
    deps = tracker_deps(db, vault, paper)
    users = [t.id for t in traders]
    for _ in range(0, MAX_CANDLES, 3):
        await track_orders(deps, now=datetime.now(UTC), user_ids=users, requested_grace=_zero())
        async with db.read(Caller.service()) as conn:
            rows = await (
                await conn.execute(
                    "select count(*) as n from execution_orders where id = any(%s) and closed_at is null",
                    ([UUID(i) for i in order_ids],),
                )
            ).fetchone()
        if rows is not None and rows["n"] == 0:
            return
        await advance_clock(paper, 3)
    raise AssertionError(f"positions still open after {MAX_CANDLES} candles")


def _zero() -> Any:
    from datetime import timedelta

    return timedelta(0)


def expected_close(entry: dict[str, Any], book: list[dict[str, Any]]) -> tuple[Decimal, Decimal]:
    """(realized P&L, exit fees) of ``entry``'s position, from the exchange's fills alone: the first
    opposite fills after it that add up to its quantity."""
    qty = Decimal(entry["cumExecQty"])
    opposite = "Sell" if entry["side"] == "Buy" else "Buy"
    exits = sorted(
        (
            o
            for o in book
            if o["side"] == opposite
            and o["symbol"] == entry["symbol"]
            and o["orderStatus"] == "Filled"
            and int(o["createdTime"]) >= int(entry["createdTime"])
            and o["orderId"] != entry["orderId"]
        ),
        key=lambda o: int(o["createdTime"]),
    )
    remaining, value, fees = qty, Decimal(0), Decimal(0)
    for fill in exits:
        if remaining <= 0:
            break
        take = min(Decimal(fill["cumExecQty"]), remaining)
        value += take * Decimal(fill["avgPrice"])
        fees += Decimal(fill["cumExecFee"]) * take / Decimal(fill["cumExecQty"])
        remaining -= take
    assert remaining == 0, "the exchange shows no complete close"
    sign = Decimal(1) if entry["side"] == "Buy" else Decimal(-1)
    pnl = sign * (value - qty * Decimal(entry["avgPrice"])) - Decimal(entry["cumExecFee"]) - fees
    return pnl, fees


async def all_pages(trader: Trader, body: dict[str, Any], key: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        page = await trader.activity({**body, **({"cursor": cursor} if cursor else {})})
        rows.extend(page[key])
        cursor = page["next_cursor"]
        if cursor is None:
            return rows
    raise AssertionError("the pages never ended")


async def test_orders_positions_logs_and_summary_match_the_exchanges_fills(
    db: Database, vault: KeyVault, paper: str, trader: Callable[[], Any]
) -> None:
    alice: Trader = await trader()
    closed_ids = [
        await alice.trade("ETHUSDT", "Buy", sl_pct="0.3", tp_pct="0.3"),
        await alice.trade("SOLUSDT", "Sell", sl_pct="0.3", tp_pct="0.3"),
    ]
    await track_until_closed(db, vault, paper, [alice], closed_ids)
    open_id = await alice.trade("XRPUSDT", "Buy", sl_pct="20", tp_pct="20")
    await track_orders(tracker_deps(db, vault, paper), now=datetime.now(UTC), user_ids=[alice.id])

    book = alice.exchange_orders()
    by_link = {o["orderLinkId"]: o for o in book if o["orderLinkId"]}

    # orders: every order, with the exchange's fill, fee and (for the closed ones) P&L.
    orders = {o["id"]: o for o in await all_pages(alice, {"action": "orders", "limit": 1}, "orders")}
    assert set(orders) == {*closed_ids, open_id}
    expected_total, expected_fees, wins, losses = Decimal(0), Decimal(0), 0, 0
    for order_id in closed_ids:
        order = orders[order_id]
        entry = by_link[order["order_link_id"]]
        pnl, exit_fees = expected_close(entry, book)
        assert order["status"] == "filled"
        assert Decimal(order["filled_qty"]) == Decimal(entry["cumExecQty"])
        assert Decimal(order["avg_fill_price"]) == Decimal(entry["avgPrice"])
        assert Decimal(order["entry_fee"]) == Decimal(entry["cumExecFee"]) > 0
        assert Decimal(order["exit_fee"]) == exit_fees > 0
        assert Decimal(order["fees"]) == Decimal(entry["cumExecFee"]) + exit_fees
        assert Decimal(order["realized_pnl"]) == pnl
        assert order["exit_reason"] in ("TakeProfit", "StopLoss")
        assert order["closed_at"] is not None
        assert order["environment"] == "paper"
        assert order["leverage"] >= 1
        assert order["stop_loss"] is not None
        assert order["take_profit"] is not None
        expected_total += pnl
        expected_fees += Decimal(entry["cumExecFee"]) + exit_fees
        wins, losses = wins + (pnl > 0), losses + (pnl <= 0)
    open_entry = by_link[orders[open_id]["order_link_id"]]
    expected_fees += Decimal(open_entry["cumExecFee"])
    assert orders[open_id]["realized_pnl"] is None
    assert orders[open_id]["closed_at"] is None

    # positions: the open one, priced at the exchange's last price.
    positions = (await alice.activity({"action": "positions"}))["positions"]
    assert [p["order_id"] for p in positions] == [open_id]
    position = positions[0]
    last = await current_price(paper, "XRPUSDT")
    entry_price, size = Decimal(open_entry["avgPrice"]), Decimal(open_entry["cumExecQty"])
    assert Decimal(position["entry_price"]) == entry_price
    assert Decimal(position["size"]) == size
    assert position["side"] == "Buy"
    assert Decimal(position["last_price"]) == last
    assert Decimal(position["unrealized_pnl"]) == (last - entry_price) * size
    assert position["price_unavailable_reason"] is None

    # summary: the same totals, from the fills.
    summary = await alice.activity({"action": "summary"})
    assert summary["currency"] == "USDT"
    assert Decimal(summary["realized_pnl_total"]) == expected_total
    assert Decimal(summary["realized_pnl_today"]) == expected_total  # every close was recorded today
    assert Decimal(summary["realized_pnl_7d"]) == expected_total
    assert Decimal(summary["fees_paid"]) == expected_fees
    assert (summary["closed_positions"], summary["wins"], summary["losses"]) == (2, wins, losses)
    assert summary["win_rate"] == pytest.approx(wins / 2)
    assert summary["open_positions"] == 1
    stop = Decimal(orders[open_id]["stop_loss"])
    assert Decimal(summary["open_risk"]) == size * abs(entry_price - stop)
    series = summary["pnl_series"]
    assert sorted(p["order_id"] for p in series) == sorted(closed_ids)
    assert [p["closed_at"] for p in series] == sorted(p["closed_at"] for p in series)
    assert Decimal(series[-1]["cumulative_pnl"]) == expected_total

    # filters: by status and by symbol.
    filled = await alice.activity({"action": "orders", "status": ["filled"], "symbol": "SOLUSDT"})
    assert [o["id"] for o in filled["orders"]] == [closed_ids[1]]
    none = await alice.activity({"action": "orders", "status": ["cancelled", "rejected"]})
    assert none["orders"] == []
    assert none["next_cursor"] is None

    # trade_logs: one order's timeline, paged, newest first, ending in its close.
    timeline = await all_pages(
        alice, {"action": "trade_logs", "order_id": closed_ids[0], "limit": 2}, "trade_logs"
    )
    assert {e["order_id"] for e in timeline} == {closed_ids[0]}
    assert [e["id"] for e in timeline] == sorted((e["id"] for e in timeline), reverse=True)
    events = [e["event"] for e in reversed(timeline)]
    assert events[0] == "order_requested"
    assert events[-1] == "position_closed"
    assert "order_placed" in events
    everything = await all_pages(alice, {"action": "trade_logs", "limit": 3}, "trade_logs")
    assert {e["order_id"] for e in everything if e["order_id"]} == {*closed_ids, open_id}
    assert len({e["id"] for e in everything}) == len(everything)


async def test_a_user_never_sees_or_exits_another_users_orders(
    db: Database, vault: KeyVault, paper: str, trader: Callable[[], Any]
) -> None:
    alice: Trader = await trader()
    bob: Trader = await trader()
    alice_order = await alice.trade("ETHUSDT", "Buy", sl_pct="20", tp_pct="20")
    bob_order = await bob.trade("ETHUSDT", "Sell", sl_pct="20", tp_pct="20")
    await track_orders(tracker_deps(db, vault, paper), now=datetime.now(UTC), user_ids=[alice.id, bob.id])

    assert [o["id"] for o in (await bob.activity({"action": "orders"}))["orders"]] == [bob_order]
    assert [p["order_id"] for p in (await bob.activity({"action": "positions"}))["positions"]] == [bob_order]
    logs = await all_pages(bob, {"action": "trade_logs", "limit": 200}, "trade_logs")
    assert logs
    assert {e["order_id"] for e in logs} == {bob_order}
    peek = await bob.activity({"action": "trade_logs", "order_id": alice_order})
    assert peek["trade_logs"] == []
    assert (await bob.activity({"action": "summary"}))["open_positions"] == 1

    # Alice's order does not exist for Bob: 404, as for an id nobody has, and nothing reaches the exchange.
    before = len(alice.exchange_orders())
    for action in ("close_position", "cancel_order"):
        for order_id in (alice_order, str(uuid.uuid4())):
            answer = await bob.call(EXECUTOR, {"action": action, "order_id": order_id}, status=404)
            assert answer["error"]["code"] == "not_found"
    assert len(alice.exchange_orders()) == before
    assert [p["order_id"] for p in (await alice.activity({"action": "positions"}))["positions"]] == [
        alice_order
    ]


async def test_close_position_is_idempotent_and_the_exchange_sees_one_close(
    db: Database, vault: KeyVault, paper: str, trader: Callable[[], Any]
) -> None:
    carol: Trader = await trader()
    order_id = await carol.trade("SOLUSDT", "Buy", sl_pct="20", tp_pct="20")
    await track_orders(tracker_deps(db, vault, paper), now=datetime.now(UTC), user_ids=[carol.id])

    first = await carol.call(EXECUTOR, {"action": "close_position", "order_id": order_id})
    second = await carol.call(EXECUTOR, {"action": "close_position", "order_id": order_id})

    link = close_order_link_id(UUID(order_id))
    assert first["outcome"] == second["outcome"] == "closed"
    assert first["repeated"] is False
    assert second["repeated"] is True
    assert first["close_order_link_id"] == second["close_order_link_id"] == link
    assert first["exit_reason"] == "Closed"
    book = carol.exchange_orders()
    closes = [o for o in book if o["reduceOnly"]]
    assert [o["orderLinkId"] for o in closes] == [link]
    assert closes[0]["orderStatus"] == "Filled"
    assert closes[0]["side"] == "Sell"
    entry = next(o for o in book if o["orderLinkId"] != link)
    pnl, _ = expected_close(entry, book)
    assert Decimal(first["realized_pnl"]) == Decimal(second["realized_pnl"]) == pnl
    assert Decimal(first["exit_price"]) == Decimal(closes[0]["avgPrice"])
    assert (await carol.activity({"action": "positions"}))["positions"] == []
    events = [
        e["event"]
        for e in (await carol.activity({"action": "trade_logs", "order_id": order_id}))["trade_logs"]
    ]
    assert events.count("close_requested") == 1
    assert events.count("close_sent") == 1
    assert events.count("position_closed") == 1


async def test_cancel_order_cancels_a_resting_order_once_and_refuses_a_filled_one(
    db: Database, vault: KeyVault, paper: str, trader: Callable[[], Any]
) -> None:
    dave: Trader = await trader()
    filled_id = await dave.trade("ETHUSDT", "Buy", sl_pct="20", tp_pct="20")
    # A resting limit order far below the market, placed on the exchange as the executor would record
    # it: the executor itself only sends market orders, which fill at once on the paper exchange.
    link = f"t-{uuid.uuid4().hex[:20]}"
    price = await current_price(paper, "ETHUSDT")
    limit_price = (price / 2).quantize(Decimal("0.01"))
    placed = dave.session.place_order(
        category="linear",
        symbol="ETHUSDT",
        side="Buy",
        orderType="Limit",
        qty="0.1",
        price=str(limit_price),
        orderLinkId=link,
        positionIdx=0,
    )["result"]
    async with db.write(Caller.service()) as conn:
        row = await (
            await conn.execute(
                "insert into execution_orders (user_id, account_id, symbol, side, order_type, qty, price, "
                "order_link_id, exchange_order_id, status, environment, placed_at) "
                "select %s, a.id, 'ETHUSDT', 'Buy', 'Limit', 0.1, %s, %s, %s, 'placed', 'paper', now() "
                "from user_trading_accounts a where a.user_id = %s returning id",
                (dave.id, limit_price, link, placed["orderId"], dave.id),
            )
        ).fetchone()
    assert row is not None
    resting_id = str(row["id"])

    first = await dave.call(EXECUTOR, {"action": "cancel_order", "order_id": resting_id})
    second = await dave.call(EXECUTOR, {"action": "cancel_order", "order_id": resting_id})

    assert first["outcome"] == second["outcome"] == "cancelled"
    assert first["status"] == second["status"] == "cancelled"
    assert (first["repeated"], second["repeated"]) == (False, True)
    on_exchange = next(o for o in dave.exchange_orders() if o["orderLinkId"] == link)
    assert on_exchange["orderStatus"] == "Cancelled"
    listed = await dave.activity({"action": "orders", "status": ["cancelled"]})
    assert [o["id"] for o in listed["orders"]] == [resting_id]
    events = [
        e["event"]
        for e in (await dave.activity({"action": "trade_logs", "order_id": resting_id}))["trade_logs"]
    ]
    assert events.count("cancel_requested") == 1
    assert events.count("order_cancelled") == 1

    await track_orders(tracker_deps(db, vault, paper), now=datetime.now(UTC), user_ids=[dave.id])
    refused = await dave.call(EXECUTOR, {"action": "cancel_order", "order_id": filled_id}, status=409)
    assert refused["error"]["details"]["status"] == "filled"


async def test_activity_needs_a_signed_in_user(
    api: httpx.AsyncClient, anon_key: str, service_key: str
) -> None:
    for key in (anon_key, service_key):
        response = await api.post(ACTIVITY, json={"action": "orders"}, headers=bearer(key))
        assert response.status_code == 403, response.text
    assert (await api.post(ACTIVITY, json={"action": "orders"})).status_code == 401
    status = await api.post(ACTIVITY, json={"action": "status"}, headers=bearer(anon_key))
    assert status.status_code == 200
    assert status.json()["function"] == "trading-activity"


async def test_a_page_above_200_is_refused(trader: Callable[[], Any]) -> None:
    erin: Trader = await trader()
    answer = await erin.activity({"action": "orders", "limit": 201}, status=422)
    assert answer["error"]["code"] == "invalid_request"


async def test_the_service_role_halts_trading_and_exits_still_work(
    api: httpx.AsyncClient,
    db: Database,
    vault: KeyVault,
    paper: str,
    trader: Callable[[], Any],
    service_key: str,
) -> None:
    frank: Trader = await trader()
    order_id = await frank.trade("DOGEUSDT", "Buy", sl_pct="20", tp_pct="20")
    await track_orders(tracker_deps(db, vault, paper), now=datetime.now(UTC), user_ids=[frank.id])
    halt = {"action": "set_trading_halted", "halted": True, "reason": "drill"}
    refused = await frank.call(EXECUTOR, halt, status=403)
    assert refused["error"]["code"] == "forbidden"

    async def as_service(url: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await api.post(url, json=body, headers=bearer(service_key))
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    try:
        state = await as_service(EXECUTOR, halt)
        assert (state["trading_halted"], state["reason"], state["changed_by"]) == (
            True,
            "drill",
            "service_role",
        )
        assert (await as_service(EXECUTOR, {"action": "status"}))["trading_halted"] is True
        health = await as_service("/functions/v1/diagnostics", {"action": "check"})
        assert health["trading_halted"] is True
        trading = next(c for c in health["checks"] if c["name"] == "trading")
        assert trading["status"] == "healthy"
        assert trading["details"]["reason"] == "drill"
        creates = len(frank.exchange_orders())

        body = {
            "action": "execute_trade",
            "symbol": "ETHUSDT",
            "side": "Buy",
            "amount_usd": "100",
            "client_order_id": uuid.uuid4().hex[:20],
        }
        skipped = await frank.call(EXECUTOR, body)
        closed = await frank.call(EXECUTOR, {"action": "close_position", "order_id": order_id})
    finally:
        resumed = await as_service(EXECUTOR, {"action": "set_trading_halted", "halted": False})
    assert (skipped["outcome"], skipped["reason"]) == ("skipped", "trading_halted")
    assert closed["outcome"] == "closed"
    assert len(frank.exchange_orders()) == creates + 1  # the close, and nothing else
    assert resumed["trading_halted"] is False
    assert (await as_service(EXECUTOR, {"action": "status"}))["trading_halted"] is False
