"""The order tracker: follows every order to its end, and reconciles what a crash left behind.

For every ``execution_orders`` row that is not final, grouped by account so each account's keys are
decrypted once:

- ``requested`` for longer than a grace period: the executor died, or never heard back, between
  sending and recording. The order is looked up on the exchange by its ``orderLinkId``. If found, it
  is recorded as what the exchange says; if not, it is marked ``failed`` with the reason. It is never
  sent again from here;
- ``placed`` / ``partially_filled``: synced to the exchange's status, filled quantity, average price
  and fee;
- ``filled`` with its position still open: when the symbol's position is flat, the TP/SL that closed
  it is found among the recent orders, and exit price, close reason and realized P&L are recorded.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from lib.crypto import API_KEY_FIELD, API_SECRET_FIELD, KeyVault
from lib.db.session import Caller, Database
from lib.errors import AitradexError, ExchangeError
from lib.exchange.trading import Credentials, OrderState, TradingExchange
from lib.executor import log_trade, record_exchange_state
from lib.log import log_event

logger = logging.getLogger("aitradex.tracker")
_SERVICE = Caller.service()
REQUESTED_GRACE = timedelta(seconds=60)
_CLOSE_REASONS = {"CreateByStopLoss": "StopLoss", "CreateByTakeProfit": "TakeProfit"}

_OPEN_ORDERS_SQL = """
select o.id, o.user_id, o.account_id, o.symbol, o.category, o.side, o.qty, o.order_link_id, o.status,
       o.avg_fill_price, o.filled_at, o.requested_at,
       a.environment, a.api_key_encrypted, a.api_secret_encrypted
from execution_orders o
join user_trading_accounts a on a.id = o.account_id
where (o.status = 'requested' and o.requested_at < %(grace)s)
   or o.status in ('placed', 'partially_filled')
   or (o.status = 'filled' and o.closed_at is null)
order by o.account_id, o.requested_at
limit %(limit)s
"""


@dataclass
class TrackReport:
    """One tracker run: how many orders moved to each state, and errors per account."""

    checked: int = 0
    transitions: dict[str, int] = field(default_factory=dict)
    closed: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)

    def moved(self, status: str) -> None:
        self.transitions[status] = self.transitions.get(status, 0) + 1


@dataclass
class TrackerDeps:
    """What the tracker needs, passed in."""

    db: Database
    exchange: TradingExchange
    vault: KeyVault


def _credentials(vault: KeyVault, row: dict[str, Any]) -> Credentials:
    user = str(row["user_id"])
    return Credentials(
        environment=row["environment"],
        api_key=vault.decrypt(row["api_key_encrypted"], user_id=user, field=API_KEY_FIELD),
        api_secret=vault.decrypt(row["api_secret_encrypted"], user_id=user, field=API_SECRET_FIELD),
    )


async def _mark_failed(db: Database, row: dict[str, Any], reason: str) -> None:
    async with db.write(_SERVICE) as conn:
        await conn.execute(
            "update execution_orders set status = 'failed', status_reason = %s "
            "where id = %s and status = 'requested'",
            (reason, row["id"]),
        )
    await log_trade(db, row["user_id"], "order_failed", reason, order_id=row["id"], level="warning")


async def _close_if_flat(deps: TrackerDeps, creds: Credentials, row: dict[str, Any], now: datetime) -> bool:
    position = await deps.exchange.position(creds, row["category"], row["symbol"])
    if position is not None and position.size != 0:
        return False
    closing = _closing_order(await deps.exchange.recent_orders(creds, row["category"], row["symbol"]), row)
    entry = Decimal(row["avg_fill_price"]) if row["avg_fill_price"] is not None else None
    exit_price = closing.avg_price if closing is not None else None
    reason = _CLOSE_REASONS.get(closing.create_type, "Closed") if closing is not None else "Closed"
    pnl = None
    if entry is not None and exit_price is not None:
        sign = Decimal(1) if row["side"] == "Buy" else Decimal(-1)
        pnl = sign * (exit_price - entry) * Decimal(row["qty"]) - (closing.fee if closing else Decimal(0))
    async with deps.db.write(_SERVICE) as conn:
        await conn.execute(
            "update execution_orders set closed_at = %s, exit_price = %s, close_reason = %s, "
            "realized_pnl = %s "
            "where id = %s and closed_at is null",
            (now, exit_price, reason, pnl, row["id"]),
        )
    await log_trade(
        deps.db,
        row["user_id"],
        "position_closed",
        f"{reason} at {exit_price}",
        order_id=row["id"],
        context={"realized_pnl": str(pnl) if pnl is not None else None},
    )
    return True


def _closing_order(orders: list[OrderState], row: dict[str, Any]) -> OrderState | None:
    """The newest filled TP/SL (or reduce) order on the opposite side after our fill."""
    opposite = "Sell" if row["side"] == "Buy" else "Buy"
    candidates = [
        o
        for o in orders
        if o.side == opposite and o.status == "Filled" and o.order_link_id != row["order_link_id"]
    ]
    candidates.sort(key=lambda o: o.created_ms, reverse=True)
    return candidates[0] if candidates else None


async def _track_one(
    deps: TrackerDeps, creds: Credentials, row: dict[str, Any], now: datetime, report: TrackReport
) -> None:
    status = row["status"]
    if status in ("requested", "placed", "partially_filled"):
        state = await deps.exchange.find_order(creds, row["category"], row["symbol"], row["order_link_id"])
        if state is None:
            if status == "requested":
                await _mark_failed(
                    deps.db, row, "not found on the exchange by orderLinkId: it was never accepted"
                )
                report.moved("failed")
            return
        new_status = await record_exchange_state(deps.db, row["id"], state, now=now)
        if new_status != status:
            report.moved(new_status)
            await log_trade(
                deps.db, row["user_id"], "order_synced", f"{status} -> {new_status}", order_id=row["id"]
            )
        if new_status == "filled":
            row = {**row, "avg_fill_price": state.avg_price, "status": "filled"}
            if await _close_if_flat(deps, creds, row, now):
                report.closed += 1
        return
    if status == "filled" and await _close_if_flat(deps, creds, row, now):
        report.closed += 1


async def track_orders(deps: TrackerDeps, *, now: datetime, limit: int = 5000) -> TrackReport:
    """One tracker run over every non-final order (see the module docstring)."""
    report = TrackReport()
    async with deps.db.read(_SERVICE) as conn:
        rows = await (
            await conn.execute(_OPEN_ORDERS_SQL, {"grace": now - REQUESTED_GRACE, "limit": limit})
        ).fetchall()
    by_account: dict[UUID, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_account[row["account_id"]].append(row)
    for account_id, orders in by_account.items():
        try:
            creds = _credentials(deps.vault, orders[0])
        except AitradexError as exc:
            report.errors.append({"account_id": str(account_id), "error": exc.code})
            continue
        for row in orders:
            report.checked += 1
            try:
                await _track_one(deps, creds, row, now, report)
            except ExchangeError as exc:
                # One account's trouble must not stop the others; the next run tries again.
                report.errors.append(
                    {"account_id": str(account_id), "order_id": str(row["id"]), "error": exc.code}
                )
                break
    log_event(
        logger,
        "tracker_run",
        checked=report.checked,
        transitions=report.transitions,
        closed=report.closed,
        errors=len(report.errors),
    )
    return report
