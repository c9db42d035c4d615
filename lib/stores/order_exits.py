"""``execution_orders`` as exits by hand see it: the executor's ``close_position`` and ``cancel_order``.

Each exit is claimed on the order's row under its lock (``for update``) before anything is sent: a
close gets its deterministic ``close_order_link_id``, a cancel its ``cancel_requested_at``, each with its
``trade_logs`` event in the same transaction. A repeated call finds the claim, so it sends nothing twice.
The caller's right to the order is decided by RLS first (:func:`visible_to`, read as the caller).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from lib.db.session import Caller, Database
from lib.stores.orders import TrackedOrder

_SERVICE = Caller.service()


async def visible_to(db: Database, caller: Caller, order_id: UUID) -> bool:
    """Whether ``caller`` can see the order through RLS (read as the caller, in a READ ONLY transaction):
    an order the caller cannot see does not exist for them."""
    async with db.read(caller) as conn:
        row = await (
            await conn.execute("select 1 from execution_orders where id = %s", (order_id,))
        ).fetchone()
    return row is not None


@dataclass(frozen=True, slots=True)
class ExitRow:
    """An order as an exit by hand sees it, read under its row lock, with its account's keys (None when
    the account is gone: the order is then ``untracked``)."""

    id: UUID
    user_id: UUID
    account_id: UUID | None
    signal_id: UUID | None
    symbol: str
    category: str
    side: str
    qty: Decimal
    order_link_id: str
    status: str
    avg_fill_price: Decimal | None
    filled_qty: Decimal | None
    fee: Decimal | None
    filled_at: datetime | None
    requested_at: datetime
    closed_at: datetime | None
    exit_price: Decimal | None
    close_reason: str | None
    realized_pnl: Decimal | None
    close_order_link_id: str | None
    close_requested_at: datetime | None
    cancel_requested_at: datetime | None
    environment: str | None
    api_key_encrypted: str | None
    api_secret_encrypted: str | None

    def tracked(self) -> TrackedOrder | None:
        """The row as the tracker follows it (None without an account to follow it with)."""
        if self.account_id is None or self.environment is None:
            return None
        return TrackedOrder(
            id=self.id,
            user_id=self.user_id,
            account_id=self.account_id,
            signal_id=self.signal_id,
            symbol=self.symbol,
            category=self.category,
            side=self.side,
            qty=self.qty,
            order_link_id=self.order_link_id,
            status=self.status,
            avg_fill_price=self.avg_fill_price,
            filled_qty=self.filled_qty,
            fee=self.fee,
            filled_at=self.filled_at,
            requested_at=self.requested_at,
            signal_status=None,
            environment=self.environment,
            api_key_encrypted=self.api_key_encrypted or "",
            api_secret_encrypted=self.api_secret_encrypted or "",
        )


_EXIT_ROW_SQL = """
select o.id, o.user_id, o.account_id, o.signal_id, o.symbol, o.category, o.side, o.qty, o.order_link_id,
       o.status, o.avg_fill_price, o.filled_qty, o.fee, o.filled_at, o.requested_at, o.closed_at,
       o.exit_price, o.close_reason, o.realized_pnl, o.close_order_link_id, o.close_requested_at,
       o.cancel_requested_at, a.environment, a.api_key_encrypted, a.api_secret_encrypted
from execution_orders o
left join user_trading_accounts a on a.id = o.account_id
where o.id = %(id)s and o.user_id = %(user_id)s
"""
_LOCKED_EXIT_ROW_SQL = _EXIT_ROW_SQL + "for update of o"

_CLAIM_CLOSE_SQL = """
with claimed as (
  update execution_orders set close_order_link_id = %(link)s, close_requested_at = %(now)s
  where id = %(id)s and status = 'filled' and closed_at is null and close_order_link_id is null
  returning id, user_id, symbol
)
insert into trade_logs (user_id, order_id, level, event, message, context)
select user_id, id, 'info', 'close_requested', 'close by hand: a reduce-only market order for ' || symbol,
       jsonb_build_object('close_order_link_id', %(link)s::text)
from claimed
returning order_id
"""

_CLAIM_CANCEL_SQL = """
with claimed as (
  update execution_orders set cancel_requested_at = %(now)s
  where id = %(id)s and status in ('requested', 'placed', 'partially_filled') and cancel_requested_at is null
  returning id, user_id, symbol
)
insert into trade_logs (user_id, order_id, level, event, message, context)
select user_id, id, 'info', 'cancel_requested', 'cancel by hand of this ' || symbol || ' order', '{}'::jsonb
from claimed
returning order_id
"""


async def _claim_exit(
    db: Database, claim_sql: str, order_id: UUID, user_id: UUID, now: datetime, link: str | None
) -> tuple[ExitRow, bool] | None:
    params = {"id": order_id, "user_id": user_id, "now": now, "link": link}
    async with db.write(_SERVICE) as conn:
        if await (await conn.execute(_LOCKED_EXIT_ROW_SQL, params)).fetchone() is None:
            return None
        claimed = await (await conn.execute(claim_sql, params)).fetchone() is not None
        row = await (await conn.execute(_EXIT_ROW_SQL, params)).fetchone()
    return (ExitRow(**row), claimed) if row is not None else None


async def claim_close(
    db: Database, order_id: UUID, user_id: UUID, *, close_link_id: str, now: datetime
) -> tuple[ExitRow, bool] | None:
    """Lock the user's order; if it holds an open position not yet being closed, claim the close with
    ``close_link_id`` and log ``close_requested`` (same transaction). Returns the row after and whether
    this call claimed it, or None when the user has no such order."""
    return await _claim_exit(db, _CLAIM_CLOSE_SQL, order_id, user_id, now, close_link_id)


async def claim_cancel(
    db: Database, order_id: UUID, user_id: UUID, *, now: datetime
) -> tuple[ExitRow, bool] | None:
    """Lock the user's order; if it is open and no cancel was asked yet, claim the cancel and log
    ``cancel_requested`` (same transaction). The row after and whether this call claimed it, or None."""
    return await _claim_exit(db, _CLAIM_CANCEL_SQL, order_id, user_id, now, None)


async def exit_row(db: Database, order_id: UUID, user_id: UUID) -> ExitRow | None:
    """The user's order as it stands now (service read)."""
    async with db.read(_SERVICE) as conn:
        row = await (await conn.execute(_EXIT_ROW_SQL, {"id": order_id, "user_id": user_id})).fetchone()
    return ExitRow(**row) if row is not None else None
