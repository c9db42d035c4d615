"""Where market data comes from, per environment, with one rate limiter for the whole process.

The IP budget (600 requests per 5 s at Bybit) belongs to the machine, so every market-data client a
process opens shares the limiter held here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from lib.exchange.market import MarketDataClient, RetryPolicy
from lib.exchange.rate_limit import RateLimiter


@dataclass
class MarketAccess:
    """Opens market-data clients for an environment; ``paper_url`` locates the local paper exchange."""

    paper_url: str | None = None
    limiter: RateLimiter = field(default_factory=RateLimiter)
    #: The local IP every connection is sent from (None: the OS picks); a host's own address.
    source_address: str | None = None

    @asynccontextmanager
    async def client(
        self, environment: str, *, retry: RetryPolicy | None = None, timeout_s: float = 10.0
    ) -> AsyncIterator[MarketDataClient]:
        """A client for ``environment`` sharing this process's limiter."""
        async with MarketDataClient.open(
            environment,
            paper_url=self.paper_url,
            limiter=self.limiter,
            retry=retry,
            timeout_s=timeout_s,
            source_address=self.source_address,
        ) as market:
            yield market
