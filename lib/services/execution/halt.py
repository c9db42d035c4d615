"""The operator kill switch: ``trading_halted`` in ``app_settings``.

While it is on, no executor path places a new order: a halted executor claims no signal (the claim's
own statement reads the switch), and every reservation of an order row reads it again in its own
statement, so a halt set while a fan-out runs stops its very next order (its signal goes back to the
queue; it expires there, or trades once trading resumes). Exits by hand (``close_position``,
``cancel_order``) and the order tracker are not affected: a halt must never trap an open position.

It is set by ``aitradex trading halt|resume`` or the executor's ``set_trading_halted`` (service role).
Every change is a row in ``audit_log`` (app_settings' audit trigger: the role, the time, and the value
with its reason and who set it).
"""

from __future__ import annotations

import logging
from datetime import datetime

from lib.db.session import Caller, Database
from lib.errors import Forbidden
from lib.log import log_event
from lib.stores import settings as settings_store
from lib.stores.settings import HaltState

logger = logging.getLogger("aitradex.executor")


async def trading_state(db: Database) -> HaltState:
    """Whether trading is halted, and why, by whom and since when."""
    return await settings_store.trading_halted(db)


async def set_trading_halted(
    db: Database, caller: Caller, *, halted: bool, reason: str | None, by: str, now: datetime
) -> HaltState:
    """Halt or resume trading; ``caller`` (the service role, with the request's headers) is audited."""
    if caller.role != "service_role":
        raise Forbidden("only the service role (an operator) may halt or resume trading")
    state = await settings_store.set_trading_halted(
        db, caller, HaltState(halted=halted, reason=reason, by=by, at=now)
    )
    log_event(
        logger,
        "trading_halted" if halted else "trading_resumed",
        level=logging.WARNING if halted else logging.INFO,
        reason=reason,
        by=by,
    )
    return state
