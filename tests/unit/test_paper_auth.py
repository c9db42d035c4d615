"""Signed requests are checked as Bybit checks them: key, then recv window, then signature."""

import pytest

from lib.errors import ExchangeRejected
from lib.exchange.signing import signed_headers
from lib.paper_exchange.auth import authenticate

KEY, SECRET = "paperkey123", "papersecret456"
NOW = 1_700_000_000_000


def secret_for(api_key: str) -> str | None:
    return SECRET if api_key == KEY else None


def headers(
    timestamp_ms: int, *, secret: str = SECRET, key: str = KEY, payload: str = "a=1"
) -> dict[str, str]:
    return signed_headers(api_key=key, api_secret=secret, timestamp_ms=timestamp_ms, payload=payload)


def ret_code(call_headers: dict[str, str], payload: str = "a=1") -> int | None:
    with pytest.raises(ExchangeRejected) as caught:
        authenticate(call_headers, payload, secret_for, NOW)
    return caught.value.ret_code


def test_a_well_signed_fresh_request_passes() -> None:
    assert authenticate(headers(NOW - 100), "a=1", secret_for, NOW) == KEY


def test_an_unknown_key_is_10003() -> None:
    assert ret_code(headers(NOW, key="someone-else")) == 10003


def test_a_wrong_signature_is_10004() -> None:
    assert ret_code(headers(NOW, secret="not-the-secret")) == 10004


def test_a_tampered_payload_is_10004() -> None:
    assert ret_code(headers(NOW, payload="a=1"), payload="a=2") == 10004


@pytest.mark.parametrize("offset_ms", [-5001, 1000, 60_000])
def test_a_timestamp_outside_the_window_is_10002(offset_ms: int) -> None:
    assert ret_code(headers(NOW + offset_ms)) == 10002


@pytest.mark.parametrize("offset_ms", [-5000, 999])
def test_the_window_edges_are_inside(offset_ms: int) -> None:
    assert authenticate(headers(NOW + offset_ms), "a=1", secret_for, NOW) == KEY


def test_the_rejection_never_shows_the_secret() -> None:
    with pytest.raises(ExchangeRejected) as caught:
        authenticate(headers(NOW, secret="x"), "a=1", secret_for, NOW)
    assert SECRET not in str(caught.value)
    assert SECRET not in str(caught.value.details)
