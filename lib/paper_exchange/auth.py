"""Checking a signed request exactly as Bybit V5 does.

Order of checks: the API key must exist (10003), the timestamp must lie in
``[server_time - recv_window, server_time + 1000)`` of the *wall* clock (10002), and the signature must
be the HMAC-SHA256 of ``timestamp + api_key + recv_window + payload`` (10004), where the payload is the
raw query string for GET and the raw body for POST, byte for byte as sent. The messages never contain a
secret.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from lib.errors import ExchangeRejected
from lib.exchange.bybit import BAD_SIGNATURE, BAD_TIMESTAMP, INVALID_API_KEY
from lib.exchange.signing import DEFAULT_RECV_WINDOW_MS, verify
from lib.paper_exchange.numbers import parse_integer

FUTURE_TOLERANCE_MS = 1000


def _reject(code: int, message: str) -> ExchangeRejected:
    return ExchangeRejected(message, ret_code=code, ret_msg=message)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name) or headers.get(name.lower())
    return value.strip() if value else None


def authenticate(
    headers: Mapping[str, str], payload: str, secret_for: Callable[[str], str | None], wall_ms: int
) -> str:
    """The API key of a correctly signed, fresh request; otherwise Bybit's rejection."""
    api_key = _header(headers, "X-BAPI-API-KEY")
    secret = secret_for(api_key) if api_key else None
    if api_key is None or secret is None:
        raise _reject(INVALID_API_KEY, "API key is invalid.")
    timestamp_text = _header(headers, "X-BAPI-TIMESTAMP")
    window_text = _header(headers, "X-BAPI-RECV-WINDOW") or str(DEFAULT_RECV_WINDOW_MS)
    # Plain digits only: int() would also take "1_700_000_000_000" and non-ASCII digits.
    timestamp = parse_integer(timestamp_text or "")
    recv_window = parse_integer(window_text)
    if timestamp is None or recv_window is None:
        raise _reject(
            BAD_TIMESTAMP, "invalid request, please check your server timestamp or recv_window param"
        )
    if not wall_ms - recv_window <= timestamp < wall_ms + FUTURE_TOLERANCE_MS:
        raise _reject(
            BAD_TIMESTAMP,
            "invalid request, please check your server timestamp or recv_window param. "
            f"req_timestamp[{timestamp}],server_timestamp[{wall_ms}],recv_window[{recv_window}]",
        )
    signature = _header(headers, "X-BAPI-SIGN") or ""
    if not verify(
        api_secret=secret,
        api_key=api_key,
        timestamp_ms=timestamp,
        recv_window_ms=recv_window,
        payload=payload,
        signature=signature,
    ):
        raise _reject(BAD_SIGNATURE, "Error sign, please check your signature generation algorithm.")
    return api_key
