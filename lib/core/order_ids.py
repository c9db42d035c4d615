"""The deterministic Bybit ``orderLinkId`` of each order: the same pair never gets a second id, so a
resend is recognised by the exchange (retCode 110072) instead of placed twice."""

from __future__ import annotations

import hashlib
from uuid import UUID


def order_link_id(signal_id: UUID | str, user_id: UUID | str) -> str:
    """The deterministic Bybit ``orderLinkId`` of a (signal, user) pair: 35 chars of ``[a-z0-9-]``."""
    digest = hashlib.sha256(f"{signal_id}:{user_id}".encode()).hexdigest()
    return f"ax-{digest[:32]}"


def manual_order_link_id(user_id: UUID | str, client_order_id: str) -> str:
    """The ``orderLinkId`` of a manual trade, deterministic from the caller's own idempotency key."""
    digest = hashlib.sha256(f"manual:{user_id}:{client_order_id}".encode()).hexdigest()
    return f"am-{digest[:32]}"
