"""What the executor is given (:class:`ExecutorDeps`) and what it answers (outcomes and run reports)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from uuid import UUID

from lib.core.instruments import InstrumentFilters
from lib.crypto import KeyVault
from lib.db.session import Database
from lib.errors import ExchangeError, RateLimited
from lib.exchange.ports import TradingExchange
from lib.exchange.rate_limit import RateLimiter
from lib.services.execution.budget import CreateBudget, CreateSlots
from lib.services.execution.caches import WalletCache

CATEGORY = "linear"
ORDERS_PER_SECOND_PER_ACCOUNT = 10

#: ``filters(category, environment)``: the instruments' filters by symbol (the instruments cache).
FiltersLookup = Callable[[str, str], Awaitable[dict[str, InstrumentFilters]]]
#: ``backoff(attempt, error)``: seconds to wait before retrying after ``error`` (``attempt`` from 0).
Backoff = Callable[[int, ExchangeError], float]

Outcome = Literal["placed", "filled", "rejected", "failed", "unknown", "skipped", "duplicate"]
#: Skips that a later run may not repeat: the exchange did not answer, or the operator halted trading
#: after the signal was claimed (as opposed to an account, a rule or sizing saying no). Their signal goes
#: back to the queue, where a halted executor does not claim it again until trading resumes.
TRANSIENT_SKIPS = frozenset({"exchange_unavailable", "trading_halted"})


def exchange_backoff(attempt: int, error: ExchangeError) -> float:
    """Exponential from 0.1 s, at most 2 s; a rate limit waits out Bybit's one-second window."""
    if isinstance(error, RateLimited):
        return 1.0
    return min(2.0, 0.1 * 2.0**attempt)


@dataclass(kw_only=True)
class ExchangeDeps:
    """What sending orders needs: the exchange, the pause between retries, each account's order
    limiter (Bybit's 10 creates per second) and the wallet cache, shared by every run of the process.

    ``create_budget``, when set, replaces the in-memory limiters with the accounts' budgets in Postgres,
    shared by every executor on every host (the executor always has one: :class:`ExecutorDeps`).
    """

    exchange: TradingExchange
    backoff: Backoff = exchange_backoff
    account_limiters: dict[UUID, RateLimiter] = field(default_factory=dict)
    wallets: WalletCache = field(default_factory=WalletCache)
    create_budget: CreateSlots | None = None

    def limiter_for(self, account_id: UUID) -> RateLimiter:
        """The account's order-create limiter (made on first use)."""
        limiter = self.account_limiters.get(account_id)
        if limiter is None:
            limiter = RateLimiter(share=1.0, limit=ORDERS_PER_SECOND_PER_ACCOUNT, window_s=1.0)
            self.account_limiters[account_id] = limiter
        return limiter


@dataclass(kw_only=True)
class ExecutorDeps(ExchangeDeps):
    """What the executor needs, passed in (the wiring builds it; tests may hand fakes).

    ``concurrency`` bounds the orders in flight at once; ``batch_max`` bounds how many writes share one
    statement, and ``batch_wait_s`` (reservations: an order waits for it) and ``behind_wait_s`` (results
    and logs, written behind) how long the first of a batch waits for company. Measured by
    ``bench/fanout.py``: 2 ms windows made batches of about one and cost as much as unbatched writes.
    """

    db: Database
    vault: KeyVault
    filters: FiltersLookup
    worker: str = "executor"
    concurrency: int = 128
    batch_max: int = 128
    batch_wait_s: float = 0.02
    behind_wait_s: float = 0.05
    # A signal for this many eligible users or more is split into shards that executors on every host
    # share; ``shard_workers`` shards at a time per run, each held under a lease of ``shard_lease_s``
    # (renewed every third of it; one that runs out is taken over). See lib.services.execution.shards.
    shard_min_users: int = 100
    shard_workers: int = 8
    shard_lease_s: float = 30.0
    # Seconds until the process's IP budget could send N more requests (``RateLimiter.seconds_until``;
    # None: not known). A run takes another shard only while its pairs would go out soon, and leaves
    # the rest to hosts with budget to spare.
    ip_wait: Callable[[int], float | None] | None = None
    # Signals expire in market time: on the paper exchange that is its replay clock (2018), not the
    # wall clock. None: market time is wall time (the ``now`` a run is given).
    market_now: Callable[[], Awaitable[datetime]] | None = None

    def __post_init__(self) -> None:
        if self.create_budget is None:
            self.create_budget = CreateBudget(db=self.db)

    async def market_time(self, wall: datetime) -> datetime:
        """Market time for judging signal expiry (``wall`` when no market clock is wired)."""
        return wall if self.market_now is None else await self.market_now()


@dataclass(frozen=True, slots=True)
class OrderOutcome:
    """What happened for one (signal, user) pair."""

    user_id: UUID
    outcome: Outcome
    order_link_id: str | None = None
    reason: str = ""


@dataclass
class ExecutionReport:
    """One executor run: ``claimed`` counts the signals it claimed or worked on shards of."""

    claimed: int = 0
    expired: int = 0
    shards: int = 0
    outcomes: list[OrderOutcome] = field(default_factory=list)
    duration_ms: float = 0.0

    def count(self, outcome: Outcome) -> int:
        return sum(1 for o in self.outcomes if o.outcome == outcome)


def outcomes_summary(outcomes: Sequence[OrderOutcome]) -> dict[str, int]:
    """Counts of each outcome, for responses and logs."""
    summary: dict[str, int] = {}
    for o in outcomes:
        summary[o.outcome] = summary.get(o.outcome, 0) + 1
    return summary
