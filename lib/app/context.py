"""The context every handler receives: who calls, and the dependencies wired at startup.

Handlers never build their own database pool, exchange client or clock: the adapter (or the
scheduler, or a test) passes them in here. Unit tests can pass fakes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lib.core.clock import Clock
from lib.db.session import Caller, Database
from lib.errors import Forbidden

if TYPE_CHECKING:
    from lib.config import Settings


@dataclass(frozen=True)
class Services:
    """Long-lived dependencies, created once per process by ``lib.app.wiring``."""

    db: Database
    settings: Settings
    clock: Clock
    # Optional collaborators, typed loosely here so this module imports no exchange or crypto code.
    extras: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str) -> Any:
        """A named collaborator (``"vault"``, ``"exchange"``, ...). Raises KeyError if not wired."""
        return self.extras[name]


@dataclass(frozen=True)
class Context:
    """One call's context: the caller, the request id, and the services."""

    caller: Caller
    services: Services
    request_id: str
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("aitradex.functions"))

    @property
    def db(self) -> Database:
        return self.services.db

    @property
    def clock(self) -> Clock:
        return self.services.clock

    def require_user_id(self) -> str:
        """The calling user's id. Raises Forbidden when the caller is not a signed-in user."""
        user_id = self.caller.user_id
        if user_id is None:
            raise Forbidden("this action needs a signed-in user's token")
        return user_id
