"""The settings of one paper exchange, as a frozen, validated object."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from lib.errors import ConfigError
from lib.paper_exchange.ratelimit import ExchangeLimits
from lib.research.bundled_data import BUNDLED_USDT_DIR

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_STATE_PATH = Path(".aitradex") / "paper-exchange" / "state.json"
#: Candles of history that exist before the default start, so a scan has something to read.
DEFAULT_WARMUP_CANDLES = 300


@dataclass(frozen=True, slots=True)
class PaperExchangeConfig:
    """How to run one paper exchange.

    - ``data_dir``: folder of ``<SYMBOL>-5m.csv[.gz]`` and ``<SYMBOL>-1h.csv[.gz]`` candles, directly or in
      ``5m/`` and ``1h/`` (default: the bundled USDT markets, ``data/market-data-usdt``);
    - ``symbols``: the symbols to serve (default ``None``: every symbol with a file), so a test or the
      stack can load a few series instead of all of them;
    - ``state_path``: JSON state file (``None``: keep state in memory only, lost on stop);
    - ``start_time_ms``: replay start for a new state file (default: first candle + 300 candles); an
      existing state file resumes at its own saved replay time;
    - ``speed``: replay milliseconds per wall millisecond (0 freezes the clock: only explicit advances);
    - ``seed``: seed of the fault generators;
    - ``host``/``port``: where to listen (loopback by default: the ``/_paper`` controls are local only);
    - ``taker_fee_rate``/``maker_fee_rate``: fee on traded value, paid from the USDT wallet on every fill
      (Bybit's base linear rates by default: taker 0.055 %, maker 0.02 %);
    - ``limits``: Bybit's rate limits it enforces (600 requests per 5 s per source address, then a
      403 ban; 10 order creates per second per account, then 10006): all on by default, see
      :mod:`lib.paper_exchange.ratelimit`.
    """

    data_dir: Path = BUNDLED_USDT_DIR
    symbols: tuple[str, ...] | None = None
    state_path: Path | None = DEFAULT_STATE_PATH
    start_time_ms: int | None = None
    speed: float = 0.0
    seed: int = 0
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    taker_fee_rate: Decimal = Decimal("0.00055")
    maker_fee_rate: Decimal = Decimal("0.0002")
    limits: ExchangeLimits = field(default_factory=ExchangeLimits)

    def __post_init__(self) -> None:
        if not math.isfinite(self.speed) or self.speed < 0:
            raise ConfigError(f"paper exchange speed must be a finite number >= 0, got {self.speed}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"paper exchange port must be 0..65535, got {self.port}")
        if self.symbols is not None and (
            not self.symbols or not all(isinstance(s, str) for s in self.symbols)
        ):
            raise ConfigError("paper exchange symbols must be a non-empty tuple of names, or None for all")
        for name in ("taker_fee_rate", "maker_fee_rate"):
            rate = getattr(self, name)
            if not isinstance(rate, Decimal) or not rate.is_finite() or not 0 <= rate < 1:
                raise ConfigError(f"paper exchange {name} must be a Decimal in [0, 1), got {rate!r}")
