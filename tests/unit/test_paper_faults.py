"""Injected faults are drawn from seeded generators: the same seed gives the same faults."""

import random

import pytest
from pydantic import ValidationError

from lib.paper_exchange.faults import Fault, FaultInjector, FaultPlan, FaultSpec

PLAN = FaultPlan(
    seed=7,
    market=FaultSpec(timeout_probability=0.2, http_5xx_probability=0.2, rate_limit_probability=0.2),
    order=FaultSpec(accepted_timeout_probability=0.5),
)


def draws(injector: FaultInjector, group: str, n: int, *, order_create: bool = False) -> list[Fault]:
    return [injector.draw(group, accepts_after_timeout=order_create) for _ in range(n)]


def test_the_same_seed_repeats_the_same_faults() -> None:
    first, second = FaultInjector(0), FaultInjector(0)
    first.configure(PLAN)
    second.configure(PLAN)
    assert draws(first, "market", 50) == draws(second, "market", 50)


def test_reconfiguring_resets_the_sequence() -> None:
    injector = FaultInjector(0)
    injector.configure(PLAN)
    before = draws(injector, "market", 30)
    injector.configure(PLAN)
    assert draws(injector, "market", 30) == before


def test_one_group_does_not_shift_the_other() -> None:
    quiet, busy = FaultInjector(0), FaultInjector(0)
    quiet.configure(PLAN)
    busy.configure(PLAN)
    draws(busy, "order", 17)
    assert draws(quiet, "market", 20) == draws(busy, "market", 20)


def test_every_configured_kind_of_fault_shows_up() -> None:
    injector = FaultInjector(0)
    injector.configure(PLAN)
    seen = set(draws(injector, "market", 200))
    assert seen == {Fault.NONE, Fault.TIMEOUT, Fault.HTTP_5XX, Fault.RATE_LIMIT}


def test_timeout_after_acceptance_only_happens_on_order_create() -> None:
    injector = FaultInjector(0)
    injector.configure(PLAN)
    assert Fault.ACCEPTED_TIMEOUT not in draws(injector, "order", 100)
    assert Fault.ACCEPTED_TIMEOUT in draws(injector, "order", 100, order_create=True)


def test_the_accept_then_answer_10000_or_10016_faults_only_happen_on_order_create() -> None:
    injector = FaultInjector(0)
    injector.configure(
        FaultPlan(
            seed=3,
            order=FaultSpec(accepted_server_timeout_probability=0.3, accepted_server_error_probability=0.3),
        )
    )
    assert set(draws(injector, "order", 100)) == {Fault.NONE}
    assert set(draws(injector, "order", 200, order_create=True)) == {
        Fault.NONE,
        Fault.ACCEPTED_SERVER_TIMEOUT,
        Fault.ACCEPTED_SERVER_ERROR,
    }


def test_the_bands_keep_their_order_so_old_plans_draw_the_faults_they_always_drew() -> None:
    # Timeout, 5xx, rate limit, accepted-then-timeout, then the two added bands: a plan that leaves the
    # new ones at 0 meets the same faults, request by request, as before they existed.
    spec = FaultSpec(
        timeout_probability=0.1,
        http_5xx_probability=0.1,
        rate_limit_probability=0.1,
        accepted_timeout_probability=0.1,
        accepted_server_timeout_probability=0.1,
        accepted_server_error_probability=0.1,
    )
    injector = FaultInjector(0)
    injector.configure(FaultPlan(seed=11, order=spec))
    order = [
        Fault.TIMEOUT,
        Fault.HTTP_5XX,
        Fault.RATE_LIMIT,
        Fault.ACCEPTED_TIMEOUT,
        Fault.ACCEPTED_SERVER_TIMEOUT,
        Fault.ACCEPTED_SERVER_ERROR,
    ]
    rolls = random.Random("11:order")
    expected = [order[int(r * 10)] if r < 0.6 else Fault.NONE for r in (rolls.random() for _ in range(300))]
    assert draws(injector, "order", 300, order_create=True) == expected


def test_no_faults_by_default() -> None:
    assert set(draws(FaultInjector(3), "market", 100)) == {Fault.NONE}


def test_probabilities_over_one_are_refused() -> None:
    with pytest.raises(ValidationError):
        FaultSpec(timeout_probability=0.6, http_5xx_probability=0.6)
    with pytest.raises(ValidationError):
        FaultSpec(accepted_timeout_probability=0.5, accepted_server_error_probability=0.6)
