"""The Bybit V5 facts: where each environment serves its API, the endpoints, and the one retCode table.

Every client (the httpx market-data client, the pybit trading client) and the paper exchange read these
facts from here, so no two of them can disagree about what a retCode means. The table answers one
question per code: which error class does it raise? The class carries the consequence:

- ``ExchangeUnavailable`` (retryable): a server timeout or server error (10000, 10016). On an order
  create the outcome is **unknown**: the order may be live. The caller retries with the same
  ``orderLinkId`` (a duplicate then answers 110072) and, if still unanswered, leaves the order for
  reconciliation; it never records it as rejected.
- ``RateLimited`` (retryable after a pause): too many visits (10006, 10018).
- ``IpBanned``: the IP is banned (10009); all traffic must stop and wait.
- ``ExchangeRejected`` (final): every other code, except where :data:`ALREADY_DONE_RET_CODES` says
  it means success for that endpoint (110043 "leverage not modified" on set-leverage). The auth
  failures (:data:`AUTH_RET_CODES`) lose Bybit's ``retMsg``, because the bad-signature message
  echoes the signed string, API key included.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from lib.core.vocabulary import ENVIRONMENTS
from lib.errors import (
    ConfigError,
    ExchangeError,
    ExchangeRejected,
    ExchangeUnavailable,
    IpBanned,
    RateLimited,
)

# -- environments ----------------------------------------------------------------------------------

#: Where each Bybit environment serves its REST API. ``paper`` has no entry: it is local and its
#: address comes from configuration (see :func:`base_url_for`).
BASE_URLS: Mapping[str, str] = MappingProxyType(
    {
        "mainnet": "https://api.bybit.com",
        "testnet": "https://api-testnet.bybit.com",
        "demo": "https://api-demo.bybit.com",
    }
)
PAPER = "paper"


def checked_base_url(url: str) -> str:
    """``url`` without a trailing slash; it must be an http(s) URL."""
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"exchange base URL must start with http:// or https://, got {url!r}")
    return url.rstrip("/")


def base_url_for(environment: str, *, paper_url: str | None = None) -> str:
    """The REST base URL of a Bybit environment; ``paper`` needs its URL given explicitly."""
    if environment == PAPER:
        if not paper_url:
            raise ConfigError("the paper environment needs an explicit base URL (the local paper exchange)")
        return checked_base_url(paper_url)
    try:
        return BASE_URLS[environment]
    except KeyError:
        raise ConfigError(
            f"unknown exchange environment {environment!r}", details={"allowed": list(ENVIRONMENTS)}
        ) from None


# -- endpoints -------------------------------------------------------------------------------------

SERVER_TIME = "/v5/market/time"
INSTRUMENTS_INFO = "/v5/market/instruments-info"
TICKERS = "/v5/market/tickers"
KLINE = "/v5/market/kline"
ORDER_CREATE = "/v5/order/create"
ORDER_CANCEL = "/v5/order/cancel"
ORDER_REALTIME = "/v5/order/realtime"
POSITION_LIST = "/v5/position/list"
SET_LEVERAGE = "/v5/position/set-leverage"
WALLET_BALANCE = "/v5/account/wallet-balance"
ORDER_HISTORY = "/v5/order/history"
EXECUTION_LIST = "/v5/execution/list"
#: ``/v5/order/history`` and ``/v5/execution/list`` answer at most this window (startTime to endTime).
HISTORY_WINDOW_MS = 7 * 24 * 3600 * 1000

CATEGORIES: tuple[str, ...] = ("spot", "linear", "inverse", "option")
#: Kline is not served for options.
KLINE_CATEGORIES: tuple[str, ...] = ("spot", "linear", "inverse")
KLINE_MAX_LIMIT = 1000
#: instruments-info pages hold at most this many entries (spot ignores paging and returns all).
INSTRUMENTS_PAGE_LIMIT = 1000
#: Bybit's HTTP limit per source IP, over every endpoint: this many requests...
IP_LIMIT_REQUESTS = 600
#: ...within a window of this many seconds (past it: HTTP 403 "access too frequent" and a ban).
IP_LIMIT_WINDOW_S = 5.0
#: Bybit bans for "at least 10 minutes" after a 403.
DEFAULT_BAN_COOLDOWN_S = 600.0
#: When a rate-limited window frees a slot again (epoch ms), sent with every signed answer and a 10006.
RATE_LIMIT_RESET_HEADER = "X-Bapi-Limit-Reset-Timestamp"

# -- retCodes --------------------------------------------------------------------------------------

OK = 0
SERVER_TIMEOUT = 10000
PARAMS_ERROR = 10001
BAD_TIMESTAMP = 10002  # outside the recv window
INVALID_API_KEY = 10003
BAD_SIGNATURE = 10004
PERMISSION_DENIED = 10005
TOO_MANY_VISITS = 10006
AUTH_FAILED = 10007
IP_BANNED = 10009
UNMATCHED_IP = 10010
SERVER_ERROR = 10016
IP_RATE_LIMIT_EXCEEDED = 10018
API_KEY_EXPIRED = 33004
ORDER_NOT_EXISTS = 110001  # "order not exists or too late to cancel": already filled or cancelled
REDUCE_ONLY_NOT_SATISFIED = 110017  # a reduce-only order that would open or grow a position
LEVERAGE_NOT_MODIFIED = 110043
DUPLICATE_ORDER_LINK_ID = 110072

#: The retCodes that do not mean "refused on purpose, final": the one table (see the module docstring).
RET_CODE_ERRORS: Mapping[int, type[ExchangeError]] = MappingProxyType(
    {
        SERVER_TIMEOUT: ExchangeUnavailable,
        SERVER_ERROR: ExchangeUnavailable,
        TOO_MANY_VISITS: RateLimited,
        IP_RATE_LIMIT_EXCEEDED: RateLimited,
        IP_BANNED: IpBanned,
    }
)
#: The key or its signature was refused: final, and Bybit's message is dropped (it may echo the key).
AUTH_RET_CODES = frozenset(
    {INVALID_API_KEY, BAD_SIGNATURE, PERMISSION_DENIED, AUTH_FAILED, UNMATCHED_IP, API_KEY_EXPIRED}
)
#: On an order create these mean the order may be live: retry with the same orderLinkId, never "rejected".
OUTCOME_UNKNOWN_RET_CODES = frozenset(c for c, e in RET_CODE_ERRORS.items() if e is ExchangeUnavailable)
RATE_LIMIT_RET_CODES = frozenset(c for c, e in RET_CODE_ERRORS.items() if e is RateLimited)
IP_BANNED_RET_CODES = frozenset(c for c, e in RET_CODE_ERRORS.items() if e is IpBanned)


#: Per endpoint, the retCodes that mean "what you asked for already holds": success for that call.
ALREADY_DONE_RET_CODES: Mapping[str, frozenset[int]] = MappingProxyType(
    {SET_LEVERAGE: frozenset({LEVERAGE_NOT_MODIFIED})}
)


def already_done(path: str, ret_code: int | None) -> bool:
    """Whether ``ret_code`` on ``path`` means the asked state already holds (110043 on set-leverage)."""
    return ret_code is not None and ret_code in ALREADY_DONE_RET_CODES.get(path, frozenset())


def error_class(ret_code: int) -> type[ExchangeError]:
    """The error a non-zero ``ret_code`` raises, from the one table (``ExchangeRejected`` by default)."""
    return RET_CODE_ERRORS.get(ret_code, ExchangeRejected)


def ret_code_error(
    ret_code: int, ret_msg: str | None, message: str, *, details: dict[str, Any] | None = None
) -> ExchangeError:
    """The error for a non-zero retCode: its class from the table, ``ret_msg`` dropped for auth failures."""
    kept_msg = None if ret_code in AUTH_RET_CODES else ret_msg
    return error_class(ret_code)(message, ret_code=ret_code, ret_msg=kept_msg, details=details)
