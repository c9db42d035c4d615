"""A local exchange that answers like Bybit V5 while replaying the bundled 2024 USDT candles as Bybit USDT
linear perpetuals (``data/market-data-usdt``: five-minute candles where there are any, else hourly).

Public API::

    create_app(config) -> Starlette                     # the ASGI app
    PaperExchangeConfig(...)                            # frozen settings
    running_paper_exchange(config) -> ContextManager[str]   # background server, yields its base URL
    serve(config)                                       # foreground server (python -m lib.paper_exchange)
    create_paper_account(base_url, balance) -> PaperAccount
    await create_paper_account_async(base_url, balance, client=None) -> PaperAccount
    PaperControls(base_url) / AsyncPaperControls(base_url)   # the /_paper controls: clock, faults, accounts

pybit works against it unchanged: ``session = HTTP(api_key=..., api_secret=...)`` then
``session.endpoint = base_url``.
"""

from lib.paper_exchange.app import create_app
from lib.paper_exchange.client import AsyncPaperControls, PaperAccount, PaperClockView, PaperControls
from lib.paper_exchange.config import PaperExchangeConfig
from lib.paper_exchange.server import (
    create_paper_account,
    create_paper_account_async,
    running_paper_exchange,
    serve,
)

__all__ = [
    "AsyncPaperControls",
    "PaperAccount",
    "PaperClockView",
    "PaperControls",
    "PaperExchangeConfig",
    "create_app",
    "create_paper_account",
    "create_paper_account_async",
    "running_paper_exchange",
    "serve",
]
