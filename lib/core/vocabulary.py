"""Vocabulary shared by the database, the functions and the pure core: names the contract fixes."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import StringConstraints

Algorithm = Literal["unirail_core", "quantum_ai"]
Timeframe = Literal["1", "3", "5", "15", "30", "60", "120", "240", "360", "720", "D", "W", "M"]
Environment = Literal["mainnet", "testnet", "demo", "paper"]
Direction = Literal["LONG", "SHORT"]
Category = Literal["spot", "linear", "inverse"]
#: ``untracked``: open when its account was disconnected (confirmed by the user); re-linked, with the
#: status it had, when the same exchange account is connected again.
OrderStatus = Literal[
    "requested", "placed", "partially_filled", "filled", "cancelled", "rejected", "failed", "untracked"
]

ALGORITHMS: tuple[str, ...] = get_args(Algorithm)
TIMEFRAMES: tuple[str, ...] = get_args(Timeframe)
ENVIRONMENTS: tuple[str, ...] = get_args(Environment)

Symbol = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{2,30}$")]
