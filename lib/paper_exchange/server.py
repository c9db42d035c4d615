"""Running the paper exchange: in the foreground, or in a background thread for tests and the demo,
and the client side of account creation over HTTP."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal

import httpx
import uvicorn

from lib.errors import ConfigError, ExchangeError, ExchangeUnavailable
from lib.paper_exchange.app import create_app
from lib.paper_exchange.config import PaperExchangeConfig

STARTUP_TIMEOUT_S = 30.0
SHUTDOWN_GRACE_S = 1


@dataclass(frozen=True, slots=True)
class PaperAccount:
    """A paper account's credentials (the secret is left out of ``repr``)."""

    account_id: str
    api_key: str
    api_secret: str = field(repr=False)


def serve(config: PaperExchangeConfig) -> None:
    """Serve the paper exchange on ``config.host:config.port`` until interrupted."""
    uvicorn.run(create_app(config), host=config.host, port=config.port, log_level="info")


@contextmanager
def running_paper_exchange(config: PaperExchangeConfig) -> Iterator[str]:
    """Run the paper exchange in a background thread; yields its base URL, stops it on exit.

    ``config.port`` 0 picks a free port. The server binds before this yields, so the URL answers at once.
    """
    app = create_app(config)
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    # proto must say TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto is
    # IPPROTO_TCP, and without it every keep-alive answer waits ~40 ms on Nagle + delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((config.host, config.port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {config.host}:{config.port}: {exc}") from exc
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=SHUTDOWN_GRACE_S, lifespan="on")
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
        host = f"[{config.host}]" if ":" in config.host else config.host
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=SHUTDOWN_GRACE_S + 10)
        sock.close()


def _account_from(response: httpx.Response) -> PaperAccount:
    if response.status_code != 201:
        raise ExchangeError(
            f"the paper exchange refused to create an account (HTTP {response.status_code})",
            details={"body": response.text[:500]},
        )
    body = response.json()
    return PaperAccount(account_id=body["account_id"], api_key=body["api_key"], api_secret=body["api_secret"])


def create_paper_account(
    base_url: str, balance: Decimal | str = "10000", *, timeout_s: float = 10.0
) -> PaperAccount:
    """Create a funded account on a running paper exchange (``POST /_paper/accounts``)."""
    try:
        response = httpx.post(
            f"{base_url}/_paper/accounts", json={"balance": str(balance)}, timeout=timeout_s
        )
    except httpx.HTTPError as exc:
        raise ExchangeUnavailable(f"the paper exchange at {base_url} is unreachable: {exc}") from exc
    return _account_from(response)


async def create_paper_account_async(
    base_url: str, balance: Decimal | str = "10000", *, client: httpx.AsyncClient | None = None
) -> PaperAccount:
    """Async :func:`create_paper_account`, on ``client`` if given."""
    try:
        if client is not None:
            response = await client.post(f"{base_url}/_paper/accounts", json={"balance": str(balance)})
        else:
            async with httpx.AsyncClient(timeout=10.0) as own:
                response = await own.post(f"{base_url}/_paper/accounts", json={"balance": str(balance)})
    except httpx.HTTPError as exc:
        raise ExchangeUnavailable(f"the paper exchange at {base_url} is unreachable: {exc}") from exc
    return _account_from(response)
