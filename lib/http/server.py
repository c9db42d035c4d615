"""Running the functions server: in the foreground (``aitradex up``), or in a thread (tests, demo)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette

from lib.app.context import Services
from lib.app.wiring import close_services, open_services
from lib.config import DEFAULT_HTTP_READ_TIMEOUT_S, Settings
from lib.errors import AitradexError, ConfigError
from lib.exchange.access import MarketAccess
from lib.exchange.ports import TradingExchange
from lib.http.app import FunctionsApp
from lib.http.auth_routes import AuthRoutes
from lib.http.protocol import deadline_protocol
from lib.http.web import WebApp
from lib.services.auth.jwks import JwksCache, http_jwks_fetch
from lib.services.auth.signing import SigningKey
from lib.services.auth.verify import TokenVerifier


def functions_app(
    settings: Settings,
    *,
    exchange: TradingExchange | None = None,
    market: MarketAccess | None = None,
    verify_jwt: Mapping[str, bool] | None = None,
) -> FunctionsApp:
    """Every registered function, wired to ``settings`` (call ``.build()`` for the ASGI app).

    ``exchange`` and ``market`` replace the default exchange clients (the tests' paper exchange).
    The web app (:mod:`lib.http.web`) is served beside them.
    """
    from lib.http.registry import registry

    async def open_() -> Services:
        return await open_services(settings, exchange=exchange, market=market)

    verifier, auth = auth_wiring(settings)
    app = FunctionsApp(
        registry(),
        open_,
        close_services,
        jwt_secret=settings.jwt_secret.reveal(),
        verify_jwt=verify_jwt,
        trusted_proxies=settings.http.trusted_proxies,
        read_timeout_s=settings.http.read_timeout_s,
        verifier=verifier,
    )
    if auth is not None:
        app.add_hook(auth.hook)
        for route in auth.routes():
            app.add_route(route)
    # The web app at API_URL/ (its files and /config.json).
    for route in WebApp(settings).routes():
        app.add_route(route)
    return app


def auth_wiring(settings: Settings) -> tuple[TokenVerifier, AuthRoutes | None]:
    """How user tokens verify, and the local ``/auth/v1`` (None when a hosted project serves it).

    Hosted (``SUPABASE_URL``): the project's JWK Set over HTTP. Locally: the local signing key's set,
    and the local auth server. Raises ConfigError when the local signing key was never generated.
    """
    auth = settings.auth
    secret = settings.jwt_secret.reveal()
    if auth.supabase_url is not None:
        fetch = http_jwks_fetch(f"{auth.supabase_url}/auth/v1/.well-known/jwks.json")
        cache = JwksCache(fetch, min_refresh_s=auth.jwks_min_refresh_s)
        return TokenVerifier(secret, cache), None
    if auth.signing_key is None:
        raise ConfigError(
            "AUTH_JWT_SIGNING_KEY is not set. Set it in the environment, or run `make demo` once to "
            "generate local secrets."
        )
    key = SigningKey.from_pem(auth.signing_key.reveal())

    async def local_set() -> dict[str, Any]:
        return key.jwks()

    verifier = TokenVerifier(secret, JwksCache(local_set, min_refresh_s=auth.jwks_min_refresh_s))
    return verifier, AuthRoutes(key, verifier, trusted_proxies=settings.http.trusted_proxies)


def create_functions_app(
    settings: Settings,
    *,
    exchange: TradingExchange | None = None,
    market: MarketAccess | None = None,
    verify_jwt: Mapping[str, bool] | None = None,
) -> Starlette:
    """The ASGI app with every registered function, wired to ``settings``."""
    return functions_app(settings, exchange=exchange, market=market, verify_jwt=verify_jwt).build()


#: uvicorn settings shared by every way of running the server (one process, or workers).
SERVER_OPTIONS: dict[str, Any] = {
    "log_config": None,  # our JSON logging, configured by the caller
    "access_log": False,
    "lifespan": "on",
    "limit_concurrency": 1000,
    "timeout_keep_alive": 30,
    # Idle keep-alive clients must not hold a shutdown hostage.
    "timeout_graceful_shutdown": 3,
    # uvicorn would otherwise believe X-Forwarded-For from 127.0.0.1 and rewrite the peer address;
    # the adapter decides whom to believe (lib/http/client_address.py, AITRADEX_TRUSTED_PROXIES).
    "proxy_headers": False,
}


def uvicorn_config(
    app: Starlette, host: str, port: int, *, read_timeout_s: float | None = None
) -> uvicorn.Config:
    """Uvicorn settings shared by every way of running the server.

    ``read_timeout_s``: how long a request has to arrive (:mod:`lib.http.protocol`); by default the
    value the app was built with (``FunctionsApp(read_timeout_s=...)``, from the settings).
    """
    if read_timeout_s is None:
        read_timeout_s = float(getattr(app.state, "read_timeout_s", DEFAULT_HTTP_READ_TIMEOUT_S))
    return uvicorn.Config(app, host=host, port=port, http=deadline_protocol(read_timeout_s), **SERVER_OPTIONS)


@contextmanager
def serve_in_thread(
    app: Starlette, host: str = "127.0.0.1", port: int = 0, *, read_timeout_s: float | None = None
) -> Iterator[str]:
    """Serve ``app`` from a background thread; yields its base URL and stops it cleanly after."""
    server = uvicorn.Server(uvicorn_config(app, host, port, read_timeout_s=read_timeout_s))
    thread = threading.Thread(
        target=lambda: asyncio.run(server.serve()), name="functions-server", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise AitradexError("the functions server did not start")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()
    try:
        yield f"http://{bound[0]}:{bound[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
