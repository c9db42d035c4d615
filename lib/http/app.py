"""The functions server: a thin ASGI adapter with Supabase Edge Functions' conventions.

- ``POST /functions/v1/<name>`` calls the handler declared in ``functions/<name>``; read-only
  functions that opt in (``http_get``) also take GET with query parameters. ``OPTIONS`` answers
  CORS preflights without auth.
- ``verify_jwt`` per function comes from ``supabase/config.toml``. With it, a missing or bad token gets
  401 ``{"msg":"Invalid JWT"}``, as Supabase answers. Without it, a token is optional but must be
  valid when given. The token's role becomes the database role (``lib.db.session.Caller``).
  Tokens verify through :class:`lib.services.auth.verify.TokenVerifier`: HS256 with the JWT secret,
  ES256/RS256 through the JWK Set :mod:`lib.http.server` wires (the local auth server's, or a hosted
  project's). Verification is stateless: a signed-out session's access token passes until it expires.
  A token's claims are reused for a few seconds once verified (:mod:`lib.http.token_cache`).
- Every response carries ``x-request-id``, and every log line carries the same id.
- This module is the one place that maps errors to HTTP: ``AitradexError.http_status`` and
  ``to_dict()`` for deliberate errors, pydantic validation errors to 422 (in words a person reads,
  from :mod:`lib.http.errors`), routing errors (an unknown path, another method) to the same envelope,
  a client that leaves mid-request to 499 (logged at INFO: not our error), and anything else to 500
  with only the request id in the body.
- Bodies are read within bounds (:mod:`lib.http.body`); a submitted value is never repeated, in an
  answer or in a log line, unless it is one of the function's own action names.
- The audit trail's client address comes from :mod:`lib.http.client_address`: ``X-Forwarded-For``
  only from trusted proxies.
- ``GET /functions/v1/openapi.json`` documents every function; ``GET /health`` tells liveness.
"""

from __future__ import annotations

import logging
import time
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from lib.app.context import Context, Services
from lib.config import DEFAULT_HTTP_READ_TIMEOUT_S, REPO_ROOT, IPNetwork
from lib.db.session import ROLES, Caller
from lib.errors import (
    AitradexError,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    RequestError,
    Unauthorized,
)
from lib.http import client_address
from lib.http.body import MAX_BODY_BYTES, read_body
from lib.http.errors import body_shape, invalid_request
from lib.http.openapi import build_openapi
from lib.http.spec import FunctionSpec
from lib.http.token_cache import VerifiedTokens
from lib.log import log_event, request_id_var
from lib.services.auth.verify import TokenVerifier

__all__ = ["MAX_BODY_BYTES", "FunctionsApp", "error_response", "load_verify_jwt"]

CONFIG_TOML = REPO_ROOT / "supabase" / "config.toml"
# Nginx's code for "the client closed the request": nobody receives it, the log line says what happened.
CLIENT_CLOSED = 499
CORS_HEADERS = {
    "access-control-allow-origin": "*",
    "access-control-allow-headers": "authorization, x-client-info, apikey, content-type, x-request-id",
    "access-control-allow-methods": "GET, POST, OPTIONS",
    "access-control-expose-headers": "x-request-id",
}
logger = logging.getLogger("aitradex.http")


def load_verify_jwt(path: Path = CONFIG_TOML) -> dict[str, bool]:
    """``verify_jwt`` per function from the Supabase CLI config (default True, as Supabase's)."""
    config = tomllib.loads(path.read_text(encoding="utf-8"))
    return {
        name: bool(section.get("verify_jwt", True)) for name, section in config.get("functions", {}).items()
    }


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def error_response(exc: AitradexError) -> JSONResponse:
    """The answer for a deliberate error (Supabase's own body for a bad token)."""
    if isinstance(exc, Unauthorized):
        return JSONResponse({"msg": "Invalid JWT"}, status_code=401)
    return JSONResponse(exc.to_dict(), status_code=exc.http_status)


class FunctionsApp:
    """Holds the registry and the services; builds the Starlette application."""

    def __init__(
        self,
        registry: Mapping[str, FunctionSpec],
        services: Callable[[], Awaitable[Services]],
        close_services: Callable[[Services], Awaitable[None]],
        *,
        jwt_secret: str,
        verify_jwt: Mapping[str, bool] | None = None,
        hooks: Sequence[Callable[[Services], AbstractAsyncContextManager[None]]] = (),
        extra_routes: Sequence[BaseRoute] = (),
        trusted_proxies: Sequence[IPNetwork] = (),
        read_timeout_s: float = DEFAULT_HTTP_READ_TIMEOUT_S,
        verifier: TokenVerifier | None = None,
    ) -> None:
        self.registry = dict(registry)
        self.trusted_proxies = tuple(trusted_proxies)
        # Read by lib.http.server.uvicorn_config: the connection-level deadline of lib.http.protocol.
        self.read_timeout_s = read_timeout_s
        self._open_services = services
        self._close_services = close_services
        self._jwt_secret = jwt_secret
        # HS256 with the JWT secret, plus ES256/RS256 through a JWK Set when one is wired (lib.http.server).
        self.verifier = verifier or TokenVerifier(jwt_secret, None)
        # A token seen again within seconds is not verified again (lib/http/token_cache.py says why
        # that answers the same).
        self._tokens = VerifiedTokens(self.verifier.verify)
        self.verify_jwt = dict(load_verify_jwt() if verify_jwt is None else verify_jwt)
        self.services: Services | None = None
        self._openapi: dict[str, Any] | None = None
        # Work that lives as long as the server, with its services (the scheduler), and its routes.
        self._hooks = list(hooks)
        self._extra_routes = list(extra_routes)

    def add_hook(self, hook: Callable[[Services], AbstractAsyncContextManager[None]]) -> None:
        """Run ``hook(services)`` as a context for the server's lifetime (before :meth:`build`)."""
        self._hooks.append(hook)

    def add_route(self, route: BaseRoute) -> None:
        """Serve ``route`` beside the functions (before :meth:`build`)."""
        self._extra_routes.append(route)

    @asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        self.services = await self._open_services()
        log_event(logger, "functions_server_started", functions=sorted(self.registry))
        try:
            async with AsyncExitStack() as stack:
                for hook in self._hooks:
                    await stack.enter_async_context(hook(self.services))
                yield
        finally:
            await self._close_services(self.services)
            self.services = None

    def require_service_role(self, request: Request) -> None:
        """For operator routes beside the functions: only a valid service-role token passes."""
        token = _bearer(request)
        if token is None:
            raise Unauthorized("Invalid JWT", details={"reason": "missing"})
        # Service-role keys are HS256 (like the Supabase CLI's); never a user's asymmetric token.
        if self.verifier.verify_hs256(token).get("role") != "service_role":
            raise Forbidden("this route needs the service role")

    async def _caller(self, request: Request, name: str) -> Caller:
        token = _bearer(request)
        if token is None:
            if self.verify_jwt.get(name, True):
                raise Unauthorized("Invalid JWT", details={"reason": "missing"})
            return Caller.anon()
        claims = await self._tokens.claims(token)
        if claims["role"] not in ROLES:
            raise Forbidden("this token's role may not use the API")
        ip = client_address.client_ip(
            request.client.host if request.client else None,
            request.headers.getlist("x-forwarded-for"),
            self.trusted_proxies,
        )
        # The audit trigger reads these (request.headers): the address we vouch for, not the client's claim.
        headers = {
            "x-forwarded-for": ip or "",
            "user-agent": client_address.user_agent(request.headers.get("user-agent", "")),
        }
        return Caller.from_claims(claims, headers)

    async def invoke(self, request: Request) -> Response:
        name = request.path_params["name"]
        request_id = client_address.request_id(request.headers.get("x-request-id", ""))
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        spec = self.registry.get(name)
        # For the log line: the action's name if it is one of the function's, "unknown" if something
        # else was sent (never the value itself: it could be 200 KB, or a key), None if none was.
        action: str | None = None
        role = "-"
        try:
            if request.method == "OPTIONS":
                response: Response = Response(status_code=204)
            else:
                if spec is None:
                    # The name is not repeated: it is whatever the caller put in the URL.
                    raise NotFound("no function by that name", details={"functions": sorted(self.registry)})
                if request.method in ("GET", "HEAD") and not spec.http_get:
                    raise MethodNotAllowed(f"{name} takes a JSON body: use POST")
                caller = await self._caller(request, name)
                role = caller.role
                body = await read_body(request, body_shape(spec))
                known = spec.known_action(body.get("action"))
                action = known or ("unknown" if "action" in body else None)
                assert self.services is not None, "the server has not started"
                ctx = Context(caller=caller, services=self.services, request_id=request_id)
                spec.authorize(ctx, known)
                try:
                    parsed = spec.request_adapter.validate_python(body)
                except ValidationError as exc:
                    raise invalid_request(exc, spec, known) from None
                action = spec.known_action(getattr(parsed, "action", None)) or action
                result = await spec.handler(parsed, ctx)
                answer = response_json(spec.response_adapter, result)
                response = Response(answer, media_type="application/json")
        except AitradexError as exc:
            response = error_response(exc)
        except ClientDisconnect:
            # The caller left before its body arrived (or was cut off by the read deadline): not a
            # server error, and nobody is there to read an answer.
            log_event(logger, "client_disconnected", function=name if spec else "unknown")
            response = Response(status_code=CLIENT_CLOSED)
        except Exception as exc:
            # A bug: logged once, at ERROR, with its traceback (redacted like every log line); the
            # caller gets the request id only. Deliberate errors (above) are answers, not log noise.
            log_event(
                logger,
                "unhandled_error",
                level=logging.ERROR,
                exc_info=exc,
                function=name if spec else "unknown",
                error_type=type(exc).__name__,
            )
            response = JSONResponse(
                {
                    "error": {
                        "code": "internal_error",
                        "message": "internal error",
                        "details": {"request_id": request_id},
                    }
                },
                status_code=500,
            )
        response.headers.update(CORS_HEADERS)
        response.headers["x-request-id"] = request_id
        log_event(
            logger,
            "function_call",
            function=name if spec else "unknown",
            action=action,
            role=role,
            method=request.method,
            status=response.status_code,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        request_id_var.reset(token)
        return response

    async def routing_error(self, request: Request, exc: Exception) -> Response:
        """Starlette's router refused (no such path, another method): the same envelope as everything."""
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        request_id = client_address.request_id(request.headers.get("x-request-id", ""))
        headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
        error: AitradexError
        if status == 405:
            allowed = headers.get("allow", headers.get("Allow", "GET, POST, OPTIONS"))
            error = MethodNotAllowed(f"this path answers only {allowed}")
        elif status == 404:
            error = NotFound(
                "no such path: functions are served at /functions/v1/<name>",
                details={"functions": sorted(self.registry)},
            )
        else:  # Starlette's router raises only the two above; any other status keeps the envelope
            error = RequestError("the request cannot be served")
        response = error_response(error)
        response.status_code = status
        response.headers.update(headers)
        response.headers.update(CORS_HEADERS)
        response.headers["x-request-id"] = request_id
        token = request_id_var.set(request_id)
        log_event(logger, "routing_error", method=request.method, status=status)
        request_id_var.reset(token)
        return response

    async def openapi(self, _request: Request) -> Response:
        if self._openapi is None:
            self._openapi = build_openapi(self.registry, self.verify_jwt)
        return JSONResponse(self._openapi, headers=CORS_HEADERS)

    async def health(self, _request: Request) -> Response:
        return JSONResponse({"status": "ok", "functions": len(self.registry)})

    def build(self) -> Starlette:
        """The ASGI application."""
        app = Starlette(
            routes=[
                *self._extra_routes,
                Route("/health", self.health, methods=["GET"]),
                Route("/functions/v1/openapi.json", self.openapi, methods=["GET"]),
                Route("/functions/v1/{name}", self.invoke, methods=["GET", "POST", "OPTIONS"]),
            ],
            exception_handlers={HTTPException: self.routing_error},
            lifespan=self.lifespan,
        )
        # `/functions/v1/x/` is not a function: a 404 in the envelope, not a 307 to somewhere else.
        app.router.redirect_slashes = False
        app.state.read_timeout_s = self.read_timeout_s
        return app


def response_json(adapter: TypeAdapter[Any], result: Any) -> bytes:
    """The answer as JSON, written by pydantic-core itself (no intermediate dicts, no json.dumps).

    A model is written by its own serializer: the function's response type is a union of models, and
    the union's serializer first works out which member the value is, which cost a 50-row signals page
    about 60 % more than the page's own serializer, for the same bytes.
    """
    if isinstance(result, BaseModel):
        return result.model_dump_json().encode()
    return adapter.dump_json(result)
