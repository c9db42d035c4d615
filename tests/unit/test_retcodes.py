"""One retCode table serves every client: the market-data client and the pybit adapter agree on each code."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import httpx
import pytest
import respx
from pybit.exceptions import InvalidRequestError

from lib.errors import ExchangeError, ExchangeRejected, ExchangeUnavailable, IpBanned, RateLimited
from lib.exchange import bybit
from lib.exchange.market import MarketDataClient, RetryPolicy
from lib.exchange.rate_limit import RateLimiter
from lib.exchange.trading import map_pybit_error

BASE = "https://api.bybit.com"
SIGNED_ECHO = "error sign! origin_string[1700000000000KEY-abcdef5000{...}]"


async def _no_sleep(_seconds: float) -> None:
    return None


@pytest.fixture
async def market() -> AsyncIterator[MarketDataClient]:
    async with httpx.AsyncClient() as http:
        yield MarketDataClient(
            http,
            BASE,
            limiter=RateLimiter(None, sleep=_no_sleep),
            retry=RetryPolicy(max_attempts=1),
            sleep=_no_sleep,
            rng=random.Random(1),
        )


def pybit_error(ret_code: int, ret_msg: str = "message") -> InvalidRequestError:
    return InvalidRequestError(
        request="POST /v5/order/create", message=ret_msg, status_code=ret_code, time="0", resp_headers={}
    )


@pytest.mark.parametrize(
    ("ret_code", "expected"),
    [
        (10000, ExchangeUnavailable),
        (10016, ExchangeUnavailable),
        (10006, RateLimited),
        (10018, RateLimited),
        (10009, IpBanned),
        (10001, ExchangeRejected),
        (10003, ExchangeRejected),
        (110007, ExchangeRejected),
        (110043, ExchangeRejected),
        (110072, ExchangeRejected),
    ],
)
async def test_the_market_client_and_the_trading_adapter_raise_the_class_the_table_names(
    market: MarketDataClient, ret_code: int, expected: type[ExchangeError]
) -> None:
    assert bybit.error_class(ret_code) is expected
    with respx.mock(base_url=BASE) as router:
        router.get("/v5/market/time").mock(
            return_value=httpx.Response(
                200, json={"retCode": ret_code, "retMsg": "m", "result": {}, "time": 1}
            )
        )
        with pytest.raises(ExchangeError) as raised:
            await market.server_time()
    traded = map_pybit_error(pybit_error(ret_code))
    assert type(raised.value) is type(traded) is expected
    assert raised.value.ret_code == traded.ret_code == ret_code


@pytest.mark.parametrize("ret_code", [10000, 10016])
def test_on_order_create_a_server_timeout_or_error_is_outcome_unknown_not_a_rejection(ret_code: int) -> None:
    error = map_pybit_error(pybit_error(ret_code, "Server Timeout"))
    # The executor retries ExchangeUnavailable with the same orderLinkId, as after a timeout or a 5xx.
    assert isinstance(error, ExchangeUnavailable)
    assert not isinstance(error, ExchangeRejected)
    assert error.retryable
    assert (error.ret_code, error.ret_msg) == (ret_code, "Server Timeout")
    assert ret_code in bybit.OUTCOME_UNKNOWN_RET_CODES


@pytest.mark.parametrize("ret_code", sorted(bybit.AUTH_RET_CODES))
async def test_an_auth_failure_never_keeps_bybits_message_which_can_echo_the_key(
    market: MarketDataClient, ret_code: int
) -> None:
    traded = map_pybit_error(pybit_error(ret_code, SIGNED_ECHO))
    with respx.mock(base_url=BASE) as router:
        router.get("/v5/market/time").mock(
            return_value=httpx.Response(
                200, json={"retCode": ret_code, "retMsg": SIGNED_ECHO, "result": {}, "time": 1}
            )
        )
        with pytest.raises(ExchangeRejected) as raised:
            await market.server_time()
    for error in (traded, raised.value):
        assert isinstance(error, ExchangeRejected)
        assert error.ret_code == ret_code
        assert error.ret_msg is None
        assert "KEY-abcdef" not in f"{error.message} {error.details}"


def test_the_table_and_its_derived_sets_agree() -> None:
    assert sorted(bybit.OUTCOME_UNKNOWN_RET_CODES) == [10000, 10016]
    assert sorted(bybit.RATE_LIMIT_RET_CODES) == [10006, 10018]
    assert sorted(bybit.IP_BANNED_RET_CODES) == [10009]
    assert not bybit.AUTH_RET_CODES & set(bybit.RET_CODE_ERRORS)
    assert bybit.DUPLICATE_ORDER_LINK_ID not in bybit.RET_CODE_ERRORS  # a refusal the executor reads itself
