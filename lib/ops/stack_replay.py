"""What the local stack's paper exchange replays, and from when: the demo's markets and clock.

- **Markets**: the bundled USDT pairs that have five-minute candles (``data/market-data-usdt/5m``, the
  24 most traded). Every timeframe the scanner scans (5, 15, 60) then has candles for every symbol;
  the hourly-only pairs would answer an empty list for 5 and 15 on every scan. A standalone paper
  exchange (``python -m lib.paper_exchange``) serves all 102 pairs.
- **Start**: :data:`REPLAY_START_MS`, 2024-01-15 00:00 UTC. That leaves 14 days of history before it
  (336 hourly bars: a full 300-bar scan window on every scanned timeframe), and the demo's first six
  hours from there trade for both demo users. An existing paper state file resumes at its own saved
  time instead.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from lib.research.bundled_data import BUNDLED_USDT_DIR, list_symbols

if TYPE_CHECKING:
    from lib.paper_exchange.market import MarketData

REPLAY_START_MS = 1_705_276_800_000  # 2024-01-15 00:00 UTC


@cache
def stack_symbols() -> tuple[str, ...]:
    """The markets the stack's paper exchange replays (see the module docstring)."""
    return tuple(list_symbols(BUNDLED_USDT_DIR, "5"))


def stack_market() -> MarketData:
    """The stack's replayed candles, loaded once per process (the paper exchange shares them)."""
    from lib.paper_exchange.market import load_market

    return load_market(BUNDLED_USDT_DIR.resolve(), stack_symbols())


def replay_start_ms() -> int:
    """Where a new paper exchange of the stack starts its replay (see the module docstring)."""
    return REPLAY_START_MS
