"""Signal scoring: ``unirail_core`` (documented confluence score) and ``quantum_ai`` (learned model).

Both are pure functions ``score_panel(panel) -> list[Candidate]`` over a :class:`CandlePanel`: at most
one candidate per symbol, on the panel's last bar (the scanner passes closed bars only). Both are built
on ``score_bars(panel)``, which scores every bar of the panel at once; the backtest uses that, so live
scoring and the backtest share the same math. :func:`score` dispatches by algorithm name.
"""

from __future__ import annotations

from collections.abc import Callable

from lib.core.candles import Candidate, CandlePanel
from lib.core.vocabulary import ALGORITHMS
from lib.errors import InvalidRequest
from lib.scoring import quantum_ai, unirail_core

__all__ = ["ALGORITHMS", "Candidate", "CandlePanel", "score"]

_SCORERS: dict[str, Callable[[CandlePanel], list[Candidate]]] = {
    unirail_core.NAME: unirail_core.score_panel,
    quantum_ai.NAME: quantum_ai.score_panel,
}

# The contract's names (lib.core.vocabulary) and the scorers must be the same set, in the same order.
if tuple(_SCORERS) != ALGORITHMS:
    raise RuntimeError(f"scorers {tuple(_SCORERS)} do not match the vocabulary's {ALGORITHMS}")


def score(algorithm: str, panel: CandlePanel) -> list[Candidate]:
    """Score ``panel`` with the named algorithm; an unknown name raises :class:`InvalidRequest`."""
    try:
        scorer = _SCORERS[algorithm]
    except KeyError:
        raise InvalidRequest(
            f"unknown scoring algorithm {algorithm!r}",
            details={"algorithm": algorithm, "known": list(ALGORITHMS)},
        ) from None
    return scorer(panel)
