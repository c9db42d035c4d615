"""The order-create budget's rules without a database: its setting, and that placing an order takes a
slot before every create (first send and each retry) and sends nothing when no slot comes in time."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, cast
from uuid import UUID

from lib.errors import RateLimited
from lib.exchange.ports import Credentials, OrderRequest
from lib.services.execution.budget import DEFAULT_PER_SECOND, parse_per_second
from lib.services.execution.deps import ExchangeDeps
from lib.services.execution.placement import place_with_retries

REQUEST = OrderRequest(category="linear", symbol="ETHUSDT", side="Buy", qty="1", order_link_id="ax-budget")
CREDS = Credentials("paper", "key", "secret")


@dataclass
class Slots:
    """A budget that grants ``grants`` slots, then none, and remembers who asked."""

    grants: int
    asked: list[UUID] = field(default_factory=list)

    async def take(self, account_id: UUID, *, deadline: float | None = None) -> bool:
        self.asked.append(account_id)
        self.grants -= 1
        return self.grants >= 0


@dataclass
class Exchange:
    failures: list[Exception]
    sent: int = 0

    async def place_order(self, creds: Credentials, order: OrderRequest) -> str:
        self.sent += 1
        if self.failures:
            raise self.failures.pop(0)
        return "exchange-id"


def _deps(exchange: Exchange, slots: Slots) -> ExchangeDeps:
    return ExchangeDeps(exchange=cast(Any, exchange), backoff=lambda attempt, error: 0.0, create_budget=slots)


async def test_every_create_first_takes_a_slot_of_the_accounts_budget() -> None:
    exchange, slots = Exchange([RateLimited("10006")]), Slots(grants=5)
    account = uuid.uuid4()
    result = await place_with_retries(_deps(exchange, slots), CREDS, REQUEST, account)
    assert (result.result, result.attempts, exchange.sent) == ("placed", 2, 2)
    assert slots.asked == [account, account]


async def test_no_slot_in_time_means_nothing_is_sent_and_the_outcome_is_left_to_the_tracker() -> None:
    exchange, slots = Exchange([RateLimited("10006")]), Slots(grants=1)
    result = await place_with_retries(_deps(exchange, slots), CREDS, REQUEST, uuid.uuid4())
    assert (result.result, result.attempts, exchange.sent) == ("unknown", 1, 1)
    assert isinstance(result.error, RateLimited)

    untouched = Exchange([])
    result = await place_with_retries(_deps(untouched, Slots(grants=0)), CREDS, REQUEST, uuid.uuid4())
    assert (result.result, result.attempts, untouched.sent) == ("unknown", 0, 0)


def test_the_setting_is_an_integer_1_to_100_else_bybits_10() -> None:
    assert [parse_per_second(v) for v in (1, 7, 100)] == [1, 7, 100]
    assert {parse_per_second(v) for v in (0, 101, 2.5, True, "10", None)} == {DEFAULT_PER_SECOND}
