"""Exchange calls with retries: placing an order with its ``orderLinkId``, and what the exchange says.

A timeout, a 5xx or a 10006 is retried with the *same* ``orderLinkId``. If an earlier attempt had in
fact been accepted, the exchange answers 110072 and the order is looked up, not sent again. If the
outcome is still unknown when retries run out (or the order window has passed), the caller leaves the
row ``requested`` for the next run and the tracker. An IP ban (403, or the process's limiter paused for
one) is not retried at once, and is not a rejection either: nothing reached the exchange, so the order
is deferred the same way (:func:`deferrable`) and sent by a run after the ban.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, TypeVar
from uuid import UUID

from lib.db.session import Database
from lib.errors import ExchangeError, ExchangeRejected, IpBanned, RateLimited
from lib.exchange.bybit import DUPLICATE_ORDER_LINK_ID
from lib.exchange.ports import Credentials, OrderRequest, OrderState
from lib.failpoints import failpoint
from lib.services.execution.deps import Backoff, ExchangeDeps
from lib.stores import orders as orders_store

T = TypeVar("T")

#: Sends of one order (the first and its retries with the same orderLinkId).
PLACE_ATTEMPTS = 4
#: Attempts of a wallet read or a leverage change on timeouts, 5xx and 10006.
CALL_ATTEMPTS = 4
#: No order is sent (or re-sent) later than this after its reservation: the tracker's grace period for
#: ``requested`` rows (``lib.services.tracking.REQUESTED_GRACE``) must exceed it plus one request timeout.
ORDER_WINDOW = timedelta(seconds=40)

EXCHANGE_STATUS: Mapping[str, str] = {
    "New": "placed",
    "Untriggered": "placed",
    "PartiallyFilled": "partially_filled",
    "Filled": "filled",
    "Cancelled": "cancelled",
    "PartiallyFilledCanceled": "cancelled",
    "Deactivated": "cancelled",
    "Rejected": "rejected",
}
_NO_REASON = ("", "EC_NoError")


def deferrable(error: ExchangeError) -> bool:
    """Whether a later run may succeed where this call failed: a retryable failure, or an IP ban (the
    request was refused at the door: wait the ban out, do not give the pair up)."""
    return error.retryable or isinstance(error, IpBanned)


async def retrying(call: Callable[[], Awaitable[T]], backoff: Backoff, attempts: int = CALL_ATTEMPTS) -> T:
    """``call()``, again after timeouts, 5xx and 10006 (waiting ``backoff``); other errors at once."""
    for attempt in range(attempts):
        try:
            return await call()
        except ExchangeError as exc:
            if not exc.retryable or attempt == attempts - 1:
                raise
            await asyncio.sleep(backoff(attempt, exc))
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class PlaceResult:
    """How sending one order ended: ``placed`` (with the exchange's id, and its state when looked up),
    ``rejected`` (the exchange refused it on purpose), or ``unknown`` (no answer after retries)."""

    result: Literal["placed", "rejected", "unknown"]
    attempts: int
    order_id: str | None = None
    state: OrderState | None = None
    error: ExchangeError | None = None


async def place_with_retries(
    deps: ExchangeDeps,
    creds: Credentials,
    request: OrderRequest,
    account_id: UUID,
    *,
    deadline: float | None = None,
) -> PlaceResult:
    """Send the order, retrying retryable failures with the same ``orderLinkId``.

    A duplicate (110072) means an earlier attempt was accepted: the order is looked up instead. No
    attempt starts after ``deadline`` (``time.monotonic()``), so the tracker knows when the executor has
    surely given up on a ``requested`` row.
    """
    last: ExchangeError | None = None
    attempt = 0
    while attempt < PLACE_ATTEMPTS and (deadline is None or time.monotonic() < deadline):
        if deps.create_budget is None:
            await deps.limiter_for(account_id).acquire()
        elif not await deps.create_budget.take(account_id, deadline=deadline):
            # Not sent: no slot of the account's create budget came before the order window closes.
            return PlaceResult("unknown", attempt, error=last or RateLimited("no order-create slot in time"))
        attempt += 1
        try:
            order_id = await deps.exchange.place_order(creds, request)
            failpoint("executor.after_exchange_ack")
            return PlaceResult("placed", attempt, order_id=order_id or None)
        except ExchangeRejected as exc:
            if exc.ret_code == DUPLICATE_ORDER_LINK_ID:
                state = await _lookup(deps, creds, request)
                return PlaceResult("placed", attempt, order_id=state.order_id if state else None, state=state)
            return PlaceResult("rejected", attempt, error=exc)
        except IpBanned as exc:
            # Not sent (refused at the door), and not worth retrying before the ban lifts: deferred.
            return PlaceResult("unknown", attempt, error=exc)
        except ExchangeError as exc:
            if not exc.retryable:
                return PlaceResult("rejected", attempt, error=exc)
            last = exc
            await asyncio.sleep(deps.backoff(attempt - 1, exc))
    return PlaceResult("unknown", attempt, error=last)


async def _lookup(deps: ExchangeDeps, creds: Credentials, request: OrderRequest) -> OrderState | None:
    try:
        return await retrying(
            lambda: deps.exchange.find_order(creds, request.category, request.symbol, request.order_link_id),
            deps.backoff,
        )
    except ExchangeError:
        return None  # the tracker will look again; the order is already safe on the exchange


def exchange_status(state: OrderState) -> str:
    """The ``execution_orders`` status of what the exchange reports."""
    return EXCHANGE_STATUS.get(state.status, "placed")


def state_reason(state: OrderState) -> str | None:
    """The exchange's reject reason, or None when it gave none."""
    return None if state.reject_reason in _NO_REASON else state.reject_reason


async def record_exchange_state(db: Database, order_id: UUID, state: OrderState, *, now: datetime) -> str:
    """Move an ``execution_orders`` row to what the exchange reports; returns the row's status after.

    Never moves an order backwards: a final state (filled, cancelled, rejected) is not replaced by an
    open one, nor partially filled by placed, whoever reports late.
    """
    return await orders_store.record_exchange_state(
        db,
        order_id,
        status=exchange_status(state),
        exchange_order_id=state.order_id,
        filled_qty=state.filled_qty,
        avg_price=state.avg_price,
        fee=state.fee,
        reason=state_reason(state),
        now=now,
    )
