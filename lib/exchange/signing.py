"""Bybit V5 request signing: one function used by the client and verified by the paper exchange.

Signature = HMAC-SHA256 hex of ``timestamp + api_key + recv_window + payload``, where payload is the
query string for GET and the raw JSON body for POST. Headers: ``X-BAPI-API-KEY``, ``X-BAPI-SIGN``,
``X-BAPI-TIMESTAMP``, ``X-BAPI-RECV-WINDOW``.
"""

from __future__ import annotations

import hashlib
import hmac

DEFAULT_RECV_WINDOW_MS = 5000


def sign(*, api_secret: str, api_key: str, timestamp_ms: int, recv_window_ms: int, payload: str) -> str:
    """The hex HMAC-SHA256 signature Bybit expects for one request."""
    message = f"{timestamp_ms}{api_key}{recv_window_ms}{payload}"
    return hmac.new(api_secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def signed_headers(
    *,
    api_key: str,
    api_secret: str,
    timestamp_ms: int,
    payload: str,
    recv_window_ms: int = DEFAULT_RECV_WINDOW_MS,
) -> dict[str, str]:
    """The four ``X-BAPI-*`` headers of a signed request."""
    signature = sign(
        api_secret=api_secret,
        api_key=api_key,
        timestamp_ms=timestamp_ms,
        recv_window_ms=recv_window_ms,
        payload=payload,
    )
    return {
        "X-BAPI-API-KEY": api_key,
        "X-BAPI-SIGN": signature,
        "X-BAPI-TIMESTAMP": str(timestamp_ms),
        "X-BAPI-RECV-WINDOW": str(recv_window_ms),
    }


def verify(
    *, api_secret: str, api_key: str, timestamp_ms: int, recv_window_ms: int, payload: str, signature: str
) -> bool:
    """Whether ``signature`` is right for this request, compared in constant time."""
    expected = sign(
        api_secret=api_secret,
        api_key=api_key,
        timestamp_ms=timestamp_ms,
        recv_window_ms=recv_window_ms,
        payload=payload,
    )
    return hmac.compare_digest(expected, signature.lower())
