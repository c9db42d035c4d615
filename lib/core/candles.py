"""The shapes shared by the scorers, the scanner and the backtest. Pure: numpy and dataclasses only.

A ``CandlePanel`` is many symbols' candles aligned on one time axis (symbols x time, oldest first),
left-padded with NaN where a symbol has less history. A scorer turns a panel into ``Candidate`` s:
at most one per symbol, on the panel's last closed bar, with the levels and the score's explanation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from lib.errors import InvalidRequest

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Direction = Literal["LONG", "SHORT"]


@dataclass(frozen=True, slots=True)
class Candles:
    """One symbol's candles as parallel arrays, oldest first."""

    symbol: str
    open_time_ms: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray

    def __len__(self) -> int:
        return int(self.open_time_ms.shape[0])


@dataclass(frozen=True, slots=True)
class CandlePanel:
    """Aligned candles: ``open_time_ms`` is 1-D (time); the price arrays are 2-D (symbols x time)."""

    symbols: tuple[str, ...]
    open_time_ms: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray

    def __post_init__(self) -> None:
        shape = (len(self.symbols), self.open_time_ms.shape[0])
        for name in ("open", "high", "low", "close", "volume"):
            array = getattr(self, name)
            if array.shape != shape:
                raise InvalidRequest(f"panel.{name} has shape {array.shape}, expected {shape}")


@dataclass(frozen=True, slots=True)
class Candidate:
    """One scored trade idea for one symbol on one closed bar.

    ``score`` is 0..100; ``components`` maps each part of the score to its contribution (they add up
    to ``score`` for ``unirail_core``; for ``quantum_ai`` they are the features' contributions to the
    model's logit, rescaled). LONG means stop_loss < entry < take_profit; SHORT the mirror.
    """

    symbol: str
    direction: Direction
    score: float
    confidence: float
    entry: float
    stop_loss: float
    take_profit: float
    atr: float
    bar_time_ms: int
    components: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 100.0:
            raise ValueError(f"{self.symbol}: score {self.score} outside 0..100")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"{self.symbol}: confidence {self.confidence} outside 0..1")
        ordered = (
            self.stop_loss < self.entry < self.take_profit
            if self.direction == "LONG"
            else self.take_profit < self.entry < self.stop_loss
        )
        if not ordered:
            raise ValueError(f"{self.symbol}: {self.direction} levels out of order")
