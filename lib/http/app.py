"""The functions server: a thin ASGI adapter with Supabase Edge Functions' conventions.

- ``POST /functions/v1/<name>`` calls the handler declared in ``functions/<name>``; read-only
  functions that opt in (``http_get``) also take GET with query parameters. ``OPTIONS`` answers
  CORS preflights without auth.
- ``verify_jwt`` per function comes from ``supabase/config.toml``. With it, a missing or bad token gets
  401 ``{"msg":"Invalid JWT"}``, as Supabase answers. Without it, a token is optional but must be
  valid when given. The token's role becomes the database role (``lib.db.session.Caller``).
- Every response carries ``x-request-id``, and every log line carries the same id.
- This module is the one place that maps errors to HTTP: ``AitradexError.http_status`` and
  ``to_dict()`` for deliberate errors, pydantic validation errors to 422 or 400, and anything else to
  500 with only the request id in the body.
- ``GET /functions/v1/openapi.json`` documents every function; ``GET /health`` tells liveness.
"""

from __future__ import annotations

import json
import logging
import re
import time
import tomllib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from lib.app.context import Context, Services
from lib.config import REPO_ROOT
from lib.db.session import Caller
from lib.errors import (
    AitradexError,
    Forbidden,
    InvalidRequest,
    MalformedBody,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
)
from lib.http.openapi import build_openapi
from lib.http.spec import FunctionSpec
from lib.log import log_event, request_id_var
from lib.services.auth import tokens

MAX_BODY_BYTES = 256 * 1024
CONFIG_TOML = REPO_ROOT / "supabase" / "config.toml"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
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


async def _read_body(request: Request) -> dict[str, Any]:
    """The JSON object sent (query parameters for GET), within the size limit."""
    if request.method == "GET":
        return dict(request.query_params)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"request body is larger than {MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"request body is larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise MalformedBody("request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise MalformedBody("request body must be a JSON object")
    return body


def _validation_details(exc: ValidationError) -> dict[str, Any]:
    # Echo where and why, never the submitted value: it could be an API secret.
    return {
        "errors": [
            {"loc": [str(part) for part in err["loc"]], "msg": err["msg"], "type": err["type"]}
            for err in exc.errors(include_url=False, include_input=False, include_context=False)
        ]
    }


def error_response(exc: AitradexError) -> JSONResponse:
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
    ) -> None:
        self.registry = dict(registry)
        self._open_services = services
        self._close_services = close_services
        self._jwt_secret = jwt_secret
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
        if tokens.verify(token, self._jwt_secret).get("role") != "service_role":
            raise Forbidden("this route needs the service role")

    def _caller(self, request: Request, name: str) -> Caller:
        token = _bearer(request)
        if token is None:
            if self.verify_jwt.get(name, True):
                raise Unauthorized("Invalid JWT", details={"reason": "missing"})
            return Caller.anon()
        claims = tokens.verify(token, self._jwt_secret)
        headers = {
            "x-forwarded-for": request.headers.get("x-forwarded-for")
            or (request.client.host if request.client else ""),
            "user-agent": request.headers.get("user-agent", ""),
        }
        return Caller.from_claims(claims, headers)

    async def invoke(self, request: Request) -> Response:
        name = request.path_params["name"]
        incoming = request.headers.get("x-request-id", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        action: str | None = None
        role = "-"
        try:
            if request.method == "OPTIONS":
                response: Response = Response(status_code=204)
            else:
                spec = self.registry.get(name)
                if spec is None:
                    raise NotFound(
                        f"no function named {name!r}", details={"functions": sorted(self.registry)}
                    )
                if request.method == "GET" and not spec.http_get:
                    raise MethodNotAllowed(f"{name} takes a JSON body: use POST")
                caller = self._caller(request, name)
                role = caller.role
                body = await _read_body(request)
                action = body.get("action") if isinstance(body.get("action"), str) else None
                assert self.services is not None, "the server has not started"
                ctx = Context(caller=caller, services=self.services, request_id=request_id)
                spec.authorize(ctx, action)
                try:
                    parsed = spec.request_adapter.validate_python(body)
                except ValidationError as exc:
                    raise InvalidRequest(
                        "the request does not match the schema", details=_validation_details(exc)
                    ) from None
                result = await spec.handler(parsed, ctx)
                # pydantic-core writes the JSON bytes itself: no intermediate dicts, no json.dumps.
                response = Response(spec.response_adapter.dump_json(result), media_type="application/json")
        except AitradexError as exc:
            response = error_response(exc)
        except Exception as exc:
            # A bug: logged once, at ERROR, with its traceback (redacted like every log line); the
            # caller gets the request id only. Deliberate errors (above) are answers, not log noise.
            log_event(
                logger,
                "unhandled_error",
                level=logging.ERROR,
                exc_info=exc,
                function=name,
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
            function=name,
            action=action,
            role=role,
            method=request.method,
            status=response.status_code,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
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
        return Starlette(
            routes=[
                *self._extra_routes,
                Route("/health", self.health, methods=["GET"]),
                Route("/functions/v1/openapi.json", self.openapi, methods=["GET"]),
                Route("/functions/v1/{name}", self.invoke, methods=["GET", "POST", "OPTIONS"]),
            ],
            lifespan=self.lifespan,
        )
