"""Exits by hand: a user closes the position of one of their orders, or cancels an order still open.

Both are idempotent and leave a ``trade_logs`` trail:

1. the caller's right to the order is decided by RLS: it is looked up as the caller, and an order they
   cannot see is a 404, as if it did not exist (another user's order included);
2. the exit is claimed on the row under its lock (``lib.stores.order_exits``), with its event, before
   anything is sent. A close gets a deterministic ``orderLinkId`` derived from the order, so even a
   concurrent second call that sends again is refused by the exchange as a duplicate (110072);
3. a repeated call finds the claim: it asks the exchange what became of the first call's order and
   sends nothing unless that order never arrived (then it sends the same ``orderLinkId`` again);
4. the outcome is recorded as the tracker records it: for a close, the exit price, reason, realized
   P&L and exit fees once the symbol is flat (``lib.services.tracking.close_if_flat``; a TP or SL that
   got there first is recorded as such); for a cancel, the exchange's status.

Exits are allowed while trading is halted: the kill switch stops new positions, never their exits.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal
from uuid import UUID

from lib.core.instruments import fmt
from lib.db.session import Caller
from lib.errors import Conflict, ExchangeRejected, ExchangeUnavailable, NotFound, RateLimited
from lib.exchange.bybit import DUPLICATE_ORDER_LINK_ID, ORDER_NOT_EXISTS, REDUCE_ONLY_NOT_SATISFIED
from lib.exchange.ports import Credentials, OrderRequest
from lib.services.accounts import account_credentials
from lib.services.execution.budget import CreateBudget
from lib.services.execution.placement import record_exchange_state
from lib.services.tracking import TrackerDeps, close_if_flat
from lib.stores import order_exits, trade_logs
from lib.stores.order_exits import ExitRow
from lib.stores.orders import OPEN_ORDER_STATUSES
from lib.stores.trade_logs import LogLine

ExitOutcome = Literal["closed", "close_pending", "cancelled"]


@dataclass(frozen=True, slots=True)
class ExitReport:
    """What an exit did: the outcome, the order's status after, and the close's figures when known."""

    order_id: UUID
    outcome: ExitOutcome
    status: str
    repeated: bool
    close_order_link_id: str | None = None
    exit_price: Decimal | None = None
    exit_reason: str | None = None
    realized_pnl: Decimal | None = None


def close_order_link_id(order_id: UUID) -> str:
    """The deterministic ``orderLinkId`` of the order's close by hand: 35 chars of ``[a-z0-9-]``."""
    return "ac-" + hashlib.sha256(f"close:{order_id}".encode()).hexdigest()[:32]


def _not_found(order_id: UUID) -> NotFound:
    return NotFound("no such order", details={"order_id": str(order_id)})


def _credentials(deps: TrackerDeps, row: ExitRow) -> Credentials:
    if row.environment is None or row.api_key_encrypted is None or row.api_secret_encrypted is None:
        raise Conflict(
            "the order's trading account is disconnected: connect the same API key again to manage it",
            details={"status": row.status},
        )
    return account_credentials(
        deps.vault, row.user_id, row.environment, row.api_key_encrypted, row.api_secret_encrypted
    )


def _closed_report(row: ExitRow, *, repeated: bool) -> ExitReport:
    return ExitReport(
        order_id=row.id,
        outcome="closed" if row.closed_at is not None else "close_pending",
        status=row.status,
        repeated=repeated,
        close_order_link_id=row.close_order_link_id,
        exit_price=row.exit_price,
        exit_reason=row.close_reason,
        realized_pnl=row.realized_pnl,
    )


async def close_position(deps: TrackerDeps, caller: Caller, order_id: UUID, *, now: datetime) -> ExitReport:
    """Close the caller's open position of ``order_id`` with a reduce-only market order (see the module)."""
    user_id = caller.user_id
    if user_id is None or not await order_exits.visible_to(deps.db, caller, order_id):
        raise _not_found(order_id)
    link = close_order_link_id(order_id)
    claim = await order_exits.claim_close(deps.db, order_id, UUID(user_id), close_link_id=link, now=now)
    if claim is None:
        raise _not_found(order_id)
    row, claimed = claim
    if row.closed_at is not None:
        return _closed_report(row, repeated=True)
    if row.status != "filled" or row.close_order_link_id is None:
        raise Conflict(
            f"the order holds no open position (it is {row.status})"
            + ("; cancel_order cancels an open order" if row.status in OPEN_ORDER_STATUSES else ""),
            details={"status": row.status},
        )
    creds = _credentials(deps, row)
    sent = False
    if claimed or await deps.exchange.find_order(creds, row.category, row.symbol, link) is None:
        sent = await _send_close(deps, creds, row, link)
    tracked = row.tracked()
    if tracked is not None:
        await close_if_flat(deps, creds, tracked, now)
    after = await order_exits.exit_row(deps.db, order_id, UUID(user_id))
    if after is None:  # deleted meanwhile (the user was)
        raise _not_found(order_id)
    return _closed_report(after, repeated=not claimed and not sent)


async def _send_close(deps: TrackerDeps, creds: Credentials, row: ExitRow, link: str) -> bool:
    """Send the reduce-only close; False when nothing was sent (the symbol is already flat)."""
    position = await deps.exchange.position(creds, row.category, row.symbol)
    if position is None or position.size == 0:
        return False  # a TP or SL got there first: close_if_flat records it
    qty = min(Decimal(row.filled_qty or 0) or Decimal(row.qty), position.size)
    request = OrderRequest(
        category=row.category,
        symbol=row.symbol,
        side="Sell" if row.side == "Buy" else "Buy",
        qty=fmt(qty),
        order_link_id=link,
        reduce_only=True,
    )
    # A close is an order create too: it takes a slot of the account's budget shared with the executors.
    budget = CreateBudget(db=deps.db)
    if row.account_id is not None and not await budget.take(row.account_id, deadline=time.monotonic() + 5):
        # Nothing sent; the claim stays, so the next call finds no order by orderLinkId and sends it.
        raise RateLimited("the account's order creates are at Bybit's limit; try again in a few seconds")
    try:
        await deps.exchange.place_order(creds, request)
    except ExchangeRejected as exc:
        if exc.ret_code == DUPLICATE_ORDER_LINK_ID:
            return False  # a concurrent call sent it first: the exchange holds exactly one close
        if exc.ret_code == REDUCE_ONLY_NOT_SATISFIED:
            raise Conflict("the exchange holds no position this order could reduce") from None
        raise
    except ExchangeUnavailable:
        # Unknown outcome: the claim stays, so the next call (or the tracker) finds out by orderLinkId.
        return True
    await trade_logs.append(
        deps.db,
        LogLine(
            row.user_id,
            "close_sent",
            f"reduce-only market {request.side} {request.qty} {row.symbol}",
            order_id=row.id,
            context={"close_order_link_id": link, "qty": request.qty},
        ),
    )
    return True


async def cancel_order(deps: TrackerDeps, caller: Caller, order_id: UUID, *, now: datetime) -> ExitReport:
    """Cancel the caller's order that is still open on the exchange (see the module docstring)."""
    user_id = caller.user_id
    if user_id is None or not await order_exits.visible_to(deps.db, caller, order_id):
        raise _not_found(order_id)
    claim = await order_exits.claim_cancel(deps.db, order_id, UUID(user_id), now=now)
    if claim is None:
        raise _not_found(order_id)
    row, claimed = claim
    if row.status == "cancelled":
        return ExitReport(order_id=row.id, outcome="cancelled", status=row.status, repeated=True)
    if row.status not in OPEN_ORDER_STATUSES:
        hint = "; close_position closes its position" if row.status == "filled" and not row.closed_at else ""
        raise Conflict(
            f"the order is no longer open (it is {row.status}){hint}", details={"status": row.status}
        )
    creds = _credentials(deps, row)
    state = (
        None
        if claimed
        else await deps.exchange.find_order(creds, row.category, row.symbol, row.order_link_id)
    )
    sent = False
    if claimed or (state is not None and state.status in ("New", "PartiallyFilled", "Untriggered")):
        try:
            await deps.exchange.cancel_order(creds, row.category, row.symbol, row.order_link_id)
            sent = True
        except ExchangeRejected as exc:
            if exc.ret_code != ORDER_NOT_EXISTS:
                raise
        state = await deps.exchange.find_order(creds, row.category, row.symbol, row.order_link_id)
    if state is None:
        raise Conflict("the exchange has no such order to cancel", details={"status": row.status})
    status = await record_exchange_state(deps.db, row.id, state, now=now)
    if status != "cancelled":
        raise Conflict(f"the order could not be cancelled: it is {status}", details={"status": status})
    if status != row.status:
        await trade_logs.append(
            deps.db,
            LogLine(row.user_id, "order_cancelled", f"{row.status} -> cancelled by hand", order_id=row.id),
        )
    return ExitReport(order_id=row.id, outcome="cancelled", status=status, repeated=not claimed and not sent)
