"""Who a signal goes to, and the per-user rules checked before an order is sized.

The users a signal fans out to: auto-trade on, the signal's algorithm and timeframe among theirs, score
at least their minimum, symbol allowed and not blocked, an active account the deployment may trade
(mainnet only when ``live_trading_enabled``), fewer open positions than their maximum, no open position
in that symbol already (the query is ``lib.stores.accounts.eligible_targets``), and today's realized
loss under their daily limit (checked against the wallet, once it is read).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from lib.core.sizing import within_magnitude
from lib.db.session import Database
from lib.errors import Conflict
from lib.stores import accounts as accounts_store
from lib.stores import orders as orders_store
from lib.stores.accounts import Target
from lib.stores.signal_queue import SignalRow


async def eligible_targets(db: Database, signal: SignalRow) -> list[Target]:
    """The users this signal goes to (see the module docstring for the rules)."""
    return await accounts_store.eligible_targets(
        db,
        signal_id=signal.id,
        symbol=signal.symbol,
        algorithm=signal.algorithm,
        timeframe=signal.timeframe,
        score=signal.score,
    )


async def loss_allowances(
    db: Database, user_ids: Sequence[UUID], now: datetime
) -> dict[UUID, tuple[Decimal, Decimal]]:
    """Per user: (daily loss limit %, today's realized P&L), in one query for the whole fan-out."""
    return await orders_store.daily_loss_allowances(db, user_ids, now)


def within_daily_loss_limit(equity: Decimal, limit_pct: Decimal, today_pnl: Decimal) -> bool:
    """Whether today's realized P&L is still above the loss the user allows per day (False for amounts
    that are not finite numbers of sane size: nothing is traded on them)."""
    if not all(within_magnitude(v) for v in (equity, limit_pct, today_pnl)):
        return False
    return today_pnl > -(equity * limit_pct / 100)


async def user_target(db: Database, user_id: UUID) -> tuple[Target, Decimal]:
    """The user's tradable account with their preferences (defaults if never saved), and their loss limit."""
    found = await accounts_store.user_target(db, user_id)
    if found is None:
        raise Conflict(
            "connect an active trading account first (mainnet needs live trading enabled by the operator)"
        )
    return found
