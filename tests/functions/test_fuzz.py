"""Fuzz every function from its own openapi.json: whatever a caller sends, no 5xx comes back.

schemathesis turns each function's schema into a hypothesis strategy of requests: valid bodies and
deliberately invalid ones. They go over real HTTP, as a signed-in user and as the service role.
Examples are bounded (``MAX_EXAMPLES`` per operation, mode and role), which keeps the run to seconds.
The property is the one DESIGN.md section 4 states: never a 5xx for anything a caller sent.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from lib.config import Settings
from lib.db.session import Caller, Database
from lib.services.auth.users import create_local_user
from lib.services.execution.halt import set_trading_halted

MAX_EXAMPLES = 30


def _operations(functions_url: str) -> list[Any]:
    document = httpx.get(f"{functions_url}/functions/v1/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    return [result.ok() for result in schema.get_all_operations()]


def _fuzz(functions_url: str, token: str) -> int:
    """Run every operation in both modes; returns how many requests were sent."""
    # Compile the indicator kernels once, outside hypothesis: a cold numba cache makes the first scan
    # slow, and a slow first example reads as a flaky one.
    from lib.indicators import features

    warm = np.linspace(1.0, 2.0, 300)[None, :]
    features(warm, warm, warm, warm, warm)
    sent = 0
    operations = _operations(functions_url)
    assert len(operations) >= 4, "openapi.json lists too few functions to be the real document"
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case: Any) -> None:
                nonlocal sent
                # Generous: the first scan in a fresh checkout compiles the numba kernels (~15 s).
                response = case.call(
                    base_url=functions_url, headers={"Authorization": f"Bearer {token}"}, timeout=120
                )
                sent += 1
                assert response.status_code < 500, (
                    f"{case.method} {case.path} {case.body!r} -> {response.status_code} {response.text[:300]}"
                )

            check()
    return sent


@pytest.fixture(scope="session")
def fuzz_user_token(owner_conn: Any, settings: Settings) -> str:
    return create_local_user(
        owner_conn, f"fuzz-{uuid.uuid4().hex[:10]}@test.local", settings.jwt_secret.reveal()
    ).token


def test_no_function_answers_5xx_to_whatever_a_signed_in_user_sends(
    functions_url: str, fuzz_user_token: str
) -> None:
    assert _fuzz(functions_url, fuzz_user_token) > 0


@pytest.fixture
async def trading_resumed(db: Database) -> AsyncIterator[None]:
    """The service role's fuzz may halt trading (``set_trading_halted`` is one of its operations): the
    switch is global, so it is turned off again for the tests that follow."""
    yield
    await set_trading_halted(
        db, Caller.service(), halted=False, reason=None, by="test_fuzz", now=datetime.now(UTC)
    )


def test_no_function_answers_5xx_to_whatever_the_service_role_sends(
    functions_url: str, service_key: str, trading_resumed: None
) -> None:
    assert _fuzz(functions_url, service_key) > 0
