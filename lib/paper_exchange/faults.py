"""Injected failures, per endpoint group, drawn from a seeded generator so every run repeats itself.

Groups: ``market`` (the public ``/v5/market/*`` endpoints) and ``order`` (every signed endpoint:
order, position, account). Each request of a group draws one number from that group's generator, which
is re-seeded from ``(seed, group)`` whenever the faults are configured, so the same seed and the same
sequence of requests always meet the same faults, whatever the other group does.

Outcomes, in this order of the drawn number's bands: a timeout (the server holds the request for
``hang_ms``, longer than any sensible client timeout, then answers 504), an HTTP 5xx, Bybit's rate-limit
answer (retCode 10006 with its ``X-Bapi-Limit*`` headers), and, for ``/v5/order/create`` only, three
ways of accepting the order and then not saying so: a timeout *after* the order was accepted (the
order is recorded, the client gets no answer), and Bybit's "server timeout" (retCode 10000) or "server
error" (retCode 10016) answered for an order that was in fact recorded. The last two are why those
codes mean "outcome unknown" on an order create (see ``lib.exchange.bybit``). ``latency_ms`` delays
every request of the group. New bands are appended, so a plan that leaves them at 0 draws exactly the
faults it always drew.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, model_validator

GROUPS = ("market", "order")


class FaultSpec(BaseModel):
    """The faults of one endpoint group. Probabilities are per request; they must add up to at most 1."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    latency_ms: int = Field(default=0, ge=0, le=60_000)
    timeout_probability: float = Field(default=0.0, ge=0.0, le=1.0)
    http_5xx_probability: float = Field(default=0.0, ge=0.0, le=1.0)
    rate_limit_probability: float = Field(default=0.0, ge=0.0, le=1.0)
    accepted_timeout_probability: float = Field(default=0.0, ge=0.0, le=1.0)
    #: Order create only: record the order, then answer retCode 10000 ("Server Timeout").
    accepted_server_timeout_probability: float = Field(default=0.0, ge=0.0, le=1.0)
    #: Order create only: record the order, then answer retCode 10016 ("Server error").
    accepted_server_error_probability: float = Field(default=0.0, ge=0.0, le=1.0)
    hang_ms: int = Field(default=30_000, ge=0, le=600_000)
    http_5xx_status: int = Field(default=503, ge=500, le=599)

    @model_validator(mode="after")
    def _probabilities_fit(self) -> FaultSpec:
        total = (
            self.timeout_probability
            + self.http_5xx_probability
            + self.rate_limit_probability
            + self.accepted_timeout_probability
            + self.accepted_server_timeout_probability
            + self.accepted_server_error_probability
        )
        if total > 1.0 + 1e-9:
            raise ValueError("fault probabilities add up to more than 1")
        return self


class FaultPlan(BaseModel):
    """What ``POST /_paper/faults`` takes: a seed and a spec per group (a missing group has no faults)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int | None = None
    market: FaultSpec = FaultSpec()
    order: FaultSpec = FaultSpec()


class Fault(enum.Enum):
    """What happens to one request."""

    NONE = "none"
    TIMEOUT = "timeout"
    HTTP_5XX = "http_5xx"
    RATE_LIMIT = "rate_limit"
    ACCEPTED_TIMEOUT = "accepted_timeout"
    ACCEPTED_SERVER_TIMEOUT = "accepted_server_timeout"
    ACCEPTED_SERVER_ERROR = "accepted_server_error"


class FaultInjector:
    """Draws the fault of each request from per-group seeded generators."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._specs: dict[str, FaultSpec] = {group: FaultSpec() for group in GROUPS}
        self._rngs: dict[str, random.Random] = {}
        self.configure(FaultPlan(seed=seed))

    @property
    def seed(self) -> int:
        """The seed the generators were last reset with."""
        return self._seed

    def configure(self, plan: FaultPlan) -> None:
        """Replace every group's faults and reset the generators (the plan's seed, or the current one)."""
        if plan.seed is not None:
            self._seed = plan.seed
        self._specs = {"market": plan.market, "order": plan.order}
        self._rngs = {group: random.Random(f"{self._seed}:{group}") for group in GROUPS}

    def spec(self, group: str) -> FaultSpec:
        """The current faults of ``group``."""
        return self._specs[group]

    def specs(self) -> Mapping[str, FaultSpec]:
        """The current faults of every group."""
        return dict(self._specs)

    def draw(self, group: str, *, accepts_after_timeout: bool = False) -> Fault:
        """The fault of the next request of ``group``; ``accepts_after_timeout`` (order create only)
        enables the faults that accept the order first."""
        spec = self._specs[group]
        roll = self._rngs[group].random()
        accepting = 1.0 if accepts_after_timeout else 0.0
        bands = (
            (Fault.TIMEOUT, spec.timeout_probability),
            (Fault.HTTP_5XX, spec.http_5xx_probability),
            (Fault.RATE_LIMIT, spec.rate_limit_probability),
            (Fault.ACCEPTED_TIMEOUT, spec.accepted_timeout_probability * accepting),
            (Fault.ACCEPTED_SERVER_TIMEOUT, spec.accepted_server_timeout_probability * accepting),
            (Fault.ACCEPTED_SERVER_ERROR, spec.accepted_server_error_probability * accepting),
        )
        edge = 0.0
        for fault, probability in bands:
            edge += probability
            if roll < edge:
                return fault
        return Fault.NONE
