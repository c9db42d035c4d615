"""The order tracker: follows every order to its end, and reconciles what a crash left behind.

For every ``execution_orders`` row that is not final, grouped by account so each account's keys are
decrypted once:

- ``requested`` for longer than a grace period (longer than the executor keeps sending, see
  ``lib.services.execution.placement.ORDER_WINDOW``): the executor died, or never heard back, between
  sending and recording. The order is looked up on the exchange by its ``orderLinkId``. If found, it is
  recorded as what the exchange says. If not, it was never accepted: it is marked ``failed`` with the
  reason, unless its signal is still queued or claimed (``new``, ``processing``), because the executor
  run that takes the signal (back) sends such rows again itself, with the same ``orderLinkId``. The
  tracker never sends an order;
- ``placed`` / ``partially_filled``: synced to the exchange's status, filled quantity, average price
  and fee (never backwards: a late answer does not undo a fill);
- ``filled`` with its position still open: when the symbol's position is flat, the fills that closed
  it are found among the symbol's recent orders (opposite side, after the entry), and exit price (their
  quantity-weighted average), close reason (``TakeProfit``, ``StopLoss`` or ``Closed``) and realized
  P&L (price difference times quantity, minus the entry's and the exits' fees) are recorded.

An ``untracked`` row (its account was disconnected with the user's confirmation, see
``lib.services.accounts.disconnect_account``) has no keys to follow it with: it is left alone, and its
late results are not recorded over it, until the same API key is connected again and re-links it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID

from lib.crypto import KeyVault
from lib.db.session import Database
from lib.errors import AitradexError, ExchangeError
from lib.exchange.ports import Credentials, OrderState, TradingExchange
from lib.log import log_event
from lib.services.accounts import account_credentials
from lib.services.execution.caches import WalletCache
from lib.services.execution.placement import record_exchange_state
from lib.stores import orders as orders_store
from lib.stores import trade_logs
from lib.stores.orders import OPEN_ORDER_STATUSES, TrackedOrder
from lib.stores.trade_logs import LogLine

logger = logging.getLogger("aitradex.tracker")
#: ``lib.services.execution.placement.ORDER_WINDOW`` (40 s) plus one request timeout (10 s), and a margin.
REQUESTED_GRACE = timedelta(seconds=60)
_CLOSE_REASONS = {"CreateByStopLoss": "StopLoss", "CreateByTakeProfit": "TakeProfit"}


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
    #: The executor's wallet cache in this process: a fill recorded here drops the account's wallet.
    wallets: WalletCache | None = None

    def fill_seen(self, account_id: UUID) -> None:
        """The account's balance moved (a fill, a close): its cached wallet is stale."""
        if self.wallets is not None:
            self.wallets.invalidate(account_id)


@dataclass(frozen=True, slots=True)
class Close:
    """How a position ended: the exit fills' average price, the reason, the realized P&L and the exit
    fills' fees (their share for the closed quantity)."""

    exit_price: Decimal | None
    reason: str
    realized_pnl: Decimal | None
    exit_fee: Decimal | None = None


def closing_fills(orders: Sequence[OrderState], entry: OrderState | None, side: str) -> list[OrderState]:
    """The fills that closed the position ``entry`` opened: filled orders on the opposite side after it,
    oldest first. Without the entry (it left the exchange's recent list), every opposite fill counts."""
    opposite = "Sell" if side == "Buy" else "Buy"
    since = entry.created_ms if entry is not None else 0
    fills = [
        o
        for o in orders
        if o.side == opposite
        and o.status == "Filled"
        and o.filled_qty > 0
        and o.created_ms >= since
        and (entry is None or o.order_link_id != entry.order_link_id)
    ]
    return sorted(fills, key=lambda o: o.created_ms)


def close_of(
    side: str, entry_price: Decimal | None, qty: Decimal, entry_fee: Decimal, fills: Sequence[OrderState]
) -> Close:
    """Exit price, reason and realized P&L of a ``qty`` position closed by ``fills`` (oldest first).

    The first fills that add up to ``qty`` count (a later one belongs to a later position); the reason
    is the last of them's (``CreateByTakeProfit`` -> ``TakeProfit``, ``CreateByStopLoss`` ->
    ``StopLoss``, anything else ``Closed``). Without an entry price or any fill, the P&L is unknown.
    """
    used: list[tuple[OrderState, Decimal]] = []
    remaining = qty
    for fill in fills:
        if remaining <= 0:
            break
        take = min(fill.filled_qty, remaining)
        used.append((fill, take))
        remaining -= take
    if not used or any(fill.avg_price is None for fill, _ in used):
        return Close(exit_price=None, reason="Closed", realized_pnl=None)
    closed_qty = sum((take for _, take in used), Decimal(0))
    exit_price = sum((take * (fill.avg_price or 0) for fill, take in used), Decimal(0)) / closed_qty
    exit_fees = sum((fill.fee * take / fill.filled_qty for fill, take in used), Decimal(0))
    reason = _CLOSE_REASONS.get(used[-1][0].create_type, "Closed")
    if entry_price is None:
        return Close(exit_price=exit_price, reason=reason, realized_pnl=None, exit_fee=exit_fees)
    sign = Decimal(1) if side == "Buy" else Decimal(-1)
    pnl = sign * (exit_price - entry_price) * closed_qty - entry_fee - exit_fees
    return Close(exit_price=exit_price, reason=reason, realized_pnl=pnl, exit_fee=exit_fees)


def _credentials(vault: KeyVault, row: TrackedOrder) -> Credentials:
    return account_credentials(
        vault, row.user_id, row.environment, row.api_key_encrypted, row.api_secret_encrypted
    )


async def _mark_failed(db: Database, row: TrackedOrder, reason: str) -> bool:
    if not await orders_store.mark_failed(db, row.id, reason):
        return False
    await trade_logs.append(
        db, LogLine(row.user_id, "order_failed", reason, order_id=row.id, level="warning")
    )
    return True


async def close_if_flat(deps: TrackerDeps, creds: Credentials, row: TrackedOrder, now: datetime) -> bool:
    """If the filled order's symbol is flat on the exchange, record how its position closed (and log
    ``position_closed``); False when still open or already recorded. Also used by ``close_position``."""
    position = await deps.exchange.position(creds, row.category, row.symbol)
    if position is not None and position.size != 0:
        return False
    orders = await deps.exchange.recent_orders(creds, row.category, row.symbol)
    entry = next((o for o in orders if o.order_link_id == row.order_link_id), None)
    filled_qty = Decimal(row.filled_qty or 0) or Decimal(row.qty)
    entry_price = Decimal(row.avg_fill_price) if row.avg_fill_price is not None else None
    close = close_of(
        row.side,
        entry_price,
        filled_qty,
        Decimal(row.fee or 0),
        closing_fills(orders, entry, row.side),
    )
    closed = await orders_store.record_close(
        deps.db,
        row.id,
        at=now,
        exit_price=close.exit_price,
        reason=close.reason,
        realized_pnl=close.realized_pnl,
        exit_fee=close.exit_fee,
    )
    if not closed:
        return False
    await trade_logs.append(
        deps.db,
        LogLine(
            row.user_id,
            "position_closed",
            f"{close.reason} at {close.exit_price}",
            order_id=row.id,
            context={
                "exit_price": str(close.exit_price) if close.exit_price is not None else None,
                "realized_pnl": str(close.realized_pnl) if close.realized_pnl is not None else None,
                "exit_fee": str(close.exit_fee) if close.exit_fee is not None else None,
            },
        ),
    )
    return True


async def _track_one(
    deps: TrackerDeps, creds: Credentials, row: TrackedOrder, now: datetime, report: TrackReport
) -> None:
    status = row.status
    if status in OPEN_ORDER_STATUSES:
        state = await deps.exchange.find_order(creds, row.category, row.symbol, row.order_link_id)
        if state is None:
            # A signal still queued or claimed will have its reserved rows sent by the executor.
            if status == "requested" and row.signal_status not in ("new", "processing"):
                reason = "not found on the exchange by orderLinkId: it was never accepted"
                if await _mark_failed(deps.db, row, reason):
                    report.moved("failed")
            return
        new_status = await record_exchange_state(deps.db, row.id, state, now=now)
        if new_status != status:
            if new_status in ("filled", "partially_filled"):
                deps.fill_seen(row.account_id)
            report.moved(new_status)
            event = "order_reconciled" if status == "requested" else "order_synced"
            await trade_logs.append(
                deps.db, LogLine(row.user_id, event, f"{status} -> {new_status}", order_id=row.id)
            )
        if new_status != "filled":
            return
        row = dataclasses.replace(
            row, status="filled", avg_fill_price=state.avg_price, filled_qty=state.filled_qty, fee=state.fee
        )
    if row.status == "filled" and await close_if_flat(deps, creds, row, now):
        deps.fill_seen(row.account_id)
        report.closed += 1


async def track_orders(
    deps: TrackerDeps,
    *,
    now: datetime,
    limit: int = 5000,
    user_ids: Sequence[UUID] | None = None,
    requested_grace: timedelta = REQUESTED_GRACE,
) -> TrackReport:
    """One tracker run over every non-final order (only ``user_ids``' if given; see the module docstring)."""
    report = TrackReport()
    rows = await orders_store.orders_to_track(
        deps.db, requested_before=now - requested_grace, limit=limit, user_ids=user_ids
    )
    by_account: dict[UUID, list[TrackedOrder]] = defaultdict(list)
    for row in rows:
        by_account[row.account_id].append(row)
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
                    {"account_id": str(account_id), "order_id": str(row.id), "error": exc.code}
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
