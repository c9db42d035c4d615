"""One executor run's context: its clock, its grouped writes, and what it learned along the way."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from uuid import UUID

from lib.exchange.ports import Credentials, WalletBalance
from lib.services.execution.batching import Writer
from lib.services.execution.caches import LeverageMemo
from lib.services.execution.deps import ExecutorDeps
from lib.services.execution.placement import retrying
from lib.stores import accounts as accounts_store


class Run:
    """One executor run (or one manual trade): shared by every pair it works on."""

    def __init__(self, deps: ExecutorDeps, now: datetime) -> None:
        self.deps = deps
        self._base = now
        self._t0 = time.monotonic()
        self.writer = Writer(
            deps.db, max_items=deps.batch_max, max_wait_s=deps.batch_wait_s, behind_wait_s=deps.behind_wait_s
        )
        self.leverage = LeverageMemo(deps.db)
        self.used_accounts: set[UUID] = set()

    def now(self) -> datetime:
        """The run's ``now`` moved on by the time spent since it started (so row times stay true)."""
        return self._base + timedelta(seconds=time.monotonic() - self._t0)

    async def wallet(self, account_id: UUID, creds: Credentials) -> WalletBalance:
        """The account's wallet from the process's wallet cache, else read (retried on transient
        failures) and cached (see :mod:`lib.services.execution.caches`)."""
        wallet = self.deps.wallets.get(account_id)
        if wallet is None:
            wallet = await retrying(lambda: self.deps.exchange.wallet_balance(creds), self.deps.backoff)
            self.deps.wallets.put(account_id, wallet)
        return wallet

    async def finish(self) -> None:
        """Write what is still queued, then note the accounts this run sent orders for."""
        await self.writer.drain()
        if self.used_accounts:
            used, self.used_accounts = sorted(self.used_accounts), set()
            await accounts_store.touch_last_used(self.deps.db, used, self.now())
