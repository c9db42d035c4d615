"""GoTrue's errors: an HTTP status, a stable ``error_code`` and a message, as Supabase Auth answers them.

They belong to the one hierarchy (:class:`lib.errors.RequestError`); the auth routes
(:mod:`lib.http.auth_routes`) are the one place that turns them into GoTrue's body
``{"code": <status>, "error_code": ..., "msg": ...}``. Codes and messages are GoTrue's own
(``internal/api/apierrors/errorcode.go`` in supabase/auth), so the official clients recognise them.
"""

from __future__ import annotations

from typing import Any

from lib.errors import RequestError


class AuthApiError(RequestError):
    """An answer of the auth server that is not a success."""

    code = "auth_error"

    def __init__(
        self, status: int, error_code: str, msg: str, *, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(msg, details={"error_code": error_code})
        self.status = status
        self.error_code = error_code
        self.msg = msg
        # Fields GoTrue adds beside the three (weak_password's reasons).
        self.extra: dict[str, Any] = extra or {}

    def body(self) -> dict[str, Any]:
        """GoTrue's error body."""
        return {"code": self.status, "error_code": self.error_code, "msg": self.msg, **self.extra}


def invalid_credentials() -> AuthApiError:
    """The one answer for a wrong email and a wrong password alike."""
    return AuthApiError(400, "invalid_credentials", "Invalid login credentials")


def validation_failed(msg: str) -> AuthApiError:
    """A request GoTrue refuses before looking anything up."""
    return AuthApiError(400, "validation_failed", msg)


def rate_limited() -> AuthApiError:
    """Too many sign-ins or sign-ups from one address or for one email."""
    return AuthApiError(429, "over_request_rate_limit", "Request rate limit reached")


def weak_password(min_length: int) -> AuthApiError:
    """A password shorter than the minimum (GoTrue's wording and its ``weak_password.reasons``)."""
    return AuthApiError(
        422,
        "weak_password",
        f"Password should be at least {min_length} characters.",
        extra={"weak_password": {"reasons": ["length"]}},
    )


def no_authorization() -> AuthApiError:
    """No bearer token where one is needed."""
    return AuthApiError(401, "no_authorization", "This endpoint requires a valid Bearer token")


def bad_jwt() -> AuthApiError:
    """A bearer token that does not verify."""
    return AuthApiError(403, "bad_jwt", "invalid JWT: unable to parse or verify signature, token is invalid")


def session_not_found() -> AuthApiError:
    """The token's session was signed out (or never existed)."""
    return AuthApiError(403, "session_not_found", "Session from session_id claim in JWT does not exist")
