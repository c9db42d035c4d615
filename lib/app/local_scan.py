"""``aitradex scan``: scans in this process against the configured stack, outside the functions server."""

from __future__ import annotations

from collections.abc import Sequence

from lib.config import Settings
from lib.db.target import database_target
from lib.errors import ConfigError
from lib.exchange.access import MarketAccess
from lib.exchange.rate_limit import RateLimiter
from lib.local_state import recorded_paper_url
from lib.services.scanning.models import ScanProgress, ScanRequest, ScanResult
from lib.services.scanning.scanner import scan_many
from lib.services.scanning.settings import load_scan_settings


async def scan_local(
    app_settings: Settings,
    requests: Sequence[ScanRequest],
    *,
    environment: str | None = None,
    progress: ScanProgress | None = None,
) -> list[ScanResult]:
    """Run scans in this process against the configured stack (what ``aitradex scan`` does).

    The database is the configured one; market data comes from ``exchange.environment`` (or
    ``environment``): on ``paper``, the paper exchange the local stack runs for this database. The rate
    limiter keeps to ``exchange.rate_limit_share``.
    """
    paper_url = recorded_paper_url(app_settings.state_dir, app_settings.database.db_name)
    async with database_target(app_settings).database(max_size=4) as db:
        settings = await load_scan_settings(db)
        env = environment or settings.environment
        if env == "paper" and not paper_url:
            raise ConfigError(
                "no paper exchange is running for this database: start the stack (`aitradex up`, `make demo`)"
            )
        access = MarketAccess(
            paper_url=paper_url,
            limiter=RateLimiter(settings.rate_limit_share),
            # The host's own address, as every other exchange client of this host.
            source_address=app_settings.exchange.source_address,
        )
        return await scan_many(
            requests, db=db, market_access=access, settings=settings, environment=env, progress=progress
        )
