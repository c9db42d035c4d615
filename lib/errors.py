"""The one error hierarchy of AITRADEX1.

Every error the application raises on purpose is an :class:`AitradexError`. Each carries:

- ``code``: a stable, machine-readable string (``"invalid_request"``, ``"not_found"``...);
- ``message``: one human sentence, never containing a secret;
- ``details``: JSON-safe extra facts (field errors, suggestions), never containing a secret;
- ``http_status``: the status the HTTP adapter answers with (the only place that maps errors to HTTP
  reads this attribute; nothing else does);
- ``retryable``: whether trying the same thing again later can succeed.

The tree::

    AitradexError
    ├── RequestError (4xx: the caller sent something wrong; never retryable)
    │   ├── InvalidRequest        400/422  malformed JSON, wrong types, out-of-range values
    │   ├── Unauthorized          401      missing, expired or badly signed token
    │   ├── Forbidden             403      valid token, wrong role
    │   ├── InvalidExchangeCredentials 400 the exchange refused the API key/secret the caller sent
    │   ├── NotFound              404      unknown function, symbol, record
    │   ├── MethodNotAllowed      405      GET on a function that takes its input only as a body
    │   ├── Conflict              409      a unique rule would be broken
    │   └── PayloadTooLarge       413      body over the adapter's limit
    ├── ConfigError               fatal at startup: a missing secret, a malformed setting
    ├── MigrationError            fatal: an applied migration was edited, or one failed
    ├── DecryptionError           a stored ciphertext cannot be decrypted (data or key configuration)
    ├── DatabaseError             the database refused or is unreachable (retryable when unreachable)
    └── ExchangeError             Bybit (or the paper exchange) answered with an error
        ├── ExchangeUnavailable   retryable: timeout, 5xx, connection refused
        ├── RateLimited           retryable: retCode 10006 or HTTP 429
        ├── IpBanned              HTTP 403 from Bybit: stop all traffic and wait (not retried at once)
        └── ExchangeRejected      fatal for this request: a retCode the exchange gave on purpose

Anything that is not an ``AitradexError`` reaching the adapter is a bug: 500 with the request id only.
"""

from __future__ import annotations

from typing import Any, ClassVar


class AitradexError(Exception):
    """Base of every deliberate error in the application."""

    code: ClassVar[str] = "error"
    http_status: ClassVar[int] = 500
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}

    def to_dict(self) -> dict[str, Any]:
        """The error body every function answers with: ``{"error": {code, message, details}}``."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class RequestError(AitradexError):
    """The caller sent something wrong. Never retryable as is."""

    code = "bad_request"
    http_status = 400


class InvalidRequest(RequestError):
    """Malformed JSON, a wrong type, a missing field, an out-of-range value, an unknown action."""

    code = "invalid_request"
    http_status = 422


class MalformedBody(InvalidRequest):
    """The body is not valid JSON (or not a JSON object)."""

    code = "malformed_json"
    http_status = 400


class Unauthorized(RequestError):
    """Missing, expired or badly signed token."""

    code = "unauthorized"
    http_status = 401


class InvalidExchangeCredentials(RequestError):
    """The exchange refused the API key or secret the caller sent (bad key, bad signature, expired...).

    ``details`` carries the exchange's ``ret_code`` and a reason, never the key, the secret, or the
    exchange's own message (Bybit's bad-signature message repeats the signed string, key included).
    """

    code = "invalid_exchange_credentials"
    http_status = 400


class Forbidden(RequestError):
    """A valid token whose role may not do this."""

    code = "forbidden"
    http_status = 403


class NotFound(RequestError):
    """An unknown function, symbol or record."""

    code = "not_found"
    http_status = 404


class MethodNotAllowed(RequestError):
    """The HTTP method is not accepted here (GET only for functions that opt in: no secrets in URLs)."""

    code = "method_not_allowed"
    http_status = 405


class Conflict(RequestError):
    """The request would break a uniqueness or state rule."""

    code = "conflict"
    http_status = 409


class PayloadTooLarge(RequestError):
    """The body is larger than the adapter accepts."""

    code = "payload_too_large"
    http_status = 413


class ConfigError(AitradexError):
    """The configuration is missing or malformed. Fatal at startup."""

    code = "config_error"


class MigrationError(AitradexError):
    """A migration failed, or an applied one was edited. Fatal."""

    code = "migration_error"


class DecryptionError(AitradexError):
    """A stored ciphertext could not be decrypted: malformed, unknown key version, tampered, wrong user/field.

    A 500: the stored data or the key configuration is wrong, not the caller's request. The message
    and details never contain the token, the plaintext or any key: only a reason code (``malformed``,
    ``unknown_key_version``, ``authentication_failed``, ``bad_associated_data``), the field name and,
    when known, the key version.
    """

    code = "decryption_failed"


class DatabaseError(AitradexError):
    """The database refused the operation."""

    code = "database_error"
    http_status = 503


class DatabaseUnavailable(DatabaseError):
    """The database cannot be reached right now."""

    code = "database_unavailable"
    retryable = True


class ExchangeError(AitradexError):
    """The exchange answered with an error. ``ret_code``/``ret_msg`` are Bybit's own."""

    code = "exchange_error"
    http_status = 502

    def __init__(
        self,
        message: str,
        *,
        ret_code: int | None = None,
        ret_msg: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        merged = dict(details or {})
        if ret_code is not None:
            merged.setdefault("ret_code", ret_code)
        if ret_msg is not None:
            merged.setdefault("ret_msg", ret_msg)
        super().__init__(message, details=merged)
        self.ret_code = ret_code
        self.ret_msg = ret_msg


class ExchangeUnavailable(ExchangeError):
    """Timeout, 5xx or connection failure: try again with backoff."""

    code = "exchange_unavailable"
    http_status = 503
    retryable = True


class RateLimited(ExchangeError):
    """retCode 10006 or HTTP 429: slow down and try again."""

    code = "rate_limited"
    http_status = 503
    retryable = True


class IpBanned(ExchangeError):
    """HTTP 403 from Bybit: the IP is banned. Stop all traffic and wait; do not retry at once."""

    code = "ip_banned"
    http_status = 503


class ExchangeRejected(ExchangeError):
    """The exchange refused the request on purpose (bad params, filters, auth). Not retryable."""

    code = "exchange_rejected"
