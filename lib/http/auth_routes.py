"""``/auth/v1``: the local GoTrue-compatible auth server's HTTP surface (not served when hosted).

Routes, as Supabase Auth has them: ``POST /signup``, ``POST /token?grant_type=password|refresh_token``,
``GET``/``PUT /user``, ``POST /logout?scope=...``, ``GET /settings``, ``GET /health`` and
``GET /.well-known/jwks.json``. The work is :class:`lib.services.auth.gotrue.AuthServer`'s; this module
parses, calls and maps.

- Like Supabase's gateway (Kong), every route but the health and JWKS ones needs an ``apikey`` header
  holding the anon or service-role key: 401 otherwise, in GoTrue's body with the codes ``no_api_key``
  and ``bad_api_key`` (the gateway's own body is ``{"message"}``; one shape here is simpler for clients).
- This is the one place auth errors become HTTP: GoTrue's body ``{"code", "error_code", "msg"}`` for
  every failure, including bodies refused by :mod:`lib.http.body` and unexpected errors (500 with the
  request id in the log line only).
- CORS as the functions have it, with ``PUT`` for ``/user``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from lib.app.context import Services
from lib.config import IPNetwork
from lib.db.owner_pool import OwnerPool
from lib.db.target import database_target
from lib.errors import AitradexError, MalformedBody, Unauthorized
from lib.http import client_address
from lib.http.body import read_body
from lib.log import log_event, request_id_var
from lib.services.auth.errors import AuthApiError
from lib.services.auth.gotrue import AuthServer, ClientInfo
from lib.services.auth.signing import SigningKey
from lib.services.auth.verify import TokenVerifier

logger = logging.getLogger("aitradex.auth")
CORS_HEADERS = {
    "access-control-allow-origin": "*",
    "access-control-allow-headers": (
        "authorization, x-client-info, apikey, content-type, x-request-id, x-supabase-api-version"
    ),
    "access-control-allow-methods": "GET, POST, PUT, OPTIONS",
    "access-control-expose-headers": "x-request-id",
}
_BODY_SHAPE = "the body must be a JSON object"
Endpoint = Callable[[Request], Awaitable[Any]]


def auth_error_response(exc: Exception) -> JSONResponse:
    """GoTrue's error body for ``exc`` (the one mapping of auth errors to HTTP)."""
    if isinstance(exc, AuthApiError):
        return JSONResponse(exc.body(), status_code=exc.status)
    if isinstance(exc, AitradexError):
        status = exc.http_status
        if isinstance(exc, MalformedBody):
            code = "bad_json"
        else:
            code = "request_timeout" if exc.retryable else "validation_failed"
        return JSONResponse({"code": status, "error_code": code, "msg": exc.message}, status_code=status)
    return JSONResponse(
        {
            "code": 500,
            "error_code": "unexpected_failure",
            "msg": "Unexpected failure, please check server logs for more information",
        },
        status_code=500,
    )


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class AuthRoutes:
    """The routes and the owner pool behind them, opened with the server (:meth:`hook`)."""

    def __init__(
        self,
        key: SigningKey,
        verifier: TokenVerifier,
        *,
        trusted_proxies: Sequence[IPNetwork] = (),
    ) -> None:
        self._key = key
        self._verifier = verifier
        self._trusted = tuple(trusted_proxies)
        self.server: AuthServer | None = None

    @asynccontextmanager
    async def hook(self, services: Services) -> AsyncIterator[None]:
        """Open the owner pool for the server's lifetime."""
        pool = OwnerPool(database_target(services.settings).admin_url)
        await pool.open()
        self.server = AuthServer(pool, self._key, services.settings.auth, self._verifier)
        try:
            yield
        finally:
            self.server = None
            await pool.close()

    def routes(self) -> list[BaseRoute]:
        """``/auth/v1/...``."""

        def route(path: str, endpoint: Endpoint, methods: list[str], *, apikey: bool = True) -> Route:
            async def handle(request: Request) -> Response:
                return await self._handle(request, endpoint, apikey=apikey)

            return Route(path, handle, methods=[*methods, "OPTIONS"])

        return [
            Mount(
                "/auth/v1",
                routes=[
                    route("/signup", self._signup, ["POST"]),
                    route("/token", self._token, ["POST"]),
                    route("/user", self._get_user, ["GET"]),
                    route("/user", self._put_user, ["PUT"]),
                    route("/logout", self._logout, ["POST"]),
                    route("/settings", self._settings, ["GET"]),
                    route("/health", self._health, ["GET"], apikey=False),
                    route("/.well-known/jwks.json", self._jwks, ["GET"], apikey=False),
                ],
            )
        ]

    def _client(self, request: Request) -> ClientInfo:
        ip = client_address.client_ip(
            request.client.host if request.client else None,
            request.headers.getlist("x-forwarded-for"),
            self._trusted,
        )
        return ClientInfo(ip=ip, user_agent=client_address.user_agent(request.headers.get("user-agent", "")))

    def _check_apikey(self, request: Request) -> None:
        key = request.headers.get("apikey", "").strip()
        if not key:
            raise AuthApiError(401, "no_api_key", "No API key found in request")
        try:
            role = self._verifier.verify_hs256(key).get("role")
        except Unauthorized:
            role = None
        if role not in ("anon", "service_role"):
            raise AuthApiError(401, "bad_api_key", "Invalid API key")

    def _auth(self) -> AuthServer:
        assert self.server is not None, "the server has not started"
        return self.server

    async def _handle(self, request: Request, endpoint: Endpoint, *, apikey: bool) -> Response:
        request_id = client_address.request_id(request.headers.get("x-request-id", ""))
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        try:
            if request.method == "OPTIONS":
                response: Response = Response(status_code=204)
            else:
                if apikey:
                    self._check_apikey(request)
                result = await endpoint(request)
                response = Response(status_code=204) if result is None else JSONResponse(result)
        except ClientDisconnect:
            response = Response(status_code=499)
        except AitradexError as exc:
            response = auth_error_response(exc)
        except Exception as exc:
            log_event(
                logger, "unhandled_error", level=logging.ERROR, exc_info=exc, error_type=type(exc).__name__
            )
            response = auth_error_response(exc)
        response.headers.update(CORS_HEADERS)
        response.headers["x-request-id"] = request_id
        log_event(
            logger,
            "auth_call",
            path=request.url.path,
            method=request.method,
            status=response.status_code,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        request_id_var.reset(token)
        return response

    @staticmethod
    def _issuer(request: Request) -> str:
        return str(request.base_url).rstrip("/") + "/auth/v1"

    async def _signup(self, request: Request) -> Any:
        body = await read_body(request, _BODY_SHAPE)
        return await self._auth().signup(body, self._client(request), self._issuer(request))

    async def _token(self, request: Request) -> Any:
        grant = request.query_params.get("grant_type", "")
        body = await read_body(request, _BODY_SHAPE)
        if grant == "password":
            return await self._auth().password_grant(body, self._client(request), self._issuer(request))
        if grant == "refresh_token":
            return await self._auth().refresh_grant(body, self._issuer(request))
        raise AuthApiError(400, "validation_failed", "unsupported_grant_type")

    async def _get_user(self, request: Request) -> Any:
        return await self._auth().get_user(_bearer(request))

    async def _put_user(self, request: Request) -> Any:
        body = await read_body(request, _BODY_SHAPE)
        return await self._auth().update_user(_bearer(request), body)

    async def _logout(self, request: Request) -> Any:
        await self._auth().logout(_bearer(request), request.query_params.get("scope", "global"))
        return None

    async def _settings(self, _request: Request) -> Any:
        return self._auth().settings()

    async def _health(self, _request: Request) -> Any:
        return {
            "version": "aitradex-local",
            "name": "GoTrue",
            "description": "GoTrue is a user registration and authentication API",
        }

    async def _jwks(self, _request: Request) -> Any:
        return self._key.jwks()
