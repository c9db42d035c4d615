"""The executor's and tracker's pure rules: orderLinkIds, retries, grouped writes, how a position closed."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, cast

import pytest

from lib.core.order_ids import manual_order_link_id, order_link_id
from lib.errors import ExchangeError, ExchangeRejected, ExchangeUnavailable, RateLimited
from lib.exchange.bybit import DUPLICATE_ORDER_LINK_ID
from lib.exchange.ports import Credentials, OrderRequest, OrderState
from lib.services.execution.batching import Batcher
from lib.services.execution.deps import ExchangeDeps, ExecutorDeps, exchange_backoff
from lib.services.execution.eligibility import within_daily_loss_limit
from lib.services.execution.placement import (
    EXCHANGE_STATUS,
    PLACE_ATTEMPTS,
    exchange_status,
    place_with_retries,
)
from lib.services.tracking import close_of, closing_fills

BYBIT_LINK_ID = re.compile(r"^[A-Za-z0-9_-]{1,36}$")


# -- orderLinkId -------------------------------------------------------------------------------------


def test_an_order_link_id_fits_bybits_rules() -> None:
    for _ in range(1000):
        link = order_link_id(uuid.uuid4(), uuid.uuid4())
        assert BYBIT_LINK_ID.match(link), link


def test_an_order_link_id_is_the_same_for_the_same_pair_however_the_ids_are_given() -> None:
    signal, user = uuid.uuid4(), uuid.uuid4()
    assert order_link_id(signal, user) == order_link_id(str(signal), str(user)) == order_link_id(signal, user)


def test_order_link_ids_differ_for_every_pair_and_when_signal_and_user_swap() -> None:
    signals = [uuid.uuid4() for _ in range(100)]
    users = [uuid.uuid4() for _ in range(100)]
    links = {order_link_id(s, u) for s in signals for u in users}
    assert len(links) == 100 * 100
    a, b = uuid.uuid4(), uuid.uuid4()
    assert order_link_id(a, b) != order_link_id(b, a)


def test_a_manual_order_link_id_fits_bybits_rules_and_never_looks_like_a_signals() -> None:
    user = uuid.uuid4()
    link = manual_order_link_id(user, "my-key_1")
    assert BYBIT_LINK_ID.match(link)
    assert link == manual_order_link_id(str(user), "my-key_1")
    assert link != manual_order_link_id(user, "my-key_2")
    assert link[:3] == "am-"
    assert order_link_id(uuid.uuid4(), user)[:3] == "ax-"


# -- small rules -------------------------------------------------------------------------------------


def test_the_daily_loss_limit_stops_trading_once_todays_loss_reaches_it() -> None:
    equity, limit = Decimal(10000), Decimal(5)  # 500 may be lost per day
    assert within_daily_loss_limit(equity, limit, Decimal(0))
    assert within_daily_loss_limit(equity, limit, Decimal("-499.99"))
    assert not within_daily_loss_limit(equity, limit, Decimal(-500))
    assert not within_daily_loss_limit(equity, limit, Decimal(-800))
    assert within_daily_loss_limit(equity, limit, Decimal(300))


def _state(status: str = "Filled", **overrides: Any) -> OrderState:
    values: dict[str, Any] = {
        "order_id": "o-1",
        "order_link_id": "ax-1",
        "symbol": "ETHBTC",
        "side": "Buy",
        "status": status,
        "qty": Decimal(10),
        "filled_qty": Decimal(10),
        "avg_price": Decimal(100),
        "fee": Decimal("0.55"),
        "create_type": "CreateByUser",
        "created_ms": 1_000,
    }
    values.update(overrides)
    return OrderState(**values)


@pytest.mark.parametrize(("bybit", "ours"), sorted(EXCHANGE_STATUS.items()))
def test_each_bybit_order_status_maps_to_an_execution_status(bybit: str, ours: str) -> None:
    assert exchange_status(_state(bybit)) == ours


def test_an_unknown_bybit_status_counts_as_placed_not_as_final() -> None:
    assert exchange_status(_state("SomethingNew")) == "placed"


# -- how a position closed ---------------------------------------------------------------------------


def test_a_long_closed_by_its_take_profit_realizes_the_gain_minus_both_fees() -> None:
    entry = _state(order_link_id="ax-mine", created_ms=1_000)
    tp = _state(
        order_link_id="",
        side="Sell",
        avg_price=Decimal(110),
        fee=Decimal("0.6"),
        create_type="CreateByTakeProfit",
        created_ms=2_000,
    )
    fills = closing_fills([tp, entry], entry, "Buy")
    close = close_of("Buy", Decimal(100), Decimal(10), Decimal("0.55"), fills)
    assert (close.exit_price, close.reason) == (Decimal(110), "TakeProfit")
    assert close.realized_pnl == Decimal(100) - Decimal("0.55") - Decimal("0.6")


def test_a_short_closed_by_its_stop_loss_realizes_the_loss_minus_both_fees() -> None:
    entry = _state(order_link_id="ax-mine", side="Sell", created_ms=1_000)
    sl = _state(
        order_link_id="",
        side="Buy",
        avg_price=Decimal(104),
        fee=Decimal("0.5"),
        create_type="CreateByStopLoss",
        created_ms=3_000,
    )
    close = close_of(
        "Sell", Decimal(100), Decimal(10), Decimal("0.55"), closing_fills([sl, entry], entry, "Sell")
    )
    assert (close.exit_price, close.reason) == (Decimal(104), "StopLoss")
    assert close.realized_pnl == Decimal(-40) - Decimal("0.55") - Decimal("0.5")


def test_the_close_is_the_first_opposite_fills_after_the_entry_not_the_newest_ones() -> None:
    before = _state(
        order_link_id="", side="Sell", avg_price=Decimal(90), created_ms=500
    )  # an earlier trade's
    entry = _state(order_link_id="ax-mine", created_ms=1_000)
    first = _state(
        order_link_id="",
        side="Sell",
        filled_qty=Decimal(4),
        avg_price=Decimal(105),
        fee=Decimal("0.2"),
        created_ms=2_000,
        create_type="CreateByUser",
    )
    second = _state(
        order_link_id="",
        side="Sell",
        filled_qty=Decimal(6),
        avg_price=Decimal(95),
        fee=Decimal("0.3"),
        created_ms=3_000,
        create_type="CreateByStopLoss",
    )
    later = _state(order_link_id="", side="Sell", avg_price=Decimal(200), created_ms=9_000)  # a later trade's
    fills = closing_fills([later, second, first, entry, before], entry, "Buy")
    assert [f.created_ms for f in fills] == [2_000, 3_000, 9_000]
    close = close_of("Buy", Decimal(100), Decimal(10), Decimal(0), fills)
    assert close.exit_price == (Decimal(4) * 105 + Decimal(6) * 95) / 10
    assert close.reason == "StopLoss"  # the fill that finished it
    assert close.realized_pnl == Decimal(4) * 5 + Decimal(6) * -5 - Decimal("0.5")


def test_a_close_without_any_fill_found_has_no_exit_price_and_no_pnl() -> None:
    close = close_of("Buy", Decimal(100), Decimal(10), Decimal("0.55"), [])
    assert (close.exit_price, close.reason, close.realized_pnl) == (None, "Closed", None)


# -- retries with the same orderLinkId -----------------------------------------------------------------


@dataclass
class ScriptedExchange:
    """A fake exchange whose order creates fail as scripted, and which remembers every request."""

    failures: list[Exception]
    sent: list[OrderRequest] = field(default_factory=list)
    looked_up: list[str] = field(default_factory=list)

    async def place_order(self, creds: Credentials, order: OrderRequest) -> str:
        self.sent.append(order)
        if self.failures:
            raise self.failures.pop(0)
        return "exchange-id"

    async def find_order(
        self, creds: Credentials, category: str, symbol: str, link: str
    ) -> OrderState | None:
        self.looked_up.append(link)
        return _state(order_id="found-id", order_link_id=link)


@dataclass
class RecordedBackoff:
    """A backoff that waits nothing and remembers what it was asked."""

    asked: list[tuple[int, str]] = field(default_factory=list)

    def __call__(self, attempt: int, error: ExchangeError) -> float:
        self.asked.append((attempt, error.code))
        return 0.0


def _deps(exchange: ScriptedExchange, backoff: RecordedBackoff | None = None) -> ExchangeDeps:
    # Placing an order needs only the exchange side of the executor's deps: no database, no vault.
    return ExchangeDeps(exchange=cast(Any, exchange), backoff=backoff or RecordedBackoff())


REQUEST = OrderRequest(category="linear", symbol="ETHBTC", side="Buy", qty="1", order_link_id="ax-pair")
CREDS = Credentials("paper", "key", "secret")


async def test_a_timed_out_order_is_sent_again_with_the_same_order_link_id() -> None:
    exchange = ScriptedExchange([ExchangeUnavailable("timeout"), RateLimited("10006")])
    result = await place_with_retries(_deps(exchange), CREDS, REQUEST, uuid.uuid4())
    assert (result.result, result.attempts, result.order_id) == ("placed", 3, "exchange-id")
    assert {r.order_link_id for r in exchange.sent} == {"ax-pair"}
    assert exchange.looked_up == []


async def test_each_retry_first_waits_what_the_deps_backoff_says_for_that_attempt_and_error() -> None:
    exchange = ScriptedExchange([ExchangeUnavailable("timeout"), RateLimited("10006")])
    backoff = RecordedBackoff()
    await place_with_retries(_deps(exchange, backoff), CREDS, REQUEST, uuid.uuid4())
    assert backoff.asked == [(0, ExchangeUnavailable.code), (1, RateLimited.code)]


def test_the_real_backoff_doubles_from_a_tenth_of_a_second_to_two_and_waits_out_a_rate_limit() -> None:
    timeout = ExchangeUnavailable("timeout")
    assert [exchange_backoff(n, timeout) for n in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0]
    assert exchange_backoff(0, RateLimited("10006")) == 1.0


def test_the_executor_waits_the_real_backoff_unless_its_deps_say_otherwise() -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(ExecutorDeps)}
    assert defaults["backoff"] is exchange_backoff
    assert ExchangeDeps(exchange=cast(Any, ScriptedExchange([]))).backoff is exchange_backoff


async def test_a_duplicate_answer_means_an_earlier_send_was_accepted_so_the_order_is_looked_up() -> None:
    duplicate = ExchangeRejected("duplicate", ret_code=DUPLICATE_ORDER_LINK_ID)
    exchange = ScriptedExchange([ExchangeUnavailable("timeout"), duplicate])
    result = await place_with_retries(_deps(exchange), CREDS, REQUEST, uuid.uuid4())
    assert (result.result, result.order_id) == ("placed", "found-id")
    assert result.state is not None
    assert exchange.looked_up == ["ax-pair"]
    assert len(exchange.sent) == 2


async def test_a_refusal_is_not_retried() -> None:
    exchange = ScriptedExchange([ExchangeRejected("margin", ret_code=110007)])
    result = await place_with_retries(_deps(exchange), CREDS, REQUEST, uuid.uuid4())
    assert (result.result, result.attempts) == ("rejected", 1)
    assert result.error is not None
    assert result.error.ret_code == 110007


async def test_an_order_without_any_answer_is_left_unknown_after_the_last_attempt() -> None:
    exchange = ScriptedExchange([ExchangeUnavailable("timeout") for _ in range(PLACE_ATTEMPTS + 1)])
    result = await place_with_retries(_deps(exchange), CREDS, REQUEST, uuid.uuid4())
    assert (result.result, result.attempts) == ("unknown", PLACE_ATTEMPTS)
    assert len(exchange.sent) == PLACE_ATTEMPTS


async def test_no_send_starts_after_the_deadline() -> None:
    exchange = ScriptedExchange([ExchangeUnavailable("timeout") for _ in range(PLACE_ATTEMPTS)])
    result = await place_with_retries(_deps(exchange), CREDS, REQUEST, uuid.uuid4(), deadline=0.0)
    assert (result.result, result.attempts, exchange.sent) == ("unknown", 0, [])


# -- grouped writes ------------------------------------------------------------------------------------


async def test_grouped_writes_keep_items_of_one_key_in_separate_batches_and_answer_each_submitter() -> None:
    batches: list[list[tuple[str, int]]] = []

    async def flush(items: list[tuple[str, int]]) -> list[int]:
        batches.append(items)
        return [n * 10 for _, n in items]

    batcher = Batcher(flush, max_items=3, max_wait_s=0.01, key=lambda item: item[0])
    items = [("a", 1), ("a", 2), ("b", 3), ("c", 4), ("d", 5)]
    results = await asyncio.gather(*(batcher.submit(item) for item in items))
    assert results == [10, 20, 30, 40, 50]
    assert all(len(batch) <= 3 for batch in batches)
    assert all(len({key for key, _ in batch}) == len(batch) for batch in batches)
    assert sorted(n for batch in batches for _, n in batch) == [1, 2, 3, 4, 5]


async def test_a_failed_batch_fails_exactly_its_own_submitters() -> None:
    async def flush(items: list[int]) -> list[int]:
        if 2 in items:
            raise RuntimeError("database down")
        return items

    batcher: Batcher[int, int] = Batcher(flush, max_items=2, max_wait_s=0.01)
    results = await asyncio.gather(*(batcher.submit(n) for n in (1, 2, 3, 4)), return_exceptions=True)
    assert [type(r) for r in results[:2]] == [RuntimeError, RuntimeError]
    assert results[2:] == [3, 4]
    await batcher.drain()
