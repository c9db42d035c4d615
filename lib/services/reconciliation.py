"""Reconciliation after a restore: what the exchange did that the restored database does not know.

A restored database is older than the exchange. For each active account (its keys decrypted as the
executor does), :func:`reconcile` asks the exchange for the account's orders and fills since ``since``
(``/v5/order/history`` and ``/v5/execution/list``, category linear, every page), then:

- imports every order the database lacks that is ours by its deterministic ``orderLinkId``
  (:mod:`lib.core.order_ids`): an ``ax-`` id is matched to its (signal, user) pair among the signals
  the database holds (an ``ax-`` id whose signal was lost with the data is imported without its signal),
  an ``am-`` id (a manual trade) is imported as it is; each with its fills and fees (summed from the
  executions, or the order's own totals), its SL/TP, and a ``trade_logs`` event
  ``recovered_from_exchange``;
- puts back the close claim of a close by hand (``ac-``, derived from the entry row's id) that reached
  the exchange but was lost;
- marks the signals whose orders exist ``executed``, so no executor takes them again;
- reconciles positions by running the order tracker (:func:`lib.services.tracking.track_orders`) over
  the accounts: an order the database thinks open that the exchange shows filled or closed (by TP, SL or
  by hand) is recorded the way the tracker always records it;
- reports, and leaves alone, orders with a foreign ``orderLinkId`` (placed by hand on the exchange).
  Orders the exchange made itself (a TP/SL trigger's close, no ``orderLinkId``) are not foreign: the
  tracker accounts for them as the position's close.

It is idempotent: an order is imported once (its ``orderLinkId`` is unique), so a second run imports
nothing. When a run finishes without an error it clears ``trading_halted`` if a restore set it
(``by`` = :data:`RESTORE_HALT_BY`); an operator's own halt stays until ``aitradex trading resume``.

Times: ``since`` is wall-clock time. Bybit's order and execution times are wall-clock too, and the
window is walked in 7-day slices (Bybit's limit). The paper exchange's times are its replay clock's,
not comparable with the database's; for a ``paper`` account the exchange's default window is used (the
last 7 days of replay time), which holds every order a replay run placed since it started.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

from lib.core.order_ids import order_link_id
from lib.crypto import KeyVault
from lib.db.session import Caller, Database
from lib.errors import AitradexError, RateLimited
from lib.exchange.bybit import PAPER
from lib.exchange.ports import Credentials, ExecutionState, HistoryExchange, OrderState
from lib.log import log_event
from lib.services.accounts import account_credentials
from lib.services.execution.exits import close_order_link_id
from lib.services.execution.halt import set_trading_halted, trading_state
from lib.services.execution.placement import exchange_status, state_reason
from lib.services.tracking import TrackerDeps, TrackReport, track_orders
from lib.stores import reconciliation as store
from lib.stores.reconciliation import ReconcileAccount, RecoveredOrder

logger = logging.getLogger("aitradex.reconcile")
T = TypeVar("T")

#: Who a restore's halt is recorded as (``lib.ops.restore`` sets it); only that halt is cleared here.
RESTORE_HALT_BY = "aitradex restore"
RECONCILE_BY = "aitradex reconcile"
#: Without ``--since``: this long before the newest order the restored database holds (clocks differ a
#: little, and an order is requested before the exchange records it).
DEFAULT_MARGIN = timedelta(hours=1)
#: Signals an ``ax-`` id is matched against: those created up to this long before ``since``.
SIGNAL_LOOKBACK = timedelta(days=1)
CATEGORY = "linear"
OUR_PREFIXES = ("ax-", "am-", "ac-")
_RATE_LIMIT_TRIES = 20


@dataclass
class ReconcileDeps:
    """What the reconciliation needs, passed in."""

    db: Database
    exchange: HistoryExchange
    vault: KeyVault


@dataclass
class ReconcileReport:
    """One run: what was imported, recovered, marked and reported, and each account's errors."""

    since: datetime | None
    dry_run: bool
    accounts: int = 0
    exchange_orders: int = 0
    imported: list[dict[str, Any]] = field(default_factory=list)
    closes_recovered: list[dict[str, Any]] = field(default_factory=list)
    foreign: list[dict[str, Any]] = field(default_factory=list)
    unmatched: list[dict[str, Any]] = field(default_factory=list)
    signals_executed: int = 0
    tracker: TrackReport | None = None
    errors: list[dict[str, str]] = field(default_factory=list)
    halt_cleared: bool = False
    halt_note: str = ""

    def summary(self) -> dict[str, Any]:
        """The report as plain JSON-able values."""
        return {
            "since": self.since.isoformat() if self.since else None,
            "dry_run": self.dry_run,
            "accounts": self.accounts,
            "exchange_orders": self.exchange_orders,
            "imported": self.imported,
            "closes_recovered": self.closes_recovered,
            "foreign": self.foreign,
            "unmatched": self.unmatched,
            "signals_executed": self.signals_executed,
            "positions_closed": self.tracker.closed if self.tracker else 0,
            "tracker_transitions": self.tracker.transitions if self.tracker else {},
            "errors": self.errors,
            "halt_cleared": self.halt_cleared,
            "halt": self.halt_note,
        }


async def default_since(db: Database) -> datetime | None:
    """The newest order's time in the (restored) database minus :data:`DEFAULT_MARGIN`; None without any
    order (then every signal counts, and the exchange's default window is asked)."""
    newest = await store.newest_order_time(db)
    return newest - DEFAULT_MARGIN if newest is not None else None


async def _patiently(call: Callable[[], Awaitable[T]]) -> T:
    """``call``, waited out through the exchange's rate limit (bounded: then the error stands)."""
    for attempt in range(_RATE_LIMIT_TRIES):
        try:
            return await call()
        except RateLimited:
            if attempt == _RATE_LIMIT_TRIES - 1:
                raise
            await asyncio.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


@dataclass(frozen=True, slots=True)
class _Fill:
    qty: Decimal
    price: Decimal | None
    fee: Decimal
    last_ms: int


def _fills_by_order(executions: Sequence[ExecutionState]) -> dict[str, _Fill]:
    totals: dict[str, list[ExecutionState]] = {}
    for execution in executions:
        if execution.exec_type in ("", "Trade") and execution.qty > 0:
            totals.setdefault(execution.order_id, []).append(execution)
    fills = {}
    for order_id, items in totals.items():
        qty = sum((e.qty for e in items), Decimal(0))
        price = sum((e.qty * e.price for e in items), Decimal(0)) / qty
        fee = sum((e.fee for e in items), Decimal(0))
        fills[order_id] = _Fill(qty, price, fee, max(e.exec_ms for e in items))
    return fills


def _ms_time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _recovered(
    account: ReconcileAccount, state: OrderState, fill: _Fill | None, signal_id: UUID | None, now: datetime
) -> RecoveredOrder:
    filled_qty = fill.qty if fill is not None else state.filled_qty
    status = exchange_status(state)
    context = {
        "exchange_order_id": state.order_id,
        "exchange_status": state.status,
        "created_ms": state.created_ms,
        "signal_known": signal_id is not None,
        "stop_loss": str(state.stop_loss) if state.stop_loss is not None else None,
        "take_profit": str(state.take_profit) if state.take_profit is not None else None,
    }
    return RecoveredOrder(
        user_id=account.user_id,
        account_id=account.account_id,
        signal_id=signal_id,
        environment=account.environment,
        category=state.category,
        symbol=state.symbol,
        side=state.side,
        order_type="Market",
        qty=state.qty,
        stop_loss=state.stop_loss,
        take_profit=state.take_profit,
        leverage=account.leverage,
        order_link_id=state.order_link_id,
        exchange_order_id=state.order_id,
        status=status,
        status_reason=state_reason(state),
        filled_qty=filled_qty,
        avg_fill_price=fill.price if fill is not None else state.avg_price,
        fee=fill.fee if fill is not None else state.fee,
        requested_at=_ms_time(state.created_ms) if state.created_ms else now,
        filled_at=(_ms_time(fill.last_ms) if fill is not None else now) if status == "filled" else None,
        message=f"{state.side} {state.qty} {state.symbol} ({state.status}) was on the exchange, not in the "
        "restored database",
        context=context,
    )


def _describe(account: ReconcileAccount, state: OrderState) -> dict[str, Any]:
    return {
        "user_id": str(account.user_id),
        "account_id": str(account.account_id),
        "order_link_id": state.order_link_id,
        "order_id": state.order_id,
        "symbol": state.symbol,
        "side": state.side,
        "qty": str(state.qty),
        "status": state.status,
    }


async def _reconcile_account(
    deps: ReconcileDeps,
    account: ReconcileAccount,
    creds: Credentials,
    *,
    since: datetime | None,
    signal_ids: Sequence[UUID],
    now: datetime,
    report: ReconcileReport,
) -> None:
    since_ms = None if account.environment == PAPER or since is None else int(since.timestamp() * 1000)
    orders = await _patiently(lambda: deps.exchange.order_history(creds, CATEGORY, since_ms=since_ms))
    executions = await _patiently(lambda: deps.exchange.executions(creds, CATEGORY, since_ms=since_ms))
    report.exchange_orders += len(orders)
    fills = _fills_by_order(executions)
    ours = [o for o in orders if o.order_link_id.startswith(OUR_PREFIXES)]
    for state in orders:
        if not state.order_link_id.startswith(OUR_PREFIXES) and state.create_type in ("", "CreateByUser"):
            report.foreign.append(_describe(account, state))
    known = await store.known_link_ids(deps.db, [o.order_link_id for o in ours]) if ours else set()
    missing = [o for o in ours if o.order_link_id not in known]
    if not missing:
        return
    by_link = {order_link_id(s, account.user_id): s for s in signal_ids}
    closes = {close_order_link_id(i): i for i in await store.filled_order_ids(deps.db, account.account_id)}
    # Oldest first, so an entry is imported before anything that refers to it.
    for state in sorted(missing, key=lambda o: o.created_ms):
        described = _describe(account, state)
        if state.order_link_id.startswith("ac-"):
            entry = closes.get(state.order_link_id)
            if entry is None:
                report.unmatched.append({**described, "why": "a close of an order this database lacks"})
            elif not report.dry_run:
                if await store.record_lost_close_claim(
                    deps.db, entry, state.order_link_id, _ms_time(state.created_ms), described
                ):
                    report.closes_recovered.append({**described, "entry_order_id": str(entry)})
            else:
                report.closes_recovered.append({**described, "entry_order_id": str(entry)})
            continue
        signal_id = by_link.get(state.order_link_id) if state.order_link_id.startswith("ax-") else None
        order = _recovered(account, state, fills.get(state.order_id), signal_id, now)
        described = {
            **described,
            "signal_id": str(signal_id) if signal_id else None,
            "db_status": order.status,
        }
        if report.dry_run:
            report.imported.append(described)
            continue
        order_id = await store.import_order(deps.db, order)
        if order_id is not None:
            report.imported.append({**described, "id": str(order_id)})


async def reconcile(
    deps: ReconcileDeps,
    *,
    since: datetime | None,
    now: datetime | None = None,
    dry_run: bool = False,
    user_ids: Sequence[UUID] | None = None,
    caller: Caller | None = None,
) -> ReconcileReport:
    """One reconciliation run (see the module docstring); ``since`` None: :func:`default_since`."""
    now = now or datetime.now(UTC)
    since = since if since is not None else await default_since(deps.db)
    report = ReconcileReport(since=since, dry_run=dry_run)
    accounts = await store.active_accounts(deps.db, user_ids)
    report.accounts = len(accounts)
    signal_ids = await store.signal_ids_since(deps.db, since - SIGNAL_LOOKBACK if since else None)
    for account in accounts:
        try:
            creds = account_credentials(
                deps.vault,
                account.user_id,
                account.environment,
                account.api_key_encrypted,
                account.api_secret_encrypted,
            )
            await _reconcile_account(
                deps, account, creds, since=since, signal_ids=signal_ids, now=now, report=report
            )
        except AitradexError as exc:
            # One account's trouble must not stop the others; the halt then stays for a rerun.
            report.errors.append(
                {"account_id": str(account.account_id), "error": exc.code, "message": exc.message}
            )
    if not dry_run:
        report.signals_executed = await store.mark_signals_executed(deps.db, signal_ids, now, user_ids)
        report.tracker = await track_orders(
            TrackerDeps(db=deps.db, exchange=deps.exchange, vault=deps.vault), now=now, user_ids=user_ids
        )
        report.errors.extend(report.tracker.errors)
    await _settle_halt(deps.db, report, caller or _reconcile_caller(), now)
    log_event(
        logger,
        "reconcile_run",
        accounts=report.accounts,
        imported=len(report.imported),
        closes_recovered=len(report.closes_recovered),
        foreign=len(report.foreign),
        signals_executed=report.signals_executed,
        errors=len(report.errors),
        dry_run=dry_run,
    )
    return report


def _reconcile_caller() -> Caller:
    return Caller(
        role="service_role", claims={"role": "service_role"}, headers={"user-agent": "aitradex-cli reconcile"}
    )


async def _settle_halt(db: Database, report: ReconcileReport, caller: Caller, now: datetime) -> None:
    state = await trading_state(db)
    if not state.halted:
        report.halt_note = "trading was not halted"
    elif state.by != RESTORE_HALT_BY:
        report.halt_note = f"halted by {state.by or 'an operator'}: stays halted (`aitradex trading resume`)"
    elif report.dry_run:
        report.halt_note = "halted by a restore: a real run without errors would resume trading"
    elif report.errors:
        report.halt_note = "halted by a restore: stays halted, the run had errors (run it again)"
    else:
        await set_trading_halted(
            db,
            caller,
            halted=False,
            reason="reconciled with the exchange after a restore",
            by=RECONCILE_BY,
            now=now,
        )
        report.halt_cleared = True
        report.halt_note = "the restore's halt is cleared: trading resumes"
