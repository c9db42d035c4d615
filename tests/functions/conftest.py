"""The functions server running for real: uvicorn on 127.0.0.1, the real database, real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from lib.config import Settings
from lib.exchange.access import MarketAccess
from lib.exchange.trading import PybitExchange
from lib.http.server import create_functions_app, serve_in_thread
from lib.services.auth.tokens import mint_api_key


@pytest.fixture(scope="session")
def functions_url(settings: Settings, paper_exchange_url: str) -> Iterator[str]:
    """Base URL of a functions server wired to the test database and the test paper exchange."""
    # Every environment goes to the paper exchange: this machine has no route to Bybit, and exchange
    # behaviour is tested against the project's own Bybit-compatible server.
    everywhere = {env: paper_exchange_url for env in ("mainnet", "testnet", "demo")}
    extras = {
        "exchange": PybitExchange(paper_url=paper_exchange_url, endpoints=everywhere),
        "market": MarketAccess(paper_url=paper_exchange_url),
    }
    with serve_in_thread(create_functions_app(settings, **extras)) as url:
        yield url


@pytest.fixture(scope="session")
def anon_key(settings: Settings) -> str:
    return mint_api_key("anon", settings.jwt_secret.reveal())


@pytest.fixture(scope="session")
def service_key(settings: Settings) -> str:
    return mint_api_key("service_role", settings.jwt_secret.reveal())


@pytest.fixture
async def http(functions_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=functions_url, timeout=30) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
