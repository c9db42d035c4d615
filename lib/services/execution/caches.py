"""What the executor remembers of the exchange to spend fewer calls per order (issue 12, item 4).

**Wallets** (:class:`WalletCache`): each account's wallet, kept :data:`WALLET_TTL_S` seconds in the
process's memory, dropped at once when this process places an order for the account or its tracker
records a fill. It is only a cache of exchange state, so it is correct with several worker processes
(each has its own) and across hosts: what one process does not see (another process's fill, unrealised
P&L moving, a transfer) is at most 30 s old. Nothing dangerous follows from that. The balance only sizes
the order as a share of equity (risk per trade, capped by ``max_position_usd``), and the exchange checks
margin on every create: an order sized on a slightly old balance is at worst slightly off its intended
risk, and one the account cannot carry is refused (110007), never executed on credit. The daily loss
limit reads today's realised P&L from the database, not from this cache. 30 s, not 5: a fan-out to many
users at Bybit's per-IP budget takes longer than 5 s, and a wallet read every 5 s would be a second call
per order again.

**Leverage** (:class:`LeverageMemo`): the leverage each account was last set to per symbol, in Postgres
(``exchange_leverage_memo``), so every executor on every host shares it and a new process does not set
it again: leverage is set once per (account, symbol, leverage). A fan-out reads the memo of all its
accounts in one statement. Rows name the keys they were set with (a fingerprint), so keys connected
again for another exchange account set leverage again. If someone changes the leverage by hand on the
exchange, the memo is wrong until the user's leverage changes: the order then uses the exchange's
leverage, which changes its margin, not its size or risk.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from lib.db.session import Database
from lib.exchange.ports import WalletBalance
from lib.stores import leverage_memo
from lib.stores.leverage_memo import MemoEntry

#: How long a wallet read stands in for the next one (seconds; see the module docstring).
WALLET_TTL_S = 30.0


@dataclass
class WalletCache:
    """Each account's latest wallet read, for ``ttl_s`` seconds (``clock``: monotonic seconds)."""

    ttl_s: float = WALLET_TTL_S
    clock: Callable[[], float] = time.monotonic
    entries: dict[UUID, tuple[float, WalletBalance]] = field(default_factory=dict)

    def get(self, account_id: UUID) -> WalletBalance | None:
        """The cached wallet, or None when there is none or it is older than the TTL."""
        entry = self.entries.get(account_id)
        if entry is None:
            return None
        read_at, wallet = entry
        if self.clock() - read_at >= self.ttl_s:
            del self.entries[account_id]
            return None
        return wallet

    def put(self, account_id: UUID, wallet: WalletBalance) -> None:
        """Remember a wallet just read from the exchange."""
        self.entries[account_id] = (self.clock(), wallet)

    def invalidate(self, account_id: UUID) -> None:
        """Forget the account's wallet (an order was placed or filled: its balance moved)."""
        self.entries.pop(account_id, None)


def key_fingerprint(api_key: str) -> str:
    """A stable name for an API key that does not reveal it (the memo's ``key_fingerprint``)."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:32]


class LeverageMemo:
    """The memo as one run sees it: rows read ahead per symbol, then looked up and written through."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._known: dict[tuple[UUID, str], MemoEntry | None] = {}

    async def preload(self, account_ids: Sequence[UUID], symbol: str) -> None:
        """Read the memo of ``symbol`` for every account in one statement."""
        missing = [a for a in dict.fromkeys(account_ids) if (a, symbol) not in self._known]
        if not missing:
            return
        found = await leverage_memo.read(self._db, missing, symbol)
        for account_id in missing:
            self._known[(account_id, symbol)] = found.get(account_id)

    async def is_set(self, account_id: UUID, symbol: str, leverage: int, fingerprint: str) -> bool:
        """Whether the account's ``symbol`` is known to be at ``leverage`` with these keys."""
        if (account_id, symbol) not in self._known:
            await self.preload([account_id], symbol)
        entry = self._known.get((account_id, symbol))
        return entry is not None and entry == MemoEntry(leverage, fingerprint)

    async def remember(
        self, account_id: UUID, symbol: str, leverage: int, fingerprint: str, *, at: datetime
    ) -> None:
        """Record that the exchange has the account's ``symbol`` at ``leverage`` now."""
        await leverage_memo.remember(self._db, account_id, symbol, leverage, fingerprint, at=at)
        self._known[(account_id, symbol)] = MemoEntry(leverage, fingerprint)
