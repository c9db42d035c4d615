"""The functions server running for real: uvicorn on 127.0.0.1, the real database, real HTTP."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from lib.config import Settings
from lib.exchange.access import MarketAccess
from lib.exchange.trading import PybitExchange
from lib.http.server import create_functions_app, serve_in_thread
from lib.services.auth.tokens import mint_api_key
from tests.functions.auth_helpers import auth_settings


@pytest.fixture(scope="session")
def functions_url(settings: Settings, paper_exchange_url: str) -> Iterator[str]:
    """Base URL of a functions server wired to the test database and the test paper exchange."""
    # Every environment goes to the paper exchange: this machine has no route to Bybit, and exchange
    # behaviour is tested against the project's own Bybit-compatible server.
    everywhere = {env: paper_exchange_url for env in ("mainnet", "testnet", "demo")}
    # One IP budget for the server's market and signed calls, as a deployment has (the paper exchange
    # enforces Bybit's per-IP limit).
    market = MarketAccess(paper_url=paper_exchange_url)
    extras = {
        "exchange": PybitExchange(paper_url=paper_exchange_url, endpoints=everywhere, limiter=market.limiter),
        "market": market,
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


# --- Supabase Auth (/auth/v1): servers whose peers may name a client address, so every test counts its
# sign-ins under an address of its own (the limits' counters live in the shared test database).


@pytest.fixture(scope="session")
def auth_url(settings: Settings) -> Iterator[str]:
    """A functions server with /auth/v1, limits far above what a test does, and no reuse interval."""
    limits = {"rate_limit_ip": 10_000, "rate_limit_email": 10_000, "refresh_token_reuse_interval_s": 0}
    with serve_in_thread(create_functions_app(auth_settings(settings, **limits))) as url:
        yield url


@pytest.fixture
def client_ip() -> str:
    """An address of this test's own: a random one in 10.0.0.0/8 (16 million to choose from)."""
    n = uuid.uuid4().int
    return f"10.{n % 256}.{(n >> 8) % 256}.{(n >> 16) % 254 + 1}"


@pytest.fixture(scope="session")
def auth_limited_url(settings: Settings) -> Iterator[str]:
    """A functions server whose /auth/v1 allows 3 attempts per email and 5 per address a day (a window
    boundary, midnight UTC, is the only moment a test could see its count start over)."""
    limits = {"rate_limit_ip": 5, "rate_limit_email": 3, "rate_window_s": 86_400}
    with serve_in_thread(create_functions_app(auth_settings(settings, **limits))) as url:
        yield url
