"""The `/_paper` controls client against the paper exchange's ASGI app (no sockets): typed answers, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from lib.core.timeframes import FIVE_MINUTES_MS
from lib.errors import ExchangeError, ExchangeUnavailable
from lib.paper_exchange import AsyncPaperControls, PaperExchangeConfig, create_app
from lib.paper_exchange.faults import FaultPlan, FaultSpec

BASE = "http://paper"


def http_from(host: str) -> httpx.AsyncClient:
    app = create_app(PaperExchangeConfig(state_path=None))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(host, 50000)), base_url=BASE)


@pytest.fixture
async def paper() -> AsyncIterator[AsyncPaperControls]:
    async with http_from("127.0.0.1") as http:
        yield AsyncPaperControls(BASE, http=http)


async def test_the_clock_is_read_advanced_and_set_as_typed_views(paper: AsyncPaperControls) -> None:
    start = await paper.clock()
    assert (start.candle_ms, start.speed, start.at_end) == (FIVE_MINUTES_MS, 0.0, False)
    assert start.start_ms <= start.time_ms < start.end_ms
    moved = await paper.advance(3)
    assert moved.time_ms == start.time_ms + 3 * FIVE_MINUTES_MS
    jumped = await paper.set_clock(time_ms=moved.time_ms + 10 * FIVE_MINUTES_MS)
    assert jumped.time_ms == moved.time_ms + 10 * FIVE_MINUTES_MS
    assert (await paper.clock()) == jumped


async def test_faults_are_set_from_a_plan_or_a_dict_and_cleared(paper: AsyncPaperControls) -> None:
    plan = FaultPlan(seed=9, order=FaultSpec(accepted_server_timeout_probability=0.25, hang_ms=10))
    answered = await paper.set_faults(plan)
    assert answered == await paper.faults()
    assert answered["seed"] == 9
    assert answered["order"]["accepted_server_timeout_probability"] == 0.25
    assert answered["market"] == FaultSpec().model_dump()
    assert (await paper.set_faults({"market": {"latency_ms": 5}}))["market"]["latency_ms"] == 5
    cleared = await paper.clear_faults(seed=1)
    assert cleared == {"seed": 1, "market": FaultSpec().model_dump(), "order": FaultSpec().model_dump()}


async def test_an_account_comes_back_with_its_keys_and_a_secret_kept_out_of_repr(
    paper: AsyncPaperControls,
) -> None:
    account = await paper.create_account("2500")
    assert (len(account.api_key), len(account.api_secret)) == (18, 36)
    assert account.api_secret not in repr(account)


async def test_a_refusal_is_an_exchange_error_with_the_http_status(paper: AsyncPaperControls) -> None:
    with pytest.raises(ExchangeError) as refused:
        await paper.advance(-1)
    assert refused.value.details["http_status"] == 422
    assert not isinstance(refused.value, ExchangeUnavailable)
    with pytest.raises(ExchangeError, match="refused to create an account"):
        await paper.create_account("-5")


async def test_a_remote_client_is_refused_and_an_absent_exchange_is_unavailable() -> None:
    async with http_from("192.0.2.10") as remote:
        with pytest.raises(ExchangeError) as refused:
            await AsyncPaperControls(BASE, http=remote).clock()
    assert refused.value.details["http_status"] == 403
    with pytest.raises(ExchangeUnavailable) as unreachable:
        await AsyncPaperControls("http://127.0.0.1:9", timeout_s=1.0).clock()  # discard port: nothing listens
    assert unreachable.value.details["reason"] == "ConnectError"
