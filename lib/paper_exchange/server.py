"""Running the paper exchange: in the foreground, or in a background thread for tests and the demo.

``create_paper_account`` / ``create_paper_account_async`` are the account-creation shortcuts of
:mod:`lib.paper_exchange.client`, kept here because callers import them from here.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import httpx
import uvicorn

from lib.errors import ConfigError
from lib.paper_exchange.app import create_app

# PaperAccount is kept importable from here for the callers that import it from here.
from lib.paper_exchange.client import AsyncPaperControls, PaperAccount, PaperControls
from lib.paper_exchange.config import PaperExchangeConfig

__all__ = [
    "PaperAccount",
    "create_paper_account",
    "create_paper_account_async",
    "running_paper_exchange",
    "serve",
]

STARTUP_TIMEOUT_S = 30.0
SHUTDOWN_GRACE_S = 1
#: How long an idle keep-alive connection stays open. uvicorn's default (5 s) is shorter than the pauses
#: a client keeping to Bybit's IP budget makes, so a pooled connection would often be closed just as it
#: is reused (the request then fails as "cannot be reached"); 65 s is a load balancer's usual figure.
KEEP_ALIVE_S = 65


def serve(config: PaperExchangeConfig) -> None:
    """Serve the paper exchange on ``config.host:config.port`` until interrupted."""
    uvicorn.run(
        create_app(config),
        host=config.host,
        port=config.port,
        log_level="info",
        timeout_keep_alive=KEEP_ALIVE_S,
    )


def _bound_socket(config: PaperExchangeConfig) -> socket.socket:
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    # proto must say TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto is
    # IPPROTO_TCP, and without it every keep-alive answer waits ~40 ms on Nagle + delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((config.host, config.port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {config.host}:{config.port}: {exc.strerror}") from None
    return sock


@contextmanager
def running_paper_exchange(
    config: PaperExchangeConfig, *, sock: socket.socket | None = None
) -> Iterator[str]:
    """Run the paper exchange in a background thread; yields its base URL, stops it on exit.

    ``config.port`` 0 picks a free port. The server binds before this yields, so the URL answers at once.
    ``sock``: an already bound socket to serve on instead (``config.host`` and ``config.port`` are then
    ignored; the stack binds its ports itself, see :mod:`lib.ops.ports`). It is closed on exit.
    """
    app = create_app(config)
    sock = sock if sock is not None else _bound_socket(config)
    host, port = sock.getsockname()[:2]
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level="warning",
            timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
            timeout_keep_alive=KEEP_ALIVE_S,
            lifespan="on",
        )
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="paper-exchange", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError("the paper exchange did not start")
            time.sleep(0.01)
        yield f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=SHUTDOWN_GRACE_S + 10)
        sock.close()


def create_paper_account(
    base_url: str, balance: Decimal | str = "10000", *, timeout_s: float = 10.0
) -> PaperAccount:
    """Create a funded account on a running paper exchange (``POST /_paper/accounts``)."""
    return PaperControls(base_url, timeout_s=timeout_s).create_account(balance)


async def create_paper_account_async(
    base_url: str, balance: Decimal | str = "10000", *, client: httpx.AsyncClient | None = None
) -> PaperAccount:
    """Async :func:`create_paper_account`, on ``client`` if given."""
    return await AsyncPaperControls(base_url, http=client).create_account(balance)
